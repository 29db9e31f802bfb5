"""The cluster-management API (README "Operating a cluster"): membership and leadership.

Every call needs peer auth (L{PeerAuth}: the node's C{AuthUsername}/C{AuthPassword} with
C{X-Peer}); the changes are leader-only, and a follower answers them 403 naming the leader.
"""

from __future__ import annotations

from typing import Any, cast

from .session import Session

CLUSTER = "/api/v1/cluster"


class ClusterApi:
    """C{/api/v1/cluster/...}: each method returns the envelope's C{data} (the changes
    answer C{{"status": "..."}})."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every Raft member: C{id}, C{address} (Raft), C{isLeader}, C{suffrage}."""
        return cast(list, self._session.call("GET", f"{CLUSTER}/list-nodes"))

    def add_node(self, node_id: int, node_address: str, client_address: str) -> dict[str, Any]:
        return self._change("add-node", nodeId=node_id, nodeAddress=node_address,
                            clientAddress=client_address)

    def remove_node(self, node_id: int) -> dict[str, Any]:
        return self._change("remove-node", nodeId=node_id)

    def promote_node(self, node_id: int) -> dict[str, Any]:
        return self._change("promote-node", nodeId=node_id)

    def demote_node(self, node_id: int) -> dict[str, Any]:
        return self._change("demote-node", nodeId=node_id)

    def transfer_leadership(self) -> dict[str, Any]:
        return self._change("transfer-leadership")

    def _change(self, action: str, **query: Any) -> dict[str, Any]:
        # never re-sent by the retry policy: a membership change is not idempotent
        return cast(dict, self._session.call("POST", f"{CLUSTER}/{action}", query=query,
                                             idempotent=False))
