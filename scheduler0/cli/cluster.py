"""
C{scheduler0 cluster status|add|remove|promote|demote|transfer}: an operator's view and
changes of a running cluster, through the cluster-management API (README "Operating a
cluster") with the node's peer Basic auth (C{X-Peer: cmd}).

The node asked is the one the configuration names (as C{create credential} finds it) or
C{--url}. The changes are leader-only: a follower answers 403 naming the leader, and the
command sends the same change once more to the leader (its client address from
C{list-nodes} or C{Replicas}) and says so on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from ..client import NO_RETRY, Client, ClusterApi, PeerAuth, Scheduler0Error
from ..config import Config
from ..node_secrets import SecretsError, resolve
from .common import FORMATTER, PROG, CliError, Console, Parser, add_config_options, load
from .create_credential import REQUEST_TIMEOUT, _base_url, _node_url

_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_URL_IN_TEXT = re.compile(r"https?://[^\s,;'\")]+")
_ADDRESS_IN_TEXT = re.compile(r"(?<![\w/.:-])((?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5})"
                              r"(?![\w:])")
COLUMNS = ("ID", "RAFT ADDRESS", "CLIENT ADDRESS", "LEADER", "SUFFRAGE", "LAST CONTACT", "LAG")


@dataclass(frozen=True)
class NodeStatus:
    """One row of C{cluster status}: the leader's view (C{list-nodes}) and the node's own
    healthcheck (C{lastContact}, C{lag}: entries its store trails the leader's commit)."""

    id: int | str
    raftAddress: str
    clientAddress: str | None
    isLeader: bool
    suffrage: str
    state: str | None
    lastContact: str | None
    lag: int | None
    error: str | None


class Operator:
    """What every cluster command holds: the node asked first, the peer credentials and
    how to make a client of any node; C{Replicas} maps Raft addresses to client ones."""

    def __init__(self, config: Config, base_url: str, auth: PeerAuth, timeout: float,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.config = config
        self.base_url = base_url
        self.auth = auth
        self.timeout = timeout
        self.ssl_context = ssl_context

    def client(self, base_url: str, timeout: float | None = None) -> Client:
        return Client(base_url, auth=self.auth, timeout=timeout or self.timeout,
                      retry=NO_RETRY, ssl_context=self.ssl_context)

    def url_of(self, address: str) -> str:
        """A client address as the API lists it (C{host:port} or a URL) as a base URL."""
        if address.startswith(("http://", "https://")):
            return address.rstrip("/")
        return f"{self.config.protocol}://{address}"

    def client_urls(self, nodes: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """Raft address and node id (as text) -> client base URL: C{Replicas}, then what
        C{list-nodes} says (a node added at run time is only there)."""
        urls: dict[str, str] = {}
        for replica in self.config.replicas:
            urls[replica.raft_address] = urls[str(replica.node_id)] = replica.address.rstrip("/")
        for node in nodes:
            client_address = node.get("clientAddress")
            if isinstance(client_address, str) and client_address:
                url = self.url_of(client_address)
                urls[str(node.get("address"))] = urls[str(node.get("id"))] = url
        return urls


def _operator(args: argparse.Namespace, console: Console) -> Operator:
    config = load(args, console)
    if args.timeout <= 0:
        raise CliError("--timeout: expected a number of seconds > 0", 2)
    base = _base_url(args.url) if args.url is not None else _node_url(config)
    try:
        secrets, _ = resolve(config, create=False)
    except SecretsError as e:
        raise CliError(str(e)) from None
    context = None
    if base.startswith("https:") or any(r.address.startswith("https:") for r in config.replicas):
        try:
            context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as e:
            raise CliError(f"--cafile: cannot load {args.cafile}: {e}", 2) from None
    return Operator(config, base, PeerAuth(secrets.auth_username, secrets.auth_password, "cmd"),
                    args.timeout, context)


def _failure(error: Scheduler0Error, url: str) -> CliError:
    """The one line a failed call ends the command with: the node's status and message."""
    if error.status is None:
        return CliError(error.message)
    return CliError(f"{error.status} {error.message} (from {url})")


# --------------------------------------------------------------------------------------------
# Changes, sent to the leader


def leader_named(message: str, own: set[str]) -> str | None:
    """The address a follower's 403 names as the leader's (a URL or C{host:port}): the
    first one after the word "leader", else the last one that is not the node's own."""
    found = [(m.start(), m.group(0).rstrip("/.")) for m in _URL_IN_TEXT.finditer(message)]
    if not found:
        found = [(m.start(), m.group(1)) for m in _ADDRESS_IN_TEXT.finditer(message)]
    found = [(at, address) for at, address in found if address not in own]
    if not found:
        return None
    word = message.lower().find("leader")
    after = [address for at, address in found if word >= 0 and at > word]
    return after[0] if after else found[-1][1]


def _leader_url(operator: Operator, url: str, message: str) -> str | None:
    """Where the leader answers: the address the 403 names, mapped to its client address;
    else the healthcheck's leader (by id or Raft address) mapped through C{list-nodes}."""
    client = operator.client(url)
    try:
        nodes = client.cluster.list_nodes()
    except Scheduler0Error:
        nodes = []
    urls = operator.client_urls(nodes)
    named = leader_named(message, {url.split("://", 1)[-1], url})
    if named is not None:
        if named.startswith(("http://", "https://")):
            return named
        if named in urls:
            return urls[named]
        if operator.url_of(named) in urls.values():
            return operator.url_of(named)
    try:
        health = client.health.check()
    except Scheduler0Error:
        return None
    for key in (str(health.get("leaderId") or ""), str(health.get("leaderAddress") or "")):
        if key and key in urls:
            return urls[key]
    return None


def change(operator: Operator, console: Console,
           call: Callable[[ClusterApi], Mapping[str, Any]]) -> Mapping[str, Any]:
    """Send a leader-only change; on a follower's 403, once more to the leader it names."""
    url = operator.base_url
    try:
        return call(operator.client(url).cluster)
    except Scheduler0Error as e:
        if e.status != 403 or "leader" not in e.message.lower():
            raise _failure(e, url) from None
        leader = _leader_url(operator, url, e.message)
        if leader is None or leader == url:
            raise CliError(f"403 {e.message} (from {url}); could not tell the leader's client "
                           f"address: run the command again with --url pointing at the "
                           f"leader") from None
    console.error(f"{url} is not the leader; sending to the leader at {leader}")
    try:
        return call(operator.client(leader).cluster)
    except Scheduler0Error as e:
        raise _failure(e, leader) from None


def _report(console: Console, answer: Mapping[str, Any]) -> int:
    status = answer.get("status") if isinstance(answer, Mapping) else None
    console.out(str(status) if status is not None else json.dumps(answer))
    return 0


def cmd_add(args: argparse.Namespace, console: Console) -> int:
    node_address = _address_arg("--node-address", args.node_address, url=False)
    client_address = _address_arg("--client-address", args.client_address, url=True)
    operator = _operator(args, console)
    return _report(console, change(operator, console, lambda api: api.add_node(
        args.node_id, node_address, client_address)))


def cmd_remove(args: argparse.Namespace, console: Console) -> int:
    operator = _operator(args, console)
    return _report(console, change(operator, console,
                                   lambda api: api.remove_node(args.node_id)))


def cmd_promote(args: argparse.Namespace, console: Console) -> int:
    operator = _operator(args, console)
    return _report(console, change(operator, console,
                                   lambda api: api.promote_node(args.node_id)))


def cmd_demote(args: argparse.Namespace, console: Console) -> int:
    operator = _operator(args, console)
    return _report(console, change(operator, console,
                                   lambda api: api.demote_node(args.node_id)))


def cmd_transfer(args: argparse.Namespace, console: Console) -> int:
    operator = _operator(args, console)
    return _report(console, change(operator, console, lambda api: api.transfer_leadership()))


# --------------------------------------------------------------------------------------------
# Status


def _stat_int(stats: Mapping[str, Any], name: str) -> int | None:
    try:
        return int(str(stats[name]))
    except (KeyError, ValueError):
        return None


def _health(operator: Operator, url: str | None) -> Mapping[str, Any] | str:
    """A node's healthcheck answer, or why there is none."""
    if url is None:
        return "no client address (not in list-nodes or Replicas)"
    try:
        answer = operator.client(url, timeout=min(operator.timeout, 5.0)).health.check()
    except Scheduler0Error as e:
        return e.message if e.status is None else f"{e.status} {e.message}"
    return answer if isinstance(answer, Mapping) else f"unexpected healthcheck answer: {answer}"


def cluster_status(operator: Operator) -> list[NodeStatus]:
    """C{list-nodes} from the node asked, and every listed node's own healthcheck."""
    url = operator.base_url
    try:
        nodes = operator.client(url).cluster.list_nodes()
    except Scheduler0Error as e:
        raise _failure(e, url) from None
    if not isinstance(nodes, list):
        raise CliError(f"unexpected list-nodes answer from {url}: {json.dumps(nodes)[:300]}")
    urls = operator.client_urls(nodes)
    client_url = [urls.get(str(node.get("id"))) or urls.get(str(node.get("address")))
                  for node in nodes]
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(nodes)))) as pool:
        answers = list(pool.map(lambda u: _health(operator, u), client_url))
    stats = [a.get("raftStats") if isinstance(a, Mapping) else None for a in answers]
    stats = [s if isinstance(s, Mapping) else {} for s in stats]
    commits = [_stat_int(s, "commit_index") for node, s in zip(nodes, stats)
               if node.get("isLeader")]
    commit = commits[0] if commits and commits[0] is not None else max(
        (c for c in (_stat_int(s, "commit_index") for s in stats) if c is not None),
        default=None)
    rows = []
    for node, address, answer, stat in zip(nodes, client_url, answers, stats):
        applied = _stat_int(stat, "applied_index")
        lag = max(commit - applied, 0) if commit is not None and applied is not None else None
        if lag is None and isinstance(node.get("lag"), int):
            lag = node["lag"]  # the leader's own count (its match index), for a silent node
        rows.append(NodeStatus(
            id=node.get("id", "?"), raftAddress=str(node.get("address", "")),
            clientAddress=address, isLeader=bool(node.get("isLeader")),
            suffrage=str(node.get("suffrage", "")),
            state=str(stat["state"]) if "state" in stat else None,
            lastContact=str(stat["last_contact"]) if "last_contact" in stat else None,
            lag=lag,
            error=answer if isinstance(answer, str) else None))
    return rows


