"""
Tests for `scheduler0 cluster status|add|remove|promote|demote|transfer` (issue 14 item 3)
against a fake three-node cluster: three real HTTP servers on 127.0.0.1 answering the
cluster-management seed's envelopes (list-nodes, the leader-only changes with 403 on a
follower and 409 while a change is in progress, and the healthcheck's raftStats).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.cli.cluster import leader_named
from scheduler0.node_secrets import NodeSecrets, write_file

from .cli_fixtures import Result, closed_port, run

USER, PASSWORD = "cluster-operator", "cluster-password"
SECRETS_ENV = {"SCHEDULER0_SECRET_KEY": "k" * 32, "SCHEDULER0_AUTH_USERNAME": USER,
               "SCHEDULER0_AUTH_PASSWORD": PASSWORD}
AUTHORIZATION = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class FakeCluster:
    """Three nodes' APIs on loopback sharing one membership; node 1 leads. Each request is
    recorded as (node id, method, path, query, headers)."""

    def __init__(self, case: SynchronousTestCase, *, client_addresses: bool = True) -> None:
        self.client_addresses = client_addresses
        self.leader = 1
        self.conflict: str | None = None
        # the shape of scheduler0.consensus.membership's answer on a follower
        self.follower_message: Callable[[FakeCluster], str] = (
            lambda c: f"add-node is leader-only and this node (2) is not the leader: send it "
                      f"to the leader, node {c.leader} at {c.url(c.leader)} (Raft "
                      f"{c.raft(c.leader)})")
        self.requests: list[tuple[int, str, str, dict[str, str], dict[str, str]]] = []
        self.members: dict[int, dict[str, Any]] = {}
        self.stats: dict[int, dict[str, str]] = {}
        self.servers: dict[int, ThreadingHTTPServer] = {}
        for node_id in (1, 2, 3):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, node_id))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            case.addCleanup(server.server_close)
            case.addCleanup(server.shutdown)
            self.servers[node_id] = server
            self.members[node_id] = {"id": node_id, "address": self.raft(node_id),
                                     "clientAddress": f"127.0.0.1:{self.port(node_id)}",
                                     "suffrage": "Voter"}
        self.stats = {1: {"state": "Leader", "commit_index": "120", "applied_index": "120",
                          "last_contact": "0"},
                      2: {"state": "Follower", "commit_index": "120", "applied_index": "118",
                          "last_contact": "40ms"},
                      3: {"state": "Follower", "commit_index": "119", "applied_index": "117",
                          "last_contact": "85ms"}}

    def port(self, node_id: int) -> int:
        return self.servers[node_id].server_address[1]

    def url(self, node_id: int) -> str:
        return f"http://127.0.0.1:{self.port(node_id)}"

    @staticmethod
    def raft(node_id: int) -> str:
        return f"127.0.0.1:{17070 + node_id}"

    def stop(self, node_id: int) -> None:
        self.servers[node_id].shutdown()
        self.servers[node_id].server_close()

    def config(self, case: SynchronousTestCase, asked: int = 2) -> str:
        """A config file for node C{asked}, with Replicas naming the three."""
        path = Path(case.mktemp())
        replicas = ", ".join(
            f"{{Address: '{self.url(n)}', RaftAddress: '{self.raft(n)}', NodeId: {n}}}"
            for n in (1, 2, 3))
        path.write_text(f"NodeId: {asked}\nPort: {self.port(asked)}\n"
                        f"RaftAddress: {self.raft(asked)}\nReplicas: [{replicas}]\n")
        return str(path)

    def posts(self) -> list[tuple[int, str, dict[str, str]]]:
        return [(node, path, query) for node, method, path, query, _ in self.requests
                if method == "POST"]

    # what a node answers

    def answer(self, node_id: int, method: str, path: str,
               query: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        if path == "/api/v1/healthcheck" and method == "GET":
            return 200, {"leaderAddress": self.raft(self.leader), "leaderId": str(self.leader),
                         "raftStats": self.stats.get(node_id, {})}
        if headers.get("authorization") != AUTHORIZATION or headers.get("x-peer") != "cmd":
            return 401, "invalid peer credentials"
        if path == "/api/v1/cluster/list-nodes" and method == "GET":
            return 200, [self._listed(member) for member in self.members.values()]
        action = path.removeprefix("/api/v1/cluster/")
        if method != "POST" or action == path:
            return 404, f"no route {method} {path}"
        if node_id != self.leader:
            return 403, self.follower_message(self)
        if self.conflict:
            return 409, self.conflict
        return self._change(action, query)

    def _listed(self, member: dict[str, Any]) -> dict[str, Any]:
        listed = {**member, "isLeader": member["id"] == self.leader}
        if not self.client_addresses:
            listed.pop("clientAddress")
        return listed

    def _change(self, action: str, query: dict[str, str]) -> tuple[int, Any]:
        if action == "transfer-leadership":
            self.leader = 2 if self.leader != 2 else 3
            return 200, {"status": "leadership transferred"}
        node_id = int(query["nodeId"])
        if action == "add-node":
            self.members[node_id] = {"id": node_id, "address": query["nodeAddress"],
                                     "clientAddress": query["clientAddress"],
                                     "suffrage": "Voter"}
            return 200, {"status": "node added"}
        if node_id not in self.members:
            return 404, f"node {node_id} is not a member of the cluster"
        if action == "remove-node":
            del self.members[node_id]
            return 200, {"status": "node removed"}
        if action == "promote-node":
            self.members[node_id]["suffrage"] = "Voter"
            return 200, {"status": "node promoted to voter"}
        if action == "demote-node":
            self.members[node_id]["suffrage"] = "Nonvoter"
            return 200, {"status": "node demoted to non-voter"}
        return 404, f"no route POST /api/v1/cluster/{action}"


def _handler(cluster: FakeCluster, node_id: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            cluster.requests.append((node_id, self.command, parts.path, query, headers))
            status, data = cluster.answer(node_id, self.command, parts.path, query, headers)
            body = json.dumps({"success": status < 400, "data": data}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class ClusterStatusTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cluster = FakeCluster(self)

    def status(self, *extra: str, cluster: FakeCluster | None = None) -> Result:
        cluster = cluster or self.cluster
        return run(["cluster", "status", "--config", cluster.config(self), *extra],
                   environ=SECRETS_ENV)

    def test_table_of_nodes_with_leader_last_contact_and_lag(self) -> None:
        result = self.status()
        self.assertEqual((result.status, result.err), (0, ""), result)
        c = self.cluster
        lines = result.out.splitlines()
        self.assertEqual(len(lines), 4, result.out)
        self.assertEqual(lines[0].split(), ["ID", "RAFT", "ADDRESS", "CLIENT", "ADDRESS",
                                            "LEADER", "SUFFRAGE", "LAST", "CONTACT", "LAG"])
        self.assertEqual([line.split() for line in lines[1:]], [
            ["1", c.raft(1), c.url(1), "yes", "Voter", "0", "0"],
            ["2", c.raft(2), c.url(2), "Voter", "40ms", "2"],
            ["3", c.raft(3), c.url(3), "Voter", "85ms", "3"]])
        # the columns line up under their headers
        for header in ("RAFT ADDRESS", "CLIENT ADDRESS", "LEADER", "SUFFRAGE", "LAST CONTACT",
                       "LAG"):
            column = lines[0].index(header)
            self.assertTrue(all(line[column - 1] == " " for line in lines[1:]), header)
        self.assertEqual(lines[1][lines[0].index("LEADER"):].split()[0], "yes")
        # asked with the node's peer credentials, as the operator's command
        listed = [r for r in c.requests if r[2] == "/api/v1/cluster/list-nodes"]
        self.assertEqual([r[0] for r in listed], [2])
        self.assertEqual((listed[0][4]["authorization"], listed[0][4]["x-peer"]),
                         (AUTHORIZATION, "cmd"))

    def test_json_format(self) -> None:
        result = self.status("--format", "json")
        self.assertEqual((result.status, result.err), (0, ""), result)
        nodes = json.loads(result.out)["nodes"]
        c = self.cluster
        self.assertEqual(nodes[1], {
            "id": 2, "raftAddress": c.raft(2), "clientAddress": c.url(2), "isLeader": False,
            "suffrage": "Voter", "state": "Follower", "lastContact": "40ms", "lag": 2,
            "error": None})
        self.assertEqual([(n["id"], n["isLeader"], n["lag"]) for n in nodes],
                         [(1, True, 0), (2, False, 2), (3, False, 3)])

    def test_a_node_that_does_not_answer_is_shown_unreachable(self) -> None:
        self.cluster.stop(3)
        result = self.status("--format", "json")
        self.assertEqual(result.status, 0, result)
        node = json.loads(result.out)["nodes"][2]
        self.assertEqual((node["lag"], node["lastContact"]), (None, None))
        # what list-nodes says of it (the leader's count, from its match index) stands in
        self.cluster.members[3]["lag"] = 7
        node = json.loads(self.status("--format", "json").out)["nodes"][2]
        self.assertEqual((node["lag"], node["lastContact"]), (7, None))
        del self.cluster.members[3]["lag"]
        self.assertIn(f"could not reach {self.cluster.url(3)}", node["error"])
        table = self.status()
        self.assertEqual(table.status, 0, table)
        self.assertEqual(table.out.splitlines()[3].split()[-2:], ["unreachable", "-"])
        self.assertEqual(table.err.count("\n"), 1, table.err)
        self.assertTrue(table.err.startswith(
            f"scheduler0: node 3 ({self.cluster.url(3)}) did not answer its healthcheck: "
            f"could not reach {self.cluster.url(3)}"), table.err)

    def test_client_addresses_come_from_replicas_when_list_nodes_has_none(self) -> None:
        """The seed's list-nodes names only Raft addresses; the config's Replicas map them."""
        cluster = FakeCluster(self, client_addresses=False)
        result = self.status("--format", "json", cluster=cluster)
        self.assertEqual(result.status, 0, result)
        nodes = json.loads(result.out)["nodes"]
        self.assertEqual([n["clientAddress"] for n in nodes],
                         [cluster.url(1), cluster.url(2), cluster.url(3)])
        self.assertEqual([n["lag"] for n in nodes], [0, 2, 3])

    def test_secrets_from_the_data_dir_like_the_daemon(self) -> None:
        data_dir = self.mktemp()
        write_file(data_dir, NodeSecrets("secret-key", USER, PASSWORD))
        result = run(["cluster", "status", "-c", self.cluster.config(self), "-d", data_dir])
        self.assertEqual((result.status, result.err), (0, ""), result)
        self.assertEqual(len(result.out.splitlines()), 4)

    def test_wrong_password_is_the_nodes_401_on_one_line(self) -> None:
        result = run(["cluster", "status", "-c", self.cluster.config(self)],
                     environ={**SECRETS_ENV, "SCHEDULER0_AUTH_PASSWORD": "wrong"})
        self.assertEqual((result.status, result.out), (1, ""), result)
        self.assertEqual(result.err, f"scheduler0: 401 invalid peer credentials (from "
                                     f"{self.cluster.url(2)})\n")

    def test_node_not_running(self) -> None:
        port = closed_port()
        result = run(["cluster", "status", "--port", str(port)], environ=SECRETS_ENV)
        self.assertEqual((result.status, result.out), (1, ""), result)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertIn(f"could not reach http://127.0.0.1:{port}", result.err)

    def test_missing_secrets(self) -> None:
        result = run(["cluster", "status", "-d", self.mktemp()])
        self.assertEqual(result.status, 1, result)
        self.assertTrue(result.err.startswith("scheduler0: node secrets are not set"),
                        result.err)


class ClusterChangeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cluster = FakeCluster(self)

    def cli(self, *argv: str, asked: int = 2) -> Result:
        return run(["cluster", *argv, "--config", self.cluster.config(self, asked)],
                   environ=SECRETS_ENV)

    def test_add_on_a_follower_is_sent_again_to_the_leader_it_names(self) -> None:
        c = self.cluster
        result = self.cli("add", "--node-id", "4", "--node-address", "127.0.0.1:17074",
                          "--client-address", "127.0.0.1:9094")
        self.assertEqual((result.status, result.out), (0, "node added\n"), result)
        self.assertEqual(result.err, f"scheduler0: {c.url(2)} is not the leader; sending to "
                                     f"the leader at {c.url(1)}\n")
        query = {"nodeId": "4", "nodeAddress": "127.0.0.1:17074",
                 "clientAddress": "127.0.0.1:9094"}
        self.assertEqual(c.posts(), [(2, "/api/v1/cluster/add-node", query),
                                     (1, "/api/v1/cluster/add-node", query)])
        sent = [r[4] for r in c.requests if r[1] == "POST"][1]
        self.assertEqual((sent["authorization"], sent["x-peer"]), (AUTHORIZATION, "cmd"))
        self.assertIn(4, c.members)

    def test_a_403_naming_the_leaders_raft_address_is_mapped_to_its_api(self) -> None:
        c = self.cluster
        c.follower_message = lambda c: (f"not the leader: node 1 at its API address is not "
                                        f"known here (Raft {c.raft(1)})")
        result = self.cli("promote", "--node-id", "3")
        self.assertEqual((result.status, result.out), (0, "node promoted to voter\n"), result)
        self.assertIn(f"sending to the leader at {c.url(1)}", result.err)
        self.assertEqual([p[0] for p in c.posts()], [2, 1])

    def test_leader_from_the_healthcheck_when_the_403_names_no_address(self) -> None:
        c = self.cluster
        c.follower_message = lambda _c: "this call is for the leader only"
        result = self.cli("remove", "--node-id", "3")
        self.assertEqual((result.status, result.out), (0, "node removed\n"), result)
        self.assertIn(f"sending to the leader at {c.url(1)}", result.err)
        self.assertEqual([p[0] for p in c.posts()], [2, 1])

    def test_on_the_leader_no_redirect(self) -> None:
        c = self.cluster
        result = self.cli("transfer", asked=1)
        self.assertEqual((result.status, result.out, result.err),
                         (0, "leadership transferred\n", ""), result)
        self.assertEqual(c.posts(), [(1, "/api/v1/cluster/transfer-leadership", {})])
        status = run(["cluster", "status", "--format", "json", "-c", c.config(self)],
                     environ=SECRETS_ENV)
        self.assertEqual([n["id"] for n in json.loads(status.out)["nodes"] if n["isLeader"]],
                         [2])

    def test_promote_and_demote(self) -> None:
        result = self.cli("demote", "--node-id", "3")
        self.assertEqual((result.status, result.out), (0, "node demoted to non-voter\n"))
        self.assertEqual(self.cluster.members[3]["suffrage"], "Nonvoter")
        result = self.cli("promote", "--node-id", "3")
        self.assertEqual((result.status, result.out), (0, "node promoted to voter\n"))
        self.assertEqual(self.cluster.members[3]["suffrage"], "Voter")

    def test_conflict_is_one_line_with_the_nodes_message(self) -> None:
        c = self.cluster
        c.conflict = "another membership change is in progress (adding node 4); retry later"
        result = self.cli("remove", "--node-id", "3")
        self.assertEqual((result.status, result.out), (1, ""), result)
        self.assertEqual(result.err.splitlines(), [
            f"scheduler0: {c.url(2)} is not the leader; sending to the leader at {c.url(1)}",
            f"scheduler0: 409 {c.conflict} (from {c.url(1)})"])
        self.assertIn(3, c.members)

    def test_the_leaders_refusal_is_not_retried(self) -> None:
        result = self.cli("remove", "--node-id", "9", asked=1)
        self.assertEqual((result.status, result.out), (1, ""), result)
        self.assertEqual(result.err, "scheduler0: 404 node 9 is not a member of the cluster "
                                     f"(from {self.cluster.url(1)})\n")
        self.assertEqual(len(self.cluster.posts()), 1)

    def test_no_leader_known_says_what_to_do(self) -> None:
        c = self.cluster
        c.follower_message = lambda _c: "this node is not the leader; no leader right now"
        c.leader = 7  # nobody's id: no node takes the change, no address maps to it
        result = self.cli("transfer")
        self.assertEqual((result.status, result.out), (1, ""), result)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertIn("403 this node is not the leader; no leader right now", result.err)
        self.assertIn("--url", result.err)
        self.assertEqual([p[0] for p in c.posts()], [2])

    def test_bad_arguments_exit_2_before_any_request(self) -> None:
        for argv, needle in (
                (["add", "--node-id", "4", "--node-address", "nowhere",
                  "--client-address", "127.0.0.1:9094"], "--node-address: 'nowhere'"),
                (["add", "--node-id", "4", "--node-address", "127.0.0.1:17074",
                  "--client-address", "127.0.0.1:99999"], "--client-address"),
                (["remove", "--node-id", "0"], "--node-id"),
                (["promote"], "--node-id")):
            result = self.cli(*argv)
            self.assertEqual((result.status, result.out), (2, ""), (argv, result))
            self.assertIn(needle, result.err)
        self.assertEqual(self.cluster.requests, [])


class LeaderNamedTests(SynchronousTestCase):
    def test_the_address_after_the_word_leader(self) -> None:
        own = {"10.0.0.2:7070", "10.0.0.2:9090"}
        for message, expected in (
                ("not the leader; the leader is 10.0.0.1:7070", "10.0.0.1:7070"),
                ("node 10.0.0.2:7070 is not the leader (leader: 10.0.0.1:7070)",
                 "10.0.0.1:7070"),
                ("leader-only call; send it to http://10.0.0.1:9090/", "http://10.0.0.1:9090"),
                ("not the leader; leader at [::1]:7071", "[::1]:7071"),
                ("add-node is leader-only and this node (2) is not the leader: send it to the "
                 "leader, node 1 at http://10.0.0.1:9090 (Raft 10.0.0.1:7070)",
                 "http://10.0.0.1:9090"),
                ("not the leader; no leader right now", None),
                ("10.0.0.2:9090 is not the leader", None)):
            self.assertEqual(leader_named(message, own), expected, message)
