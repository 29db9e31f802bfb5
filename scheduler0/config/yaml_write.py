"""Writing a complete config file (``dump_yaml``): every key, grouped, with its doc, default and
variable; etc/scheduler0.yml is exactly its output for no values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from .keys import BY_NAME, GROUP_TITLES, KEYS, Key, ReplicaList, StrList
from .sources import accept, unknown_key


def _yaml_value(key: Key, value: Any) -> str:
    """The YAML text of one ``Key: value`` entry, quoted where YAML would misread it."""
    if key.type == ReplicaList:
        plain: Any = [replica.to_mapping() for replica in value]
    elif key.type == StrList:
        plain = list(value)
    else:
        plain = value
    if isinstance(plain, list) and not plain:
        return f"{key.name}: []\n"
    for allow_unicode in (True, False):
        text = yaml.safe_dump({key.name: plain}, sort_keys=False, default_flow_style=False,
                              allow_unicode=allow_unicode, width=1000)
        # Some characters (U+0085, U+2028, ...) are written raw but read back as line breaks;
        # escaping everything non-ASCII is uglier but always reads back exactly.
        if yaml.safe_load(text) == {key.name: plain}:
            break
    return text


def _describe_default(key: Key) -> str:
    if key.default is None:
        return "unset"
    if key.type in (StrList, ReplicaList):
        return "[]"
    if key.type is bool:
        return "true" if key.default else "false"
    if key.type is str:
        return repr(key.default) if key.default == "" else key.default
    if key.type is float:
        return f"{key.default:g}"
    return str(key.default)


def dump_yaml(values: Mapping[str, object]) -> str:
    """Render a complete config file: every key, grouped, each with a comment line saying what
    it does, its default and its environment variable.

    ``values`` maps key names to values (strings are coerced as on the command line; missing
    keys get their defaults).  Each value is validated so the file written is one that
    ``load_config`` accepts; unknown names raise ConfigError.  Keys whose value is None
    (unset secrets) are written commented out.
    """
    resolved: dict[str, Any] = {}
    for name, raw in values.items():
        key = BY_NAME.get(name)
        if key is None:
            raise unknown_key(name, raw, "dump_yaml")
        resolved[name] = accept(key, raw, isinstance(raw, str) and key.type is not str,
                                 "dump_yaml")
    lines = [
        "# Scheduler0 configuration.",
        "# Precedence: built-in defaults < this file < SCHEDULER0_<UPPER_SNAKE> environment "
        "variables < command line.",
        "# Unknown keys (and SCHEDULER0_* variables that name no key), wrong types and "
        "impossible values stop start-up with a one-line error.",
        "# A list is written [a, b] (YAML flow syntax) here, in its variable and in "
        "--set 'Key=[a, b]'.",
    ]
    group = None
    for key in KEYS:
        if key.group != group:
            group = key.group
            lines += ["", f"# ---- {GROUP_TITLES[group]} " + "-" * (60 - len(GROUP_TITLES[group]))]
        value = resolved.get(key.name, key.default)
        lines.append(f"# {key.doc} Default: {_describe_default(key)}. Env: {key.env}.")
        if key.example:
            lines.append(f"# e.g. {key.name}:{key.example[0]}")
            lines.extend(f"# {line}" for line in key.example[1:])
        if value is None:
            lines.append(f"# {key.name}:")
        else:
            lines.extend(_yaml_value(key, value).rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n"
