"""
The restore drill end to end (issue 14 item 4), with real C{twistd scheduler0} nodes and the
real C{scheduler0 backup} and C{scheduler0 restore} commands: a backup taken while clients
keep creating jobs holds every job acknowledged before it started; a node started on a
DataDir restored from it serves them, with the source's credentials; and a new three-node
cluster seeded from a single node's backup (restored on each node, README "Backup and
restore") serves them on every node and goes on replicating new writes.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Any

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from .cluster import SHARED_SECRETS, Cluster
from .daemon import SECRETS_NAME, Daemon, NodeClient, sleep

JOB = {"spec": "@every 1h", "timezone": "UTC", "callbackUrl": "http://127.0.0.1:9/callback",
       "data": "{}"}


class JobStream:
    """Creates jobs one after another (a client's stream of writes) until stopped; records
    the id of each acknowledged (2xx) creation, in order."""

    def __init__(self, client: NodeClient, project_id: int) -> None:
        self.client = client
        self.project_id = project_id
        self.acknowledged: list[int] = []
        self.stopped = False
        self.done: Any = None

    def start(self) -> None:
        self.done = ensureDeferred(self._run())

    async def _run(self) -> None:
        while not self.stopped:
            code, envelope = await self.client.request(
                "POST", "/jobs", {"projectId": self.project_id, **JOB})
            assert code == 201, (code, envelope)
            self.acknowledged.append(_job_id(envelope["data"]))

    async def stop(self) -> None:
        self.stopped = True
        await self.done


def _job_id(data: Any) -> int:
    return int(data[0]["id"] if isinstance(data, list) else data["id"])


async def job_ids(client: NodeClient) -> set[int]:
    listed = await client.ok("GET", "/jobs?limit=10000")
    return {job["id"] for job in listed["jobs"]}


def saved_jobs(line: str) -> int:
    match = re.search(r"(\d+) jobs", line)
    assert match, line
    return int(match.group(1))


class BackupRestoreTests(TestCase):
    timeout = 180

    async def backup_under_load(self, source: Daemon, backup: str,
                                credential: dict[str, Any]) -> tuple[set[int], set[int], str]:
        """Back C{source} up while two clients create jobs: (ids acknowledged before the
        backup started, every id acknowledged, the line the command printed)."""
        client = source.client(credential)
        project = await client.ok("POST", "/projects", {"name": "billing"}, expect=201)
        streams = [JobStream(source.client(credential), project["id"]) for _ in range(2)]
        for stream in streams:
            stream.start()
        while sum(len(s.acknowledged) for s in streams) < 100:
            await sleep(0.02)
        before = {i for s in streams for i in s.acknowledged}
        status, out, err = await source.cli("backup", "--to", backup,
                                            "--config", str(source.config_path))
        during = {i for s in streams for i in s.acknowledged} - before
        for stream in streams:
            await stream.stop()
        self.assertTrue(status.clean, (status, out, err))
        self.assertEqual(err, "")
        self.assertTrue(during, "no job was acknowledged while the backup ran")
        self.assertEqual(os.stat(backup).st_mode & 0o777, 0o600)
        return before, {i for s in streams for i in s.acknowledged}, out

    async def test_a_backup_under_load_restored_into_a_fresh_node_has_every_acked_job(
            self) -> None:
        source = await Daemon(self).start()
        credential = await source.create_credential()
        backup = os.path.abspath(self.mktemp() + ".db")
        before, everything, line = await self.backup_under_load(source, backup, credential)

        fresh = Daemon(self)
        # the source's secrets, so the new node opens the backup's sealed signing secrets
        os.makedirs(fresh.data_dir, mode=0o700)
        shutil.copy(os.path.join(source.data_dir, SECRETS_NAME), fresh.data_dir)
        status, out, err = await fresh.cli("restore", "--from", backup,
                                           "--config", str(fresh.config_path))
        self.assertTrue(status.clean, (status, out, err))
        self.assertEqual(err, "")
        self.assertIn(f"{saved_jobs(line)} jobs", out)
        await fresh.start()
        # the source's credential works on the restored node: it is in the backup
        restored = await job_ids(fresh.client(credential))
        self.assertEqual(before - restored, set())
        self.assertEqual(restored - everything, set())
        self.assertEqual(len(restored), saved_jobs(line))
        # and the restored node takes new writes, with ids after the restored ones
        project_id = (await fresh.client(credential).ok("GET", "/projects"))["projects"][0]["id"]
        created = await fresh.client(credential).ok(
            "POST", "/jobs", {"projectId": project_id, **JOB}, expect=201)
        self.assertGreater(_job_id(created), max(restored))

        # a restore over it is refused while it runs, and leaves it as it was
        status, out, err = await fresh.cli("restore", "--from", backup,
                                           "--config", str(fresh.config_path))
        self.assertEqual(status.code, 1, (status, out, err))
        self.assertIn("is in use by another node", err)
        self.assertEqual(len(await job_ids(fresh.client(credential))), len(restored) + 1)

    async def test_a_new_cluster_restored_from_a_single_node_backup(self) -> None:
        source = await Daemon(self, SHARED_SECRETS).start()
        credential = await source.create_credential()
        backup = os.path.abspath(self.mktemp() + ".db")
        before, _everything, line = await self.backup_under_load(source, backup, credential)
        await source.stop()

        cluster = Cluster(self)
        for node in cluster.nodes:
            status, out, err = await node.cli("restore", "--from", backup,
                                              "--config", str(node.config_path))
            self.assertTrue(status.clean, (status, out, err))
            self.assertEqual(err, "")  # the cluster's SecretKey opens the backup's secrets
        await cluster.start()
        await cluster.wait_leader(timeout=30)
        for node in cluster.nodes:
            restored = await job_ids(node.client(credential))
            self.assertEqual(before - restored, set(), node.base_url)
            self.assertEqual(len(restored), saved_jobs(line), node.base_url)
        # new writes replicate from entry 1 of the new log on (no stored index skips them)
        project_id = (await cluster.peer(cluster.node(2)).ok("GET", "/projects"))[
            "projects"][0]["id"]
        created = _job_id(await cluster.node(2).client(credential).ok(
            "POST", "/jobs", {"projectId": project_id, **JOB}, expect=201))
        for node in cluster.nodes:
            await _until_job(self, node.client(credential), created)

    async def test_a_cluster_node_s_backup_seeds_a_new_cluster_whose_log_starts_again(
            self) -> None:
        """The backup of a cluster node stores the Raft index it applied; the new cluster's
        log starts at 1, so a restore that kept it would have every node skip the new
        cluster's first entries (the write below would never show)."""
        old = Cluster(self)
        await old.start()
        leader_id = int((await old.wait_leader(timeout=30))[0]["leaderId"])
        follower = next(n for n in old.nodes if n is not old.node(leader_id))
        credential = await follower.create_credential()
        project = await follower.client(credential).ok("POST", "/projects", {"name": "p"},
                                                       expect=201)
        ids = [_job_id(await follower.client(credential).ok(
            "POST", "/jobs", {"projectId": project["id"], **JOB}, expect=201))
            for _ in range(20)]
        backup = os.path.abspath(self.mktemp() + ".db")
        status, out, err = await follower.cli("backup", "--to", backup,
                                              "--config", str(follower.config_path))
        self.assertTrue(status.clean, (status, out, err))
        self.assertRegex(out, r"Raft index [1-9]\d*\n$")
        await gatherResults([ensureDeferred(node.stop()) for node in old.nodes])

        new = Cluster(self)
        for node in new.nodes:
            status, out, err = await node.cli("restore", "--from", backup,
                                              "--config", str(node.config_path))
            self.assertTrue(status.clean, (status, out, err))
            self.assertIn("was cleared, so a new cluster's log starts at 1", out)
        await new.start()
        await new.wait_leader(timeout=30)
        created = _job_id(await new.node(1).client(credential).ok(
            "POST", "/jobs", {"projectId": project["id"], **JOB}, expect=201))
        for node in new.nodes:
            await _until_job(self, node.client(credential), created)
            self.assertEqual(await job_ids(node.client(credential)), {*ids, created})


async def _until_job(testcase: TestCase, client: NodeClient, job_id: int,
                     timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code, envelope = await client.request("GET", f"/jobs/{job_id}")
        if code == 200:
            return
        if time.monotonic() > deadline:
            testcase.fail(f"job {job_id} not on {client.base_url} within {timeout} s: "
                          f"{code} {envelope}")
        await sleep(0.05)
