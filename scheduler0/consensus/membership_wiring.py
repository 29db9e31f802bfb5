"""
How a node builds its L{ClusterMembership}: its own member entry and C{Replicas} from the
configuration, the command log's observers, ending the process for reset-raft, and the
peer calls add-self and remove-self make.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Any, Callable

import treq

from ..twisted_private import exit_after_shutdown
from .membership import Member, MemberList
from .membership_changes import ClusterMembership


#: Seconds add-self waits for another node's add-node (it answers once the node caught up)
PEER_CALL_TIMEOUT = 90.0


def _peer_caller(reactor: Any, username: str, password: str) -> Callable[[str], Any]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {token}", "X-Peer": "peer"}

    async def call(url: str) -> tuple[int, str]:
        d = treq.post(url, headers=headers, reactor=reactor, persistent=False)
        d.addTimeout(PEER_CALL_TIMEOUT, reactor)
        response = await d
        body = await treq.json_content(response)
        return response.code, str(body.get("data", ""))[:300]
    return call


def cluster_membership(config: Any, node_secrets: Any, commands: Any, clock: Any,
                       reactor: Any, db_path: str) -> ClusterMembership:
    """The node's membership operations; on a single node (no Raft) they only list it."""
    raft = commands if config.replicas and hasattr(commands, "change_membership") else None
    own = Member(config.node_id, config.advertised_raft_address(), config.http_base_url())
    replicas = [Member(r.node_id, r.raft_address, r.address) for r in config.replicas]
    members = MemberList(commands, raft, clock, db_path, own, replicas)
    membership = ClusterMembership(
        members,
        end_process=partial(exit_after_shutdown, reactor) if reactor is not None else None,
        call_peer=_peer_caller(reactor, node_secrets.auth_username,
                               node_secrets.auth_password) if reactor is not None else None)
    commands.add_observer(members.observe)
    commands.add_replaced_observer(members.reload)
    if raft is not None:
        raft.add_state_observer(members.seed)
    return membership
