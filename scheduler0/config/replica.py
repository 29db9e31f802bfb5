"""The one structured value type of the configuration: a cluster member listed in Replicas.

Its own module because errors, checks, parsing and the key table all need it and it needs none
of them.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Replica:
    """One cluster member as listed in ``Replicas``."""

    address: str  # HTTP base URL of the node, e.g. "http://127.0.0.1:9091"  (YAML key Address)
    raft_address: str  # "host:port"  (YAML key RaftAddress)
    node_id: int  # >= 1  (YAML key NodeId)

    def to_mapping(self) -> dict[str, object]:
        """The YAML/JSON shape, so a Replica can be written back into a config file."""
        return {"Address": self.address, "RaftAddress": self.raft_address, "NodeId": self.node_id}