def render_table(rows: Sequence[NodeStatus]) -> str:
    """Aligned columns, one node a line; a node that did not answer its healthcheck is
    C{unreachable} under LAST CONTACT (why goes to stderr)."""
    cells = [COLUMNS] + [(
        str(row.id), row.raftAddress, row.clientAddress or "-", "yes" if row.isLeader else "",
        row.suffrage, ("unreachable" if row.error else row.lastContact or "-"),
        "-" if row.lag is None else str(row.lag)) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(line[:-1], widths)), line[-1]])
             for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    rows = cluster_status(_operator(args, console))
    if args.format == "json":
        console.out(json.dumps({"nodes": [asdict(row) for row in rows]}))
    else:
        console.out(render_table(rows))
        for row in rows:
            if row.error:
                console.error(f"node {row.id} ({row.clientAddress or row.raftAddress}) did "
                              f"not answer its healthcheck: {row.error}")
    return 0


# --------------------------------------------------------------------------------------------
# Command line


def _node_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) < 2**63):
        raise argparse.ArgumentTypeError(f"{text!r} is not a node id (an integer from 1)")
    return int(text)


def _address_arg(option: str, text: str, *, url: bool) -> str:
    """C{host:port} (or, for a client address, an http/https URL), else exit 2."""
    bare = text
    if url and text.startswith(("http://", "https://")):
        bare = text.split("://", 1)[1].rstrip("/")
    match = _ADDRESS.fullmatch(bare)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        example = "10.0.0.2:9091 or http://10.0.0.2:9091" if url else "10.0.0.2:7071"
        raise CliError(f"{option}: {text!r} is not host:port, e.g. {example}", 2)
    return text


