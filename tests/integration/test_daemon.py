"""
End to end: real C{twistd scheduler0} processes on 127.0.0.1, real HTTP, real signals.

Fixtures are in L{tests.integration.daemon}. Each test starts its own nodes on free ports in its own
temporary directory; every process is killed in cleanup even when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import time
from typing import Any

from twisted.trial.unittest import TestCase

from ..raw_http import parse_response, raw_request
from .daemon import Daemon, ExitStatus, NodeClient, key_headers, node_env, run, sleep, twistd_argv

CALLBACK = "http://127.0.0.1:3000/callback"
# Specs whose next run does not move while a test runs, so listings taken minutes apart
# (nextRunAt included) must be identical.
SPECS = [("@every 24h", "UTC"), ("@every 1h30m", "America/New_York"),
         ("0 3 1 1 *", "Europe/Berlin"), ("@yearly", "Asia/Kolkata")]


def assert_clean_stop(testcase: TestCase, status: ExitStatus, log: str) -> None:
    """The node went down through twistd's orderly shutdown after SIGTERM, exit status 0
    (twistd would re-raise SIGTERM on itself; the plugin makes a clean stop exit 0)."""
    testcase.assertEqual(status, ExitStatus(0, None), log[-2000:])
    testcase.assertIn("Server Shut Down", log)
    testcase.assertNotIn("Traceback", log)


def job(project_id: int, n: int, *, seed_style: bool = False) -> dict[str, Any]:
    spec, zone = SPECS[n % len(SPECS)]
    if seed_style:  # the field names the seed's Node client sends
        return {"spec": spec, "project_id": project_id, "execution_type": "http",
                "data": json.dumps({"jobId": n}), "timezone": zone, "callback_url": CALLBACK}
    return {"spec": spec, "projectId": project_id, "executionType": "http",
            "data": json.dumps({"jobId": n}), "timezone": zone, "callbackUrl": CALLBACK}


async def snapshot(client: NodeClient, admin: NodeClient) -> dict[str, Any]:
    """Everything the API shows, in full listings."""
    projects = await client.ok("GET", "/projects?limit=10000")
    jobs = await client.ok("GET", "/jobs?limit=10000")
    per_project = {p["id"]: await client.ok("GET", f"/jobs?projectId={p['id']}&limit=10000")
                   for p in projects["projects"]}
    credentials = await admin.ok("GET", "/credentials?limit=10000")
    return {"projects": projects, "jobs": jobs, "perProject": per_project,
            "credentials": credentials}


class ZeroConfigTests(TestCase):
    async def test_start_without_config(self) -> None:
        """C{twistd -n scheduler0} with no options: data in ./scheduler0-data (secrets 0600,
        sqlite in WAL mode) and a log that says how to get a credential. Only the ports come
        from the environment, so that the test never fights over 9091; the default port
        itself is covered by the config tests."""
        node = Daemon(self, config_file=False)
        node.extra_env = {"SCHEDULER0_PORT": str(node.port),
                          "SCHEDULER0_RAFT_ADDRESS": f"127.0.0.1:{node.raft_port}"}
        self.assertEqual(os.listdir(node.workdir), [])
        await node.start()
        data_dir = os.path.join(node.workdir, "scheduler0-data")
        self.assertEqual(node.data_dir, data_dir)
        self.assertTrue(os.path.isdir(data_dir))

        secrets_file = os.path.join(data_dir, "node-secrets.json")
        self.assertEqual(stat.S_IMODE(os.stat(secrets_file).st_mode), 0o600)
        secrets = node.secrets()
        self.assertEqual(set(secrets), {"SecretKey", "AuthUsername", "AuthPassword"})
        self.assertTrue(all(isinstance(v, str) and v for v in secrets.values()), secrets)

        db = sqlite3.connect(os.path.join(data_dir, "scheduler0.db"))
        try:
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        finally:
            db.close()

        # the generated peer credentials work, and the node answers on 127.0.0.1
        code, envelope = await node.client(peer=True).request("GET", "/projects")
        self.assertEqual((code, envelope["data"]["total"]), (200, 0))
        self.assertIn("scheduler0 create credential", node.log_text())

        assert_clean_stop(self, await node.stop(), node.log_text())


class BadConfigTests(TestCase):
    async def _refused(self, text: str) -> str:
        """Start twistd with C{text} as its config file; it must exit non-zero quickly with
        exactly one line of output, which is returned."""
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        path = os.path.join(workdir, "scheduler0.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        started = time.monotonic()
        status, out, err = await run(self, twistd_argv(path), cwd=workdir, env=node_env(),
                                     timeout=15)
        self.assertLess(time.monotonic() - started, 10)
        self.assertNotEqual(status.code, 0, (status, out, err))
        self.assertIsNone(status.signal)
        lines = (out + err).splitlines()
        self.assertEqual(len(lines), 1, out + err)
        self.assertFalse(os.path.exists(os.path.join(workdir, "scheduler0-data")))
        return lines[0]

    async def test_misspelt_key(self) -> None:
        line = await self._refused("Prot: 9091\n")
        self.assertIn("Prot:", line)
        self.assertIn("did you mean Port?", line)

    async def test_wrong_type(self) -> None:
        line = await self._refused('Port: "abc"\n')
        self.assertIn("Port:", line)
        self.assertIn("'abc'", line)
        self.assertIn("integer", line)


class BodyLimitTests(TestCase):
    async def test_oversized_body_is_413_and_node_keeps_serving(self) -> None:
        node = Daemon(self, {"MaxRequestBodyMb": 0.01})  # 10,485 bytes
        await node.start()
        peer = node.client(peer=True)
        project = await peer.ok("POST", "/projects", {"name": "p"}, expect=201)
        big = json.dumps([job(project["id"], n) for n in range(200)]).encode()
        self.assertGreater(len(big), 20_000)

        code, envelope = await peer.request("POST", "/jobs", raw=big)
        self.assertEqual(code, 413, envelope)
        self.assertFalse(envelope["success"])
        self.assertIn("MaxRequestBodyMb", envelope["data"])

        # the same without a Content-Length: the limit holds while the body streams in
        sent, done = raw_request(node.port, "POST", "/api/v1/jobs", big, node.peer_headers(),
                                 chunked=True)
        response = parse_response(await done)
        self.assertEqual(response.code, 413, response.raw[:300])
        self.assertEqual(response.json()["success"], False)

        # still serving, and a body under the limit is fine
        self.assertEqual((await peer.request("GET", "/healthcheck"))[0], 200)
        small = [job(project["id"], n) for n in range(5)]
        created = await peer.ok("POST", "/jobs", small, expect=201)
        self.assertEqual(len(created), 5)
        listed = await peer.ok("GET", "/jobs")
        self.assertEqual(listed["total"], 5)
        assert_clean_stop(self, await node.stop(), node.log_text())


class PersistenceTests(TestCase):
    async def test_records_survive_sigterm_and_kill(self) -> None:
        node = Daemon(self)
        await node.start()
        credential = await node.create_credential()
        second = await node.create_credential()
        client = node.client(credential)
        admin = node.client(peer=True)

        project = await client.ok("POST", "/projects",
                                  {"name": "sample project", "description": "my calendar"},
                                  expect=201)
        pid = project["id"]
        batch = await client.ok("POST", "/jobs", [job(pid, n) for n in range(1000)], expect=201)
        self.assertEqual(len(batch), 1000)
        seed_style = [job(pid, n, seed_style=True) for n in range(1000, 1500)]
        batch2 = await client.ok("POST", "/jobs", seed_style, expect=201)
        self.assertEqual(len(batch2), 500)
        single = await client.ok("POST", "/jobs", job(pid, 1500), expect=201)
        self.assertIsInstance(single, dict)
        ids = [j["id"] for j in batch + batch2] + [single["id"]]
        self.assertEqual(len(set(ids)), 1501)
        self.assertEqual(batch2[0]["callbackUrl"], CALLBACK)

        updated_id, deleted_id = batch[7]["id"], batch[8]["id"]
        updated = await client.ok("PUT", f"/jobs/{updated_id}",
                                  {"spec": "30 4 * * 1", "timezone": "Australia/Sydney"})
        self.assertEqual((updated["spec"], updated["timezone"]),
                         ("30 4 * * 1", "Australia/Sydney"))
        self.assertNotEqual(updated["nextRunAt"], batch[7]["nextRunAt"])
        await client.ok("DELETE", f"/jobs/{deleted_id}", expect=204)

        archived = await admin.ok("PUT", f"/credentials/{second['id']}", {"archived": True})
        self.assertTrue(archived["archived"])

        async def check(client: NodeClient, admin: NodeClient) -> dict[str, Any]:
            """The same records, the same refusals."""
            state = await snapshot(client, admin)
            self.assertEqual(state["jobs"]["total"], 1500)
            self.assertEqual(await client.ok("GET", f"/jobs/{updated_id}"), updated)
            code, envelope = await client.request("GET", f"/jobs/{deleted_id}")
            self.assertEqual(code, 404, envelope)
            code, envelope = await client.request("GET", "/projects",
                                                  headers=key_headers(second))
            self.assertEqual((code, envelope["data"]),
                             (401, f"credential {second['id']} is archived"))
            return state

        before = await check(client, admin)
        listed = {j["id"]: j for j in before["jobs"]["jobs"]}
        self.assertEqual(set(listed), set(ids) - {deleted_id})
        self.assertEqual(listed[single["id"]], single)
        self.assertEqual(listed[batch[0]["id"]], batch[0])
        self.assertEqual(listed[batch2[-1]["id"]], batch2[-1])
        self.assertEqual(listed[updated_id], updated)

        # a clean stop, then the same data dir again
        assert_clean_stop(self, await node.stop(), node.log_text())
        await node.start()
        after = await check(node.client(credential), node.client(peer=True))
        self.assertEqual(after, before)

        # kill -9, then again
        status = await node.kill()
        self.assertEqual(status.signal, signal.SIGKILL)
        await node.start()
        after_kill = await check(node.client(credential), node.client(peer=True))
        self.assertEqual(after_kill, before)
        assert_clean_stop(self, await node.stop(), node.log_text())


class ShutdownTests(TestCase):
    """SIGTERM while a 10,000-job POST is in flight: the POST still gets its complete 201
    answer, the node exits cleanly, and the jobs are all there after a restart."""

    async def _in_flight(self, delay: float) -> None:
        node = Daemon(self)
        await node.start()
        peer = node.client(peer=True)
        project = await peer.ok("POST", "/projects", {"name": "p"}, expect=201)
        body = json.dumps([job(project["id"], n) for n in range(10_000)]).encode()

        sent, done = raw_request(node.port, "POST", "/api/v1/jobs", body, node.peer_headers())
        sent_at = await sent  # every byte of the request has been handed to the kernel
        if delay:
            await sleep(delay)
        node.signal("TERM")
        signalled_at = time.monotonic()
        response = parse_response(await done)
        answered_after = time.monotonic() - signalled_at
        status = await node.wait_exit(30)
        log = node.log_text()
        what = (f"SIGTERM {signalled_at - sent_at:.3f} s after the request left; the "
                f"connection closed {answered_after:.3f} s later after {len(response.raw)} "
                f"bytes: {response.raw[:120]!r} ... {response.raw[-120:]!r}")
        self.assertEqual(response.code, 201, what)
        try:
            created = response.json()["data"]
        except ValueError:
            self.fail(f"the 201 answer is not complete JSON: {what}")
        self.assertEqual(len(created), 10_000)
        assert_clean_stop(self, status, log)

        await node.start()
        peer = node.client(peer=True)
        listed = await peer.ok("GET", f"/jobs?projectId={project['id']}&limit=10000")
        self.assertEqual(listed["total"], 10_000)
        self.assertEqual([j["id"] for j in listed["jobs"]], [j["id"] for j in created])
        assert_clean_stop(self, await node.stop(), node.log_text())

    async def test_sigterm_as_soon_as_the_request_is_sent(self) -> None:
        await self._in_flight(0)


    async def test_sigterm_while_the_request_is_processed(self) -> None:
        await self._in_flight(0.1)


