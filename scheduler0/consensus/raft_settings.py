"""
How a node's Raft log is set up: its addresses, partners, timeouts and bounds from the
configuration, and the password that encrypts its port (derived from the shared SecretKey).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import attrs
from twisted.logger import Logger

log = Logger()


def raft_password(secret_key: str) -> str:
    """The password PySyncObj encrypts the Raft port with, derived from the shared
    C{SecretKey}: a node with another secret cannot join, and the port never unpickles what
    an outsider sends."""
    return hmac.new(secret_key.encode(), b"scheduler0 raft transport",
                    hashlib.sha256).hexdigest()


@attrs.frozen
class RaftSettings:
    """
    What the Raft log needs from the configuration.

    @ivar self_address: the address peers dial (NodeAdvAddress, or RaftAddress).
    @ivar bind_address: where to listen when it differs from C{self_address}, else None.
    @ivar partners: the other voters' Raft addresses.
    @ivar node_ids: Raft address -> NodeId, for C{leader()}.
    """

    self_address: str
    partners: tuple[str, ...]
    node_ids: dict[str, str]
    data_dir: str
    password: str
    bind_address: str | None = None
    #: seconds a proposal waits for its result (0: as long as it takes, a single node)
    apply_timeout: float = 10.0
    transport_timeout: float = 3.5
    snapshot_interval: int = 300
    snapshot_threshold: int = 5000
    max_in_flight: int = 1000
    tick_interval: float = 0.005
    bind_retries: int = 5
    #: this node's C{NodeId} (its row in the replicated member list)
    node_id: str = ""
    #: C{JoinCluster}: True for a node that joins a running cluster; it starts as a learner
    #: (a non-voter) until the stored member list lists it as a voter
    join: bool = False

    @classmethod
    def from_config(cls, config: Any, secret_key: str) -> "RaftSettings":
        own = config.advertised_raft_address()
        ids = {replica.raft_address: str(replica.node_id) for replica in config.replicas}
        ids[own] = str(config.node_id)
        partners = tuple(replica.raft_address for replica in config.replicas
                         if replica.node_id != config.node_id)
        listed = [r.raft_address for r in config.replicas if r.node_id == config.node_id]
        if listed and listed[0] != own:
            log.warn("Replicas lists this node (NodeId {node_id}) at {listed} but it presents "
                     "itself as {own} (NodeAdvAddress or RaftAddress); peers will not "
                     "recognise it", node_id=config.node_id, listed=listed[0], own=own)
        return cls(
            self_address=own, partners=partners, node_ids=ids, data_dir=config.data_dir,
            password=raft_password(secret_key),
            bind_address=config.raft_address if config.raft_address != own else None,
            apply_timeout=config.raft_apply_timeout,
            transport_timeout=config.raft_transport_timeout,
            snapshot_interval=config.raft_snapshot_interval,
            snapshot_threshold=config.raft_snapshot_threshold,
            node_id=str(config.node_id), join=bool(getattr(config, "join_cluster", False)))