_STATUS_DESCRIPTION = """\
Print the cluster's nodes as the node asked sees them (GET /api/v1/cluster/list-nodes),
each completed with that node's own GET /api/v1/healthcheck:

  ID, RAFT ADDRESS, CLIENT ADDRESS  the node (client address from list-nodes or Replicas)
  LEADER                            yes for the Raft leader
  SUFFRAGE                          Voter, or Nonvoter (replicates, does not vote)
  LAST CONTACT                      since the node last heard from the leader (its
                                    raftStats last_contact), or why it did not answer
  LAG                               log entries its store trails the leader's commit index

--format json prints {"nodes": [{"id", "raftAddress", "clientAddress", "isLeader",
"suffrage", "state", "lastContact", "lag", "error"}, ...]} instead."""

_CHANGE_NOTE = """

The change is leader-only: a follower answers 403 naming the leader, and the command sends
it once more to the leader (its client address from list-nodes or Replicas), saying so on
stderr. It prints the node's answer (its status) on stdout; a refusal is one line on stderr
with the node's status code and message, exit status 1."""


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser, "the node's config file: which node to ask, and its "
                               "AuthUsername/AuthPassword (else node-secrets.json in DataDir)")
    parser.add_argument("--url", metavar="BASE",
                        help="ask this node instead of the configured one, e.g. "
                             "http://10.0.0.2:9091")
    parser.add_argument("--cafile", metavar="PEM",
                        help="CA certificate(s) to trust for https:// nodes")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=REQUEST_TIMEOUT,
                        help=f"how long to wait for each answer (default {REQUEST_TIMEOUT:g})")


