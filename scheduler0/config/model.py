"""The ``Config`` class, derived from the key table so a key is declared once (in ``keys``).

Each ``Key`` becomes one attribute named ``Key.attr`` (``HTTPExecutorPayloadMaxSizeMb`` ->
``http_executor_payload_max_size_mb``), in table order, with the key's default and Python type
(``attrs.fields(Config).port.type is int``).  Static type checkers do not see these
attributes; the table is the reference.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import attrs

from .keys import KEYS, Key, ReplicaList, StrList


def _hidden_repr(value: object) -> str:
    """Secrets never appear in a repr (logs, tracebacks); only whether they are set."""
    return "None" if value is None else "'<hidden>'"


def _default_sources() -> Mapping[str, str]:
    return types.MappingProxyType({key.name: "default" for key in KEYS})


def _to_tuple(value: Any) -> tuple:
    """List keys are stored as tuples so a Config stays immutable and hashable."""
    return tuple(value)


def _key_field(key: Key) -> Any:
    """The attrs field holding one key."""
    kwargs: dict[str, Any] = {}
    if key.secret:
        kwargs["repr"] = _hidden_repr
    if key.type in (StrList, ReplicaList):
        kwargs["converter"] = _to_tuple
    field_type = key.type | None if key.optional else key.type
    return attrs.field(default=key.default, type=field_type, **kwargs)


def _fields() -> dict[str, Any]:
    """Every key's field in table order, then ``source``."""
    fields = {key.attr: _key_field(key) for key in KEYS}
    # key name -> "default", "file <path>", "env SCHEDULER0_X" or "command line"
    fields["source"] = attrs.field(
        factory=_default_sources, eq=False, repr=False, type=Mapping[str, str],
        converter=lambda m: types.MappingProxyType(dict(m)),
    )
    return fields


@attrs.frozen(these=_fields())
class Config:
    """Validated settings of one node.  Build it with ``load_config``; constructing it directly
    (or with ``attrs.evolve``) skips validation and is meant for tests.

    List-valued keys are tuples so the object stays immutable and hashable.
    """

    def http_base_url(self) -> str:
        """This node's own HTTP address, as other nodes list it in Replicas."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"

    def advertised_raft_address(self) -> str:
        """The Raft address peers should dial: NodeAdvAddress, or RaftAddress when unset."""
        return self.node_adv_address or self.raft_address

    def to_mapping(self) -> dict[str, object]:
        """Key name -> plain YAML-able value; ``dump_yaml(config.to_mapping())`` writes it back."""
        result: dict[str, object] = {}
        for key in KEYS:
            value = getattr(self, key.attr)
            if key.type == ReplicaList:
                value = [replica.to_mapping() for replica in value]
            elif key.type == StrList:
                value = list(value)
            result[key.name] = value
        return result
