"""Parsing: turning a raw value into its key's type.

Strict for YAML and typed values (an int for an int key, booleans are never numbers), coercing
for strings from the environment and the command line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

from .errors import Invalid, show, suggest, type_name
from .keys import Key, ReplicaList, StrList
from .replica import Replica
from .yaml_read import StrictLoader


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_REPLICA_FIELDS = {
    "address": "address",
    "Address": "address",
    "RaftAddress": "raft_address",
    "raft_address": "raft_address",
    "raftAddress": "raft_address",
    "NodeId": "node_id",
    "nodeId": "node_id",
    "node_id": "node_id",
}


def _wrong_type(value: object) -> Invalid:
    shown = repr(value) if isinstance(value, str) else show(value)
    return Invalid(shown=f"{shown} ({type_name(value)})")


def _parse_int(value: object, text: bool) -> int:
    if text and isinstance(value, str):
        stripped = value.strip()
        if not re.fullmatch(r"[+-]?\d+", stripped):
            raise Invalid()
        return int(stripped)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _wrong_type(value)


def _parse_float(value: object, text: bool) -> float:
    if text and isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise Invalid() from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise _wrong_type(value)
    if not math.isfinite(number):
        raise Invalid()
    return number


def _parse_bool(value: object, text: bool) -> bool:
    if text and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise Invalid("expected true or false (also yes/no, on/off, 1/0)")
    if isinstance(value, bool):
        return value
    raise _wrong_type(value)


def _parse_text_list(value: str) -> list:
    """A list written on one line, as the example file writes lists: YAML flow syntax
    ``[10.0.0.0/8, 192.168.0.0/16]`` or ``[{Address: ..., NodeId: 1}]``, or a JSON array
    (which is tried first, so JSON keeps its exact meaning)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        try:
            parsed = yaml.load(value, Loader=StrictLoader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            where = f" at character {mark.index}" if mark else ""
            raise Invalid(f"not a valid list ({problem}{where}); write it as [a, b] in YAML "
                           f"flow syntax, quoting an item that starts with ':', or as a JSON "
                           f"array") from None
    if not isinstance(parsed, list):
        raise Invalid(shown=f"{show(value)} ({type_name(parsed)}, not a list)")
    return parsed


def _parse_str_list(value: object, text: bool) -> tuple[str, ...]:
    if text and isinstance(value, str):
        if value.strip().startswith("["):
            items = _parse_text_list(value)
        else:
            items = [part.strip() for part in value.split(",") if part.strip()]
    elif value is None:
        items = []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _wrong_type(value)
    for item in items:
        if not isinstance(item, str):
            raise Invalid(shown=f"entry {show(item)} ({type_name(item)})")
    return tuple(items)


def _parse_replica(index: int, entry: object, text: bool) -> Replica:
    where = f"entry {index} {show(entry)}"
    if isinstance(entry, Replica):
        entry = entry.to_mapping()
    if not isinstance(entry, Mapping):
        raise Invalid(f"each entry must be a mapping, got {type_name(entry)}", shown=where)
    fields: dict[str, object] = {}
    for name, field_value in entry.items():
        target = _REPLICA_FIELDS.get(name) if isinstance(name, str) else None
        if target is None:
            hint = suggest(str(name), ["Address", "RaftAddress", "NodeId"])
            extra = f"; did you mean {hint}?" if hint else ""
            raise Invalid(f"field {name!r} is unknown{extra} (fields: Address, RaftAddress, "
                           f"NodeId)", shown=where)
        if target in fields:
            raise Invalid(f"field {name!r} is given twice", shown=where)
        fields[target] = field_value
    for target, label in (("address", "Address"), ("raft_address", "RaftAddress"),
                          ("node_id", "NodeId")):
        if target not in fields:
            raise Invalid(f"field {label} is missing (fields: Address, RaftAddress, NodeId)",
                           shown=where)
    for target, label in (("address", "Address"), ("raft_address", "RaftAddress")):
        if not isinstance(fields[target], str):
            raise Invalid(f"{label} must be a string, got {type_name(fields[target])}",
                           shown=where)
    node_id = fields["node_id"]
    if text and isinstance(node_id, str) and re.fullmatch(r"\s*\d+\s*", node_id):
        node_id = int(node_id)
    if not isinstance(node_id, int) or isinstance(node_id, bool):
        raise Invalid(f"NodeId must be an integer, got {type_name(node_id)}", shown=where)
    return Replica(address=fields["address"], raft_address=fields["raft_address"],
                   node_id=node_id)


def _parse_replicas(value: object, text: bool) -> tuple[Replica, ...]:
    if text and isinstance(value, str):
        items = [] if not value.strip() else _parse_text_list(value)
    elif value is None:
        items = []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _wrong_type(value)
    return tuple(_parse_replica(i, entry, text) for i, entry in enumerate(items, start=1))


def parse(key: Key, value: object, text: bool) -> Any:
    """Turn a raw value into the key's type.  ``text`` allows coercing strings (env, CLI)."""
    if key.type is str:
        if value is None and key.optional:
            return None
        if isinstance(value, str):
            return value
        raise _wrong_type(value)
    if key.type is bool:
        return _parse_bool(value, text)
    if key.type is int:
        return _parse_int(value, text)
    if key.type is float:
        return _parse_float(value, text)
    if key.type == StrList:
        return _parse_str_list(value, text)
    if key.type == ReplicaList:
        return _parse_replicas(value, text)
    raise AssertionError(f"unhandled type for {key.name}: {key.type!r}")