def _action(actions: Any, name: str, summary: str, description: str,
            handler: Callable[[argparse.Namespace, Console], int],
            node_id: bool = False) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=summary, description=description,
                                formatter_class=FORMATTER)
    if node_id:
        parser.add_argument("--node-id", metavar="N", type=_node_id, required=True,
                            help="the node's NodeId")
    _common(parser)
    parser.set_defaults(handler=handler)
    return parser


def add_parser(commands: Any, parser_class: type[Parser]) -> None:
    """The `cluster` command group."""
    cluster = commands.add_parser(
        "cluster", formatter_class=FORMATTER,
        help="see and change a running cluster (status, add, remove, promote, demote, "
             "transfer)",
        description="See and change a running cluster through its cluster-management API,\n"
                    "with the node's peer credentials (README, 'Operating a cluster').")
    actions = cluster.add_subparsers(dest="action", metavar="<action>", required=True,
                                     parser_class=parser_class)
    status = _action(actions, "status", "print the cluster's nodes, leader and lag",
                     _STATUS_DESCRIPTION, cmd_status)
    status.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (default) or json")
    add = _action(actions, "add", "add a node to the cluster (POST add-node)",
                  "Add a node: POST /api/v1/cluster/add-node?nodeId=&nodeAddress=&"
                  "clientAddress=.\nStart the new node first, with a config whose Replicas "
                  "name the existing nodes\nand itself." + _CHANGE_NOTE, cmd_add,
                  node_id=True)
    add.add_argument("--node-address", metavar="HOST:PORT", required=True,
                     help="the new node's Raft address (its RaftAddress)")
    add.add_argument("--client-address", metavar="HOST:PORT", required=True,
                     help="the new node's HTTP API address")
    _action(actions, "remove", "remove a node from the cluster (POST remove-node)",
            "Remove a node: POST /api/v1/cluster/remove-node?nodeId=." + _CHANGE_NOTE,
            cmd_remove, node_id=True)
    _action(actions, "promote", "make a non-voter a voter (POST promote-node)",
            "Promote a non-voter to a voter: POST /api/v1/cluster/promote-node?nodeId=."
            + _CHANGE_NOTE, cmd_promote, node_id=True)
    _action(actions, "demote", "make a voter a non-voter (POST demote-node)",
            "Demote a voter to a non-voter (it replicates but does not vote): "
            "POST /api/v1/cluster/demote-node?nodeId=." + _CHANGE_NOTE, cmd_demote,
            node_id=True)
    _action(actions, "transfer", "move leadership to another node (POST transfer-leadership)",
            "Transfer leadership away from the current leader: "
            "POST /api/v1/cluster/transfer-leadership." + _CHANGE_NOTE
            + f"\n\nBefore stopping the leader for an upgrade, run `{PROG} cluster transfer`.",
            cmd_transfer)
