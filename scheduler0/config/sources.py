"""Loading: defaults < file < environment < command line, each value remembered with its origin
so an error can say where the offending value came from.

Also the rules for names that are not keys: an unknown key or SCHEDULER0_* variable stops
start-up with a suggestion, except the client variables in ``CLIENT_ENV_VARS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError, Invalid, origin_plain, origin_text, show, suggest, type_name
from .keys import BY_NAME, ENV_PREFIX, KEYS, Key
from .model import Config
from .parsing import parse
from .replica import Replica
from .yaml_read import read_file


def _fail(key: Key, raw: object, problem: Invalid, source: str) -> ConfigError:
    """Build the one-line error for a key from a parse/check failure."""
    if key.secret:
        # never echo a secret; an empty string or a wrong type gives nothing away
        kind = type_name(raw).split(" ", 1)[-1]
        shown = "''" if raw == "" else f"<hidden {kind}>"
    else:
        shown = problem.shown if problem.shown is not None else show(raw)
    reason = problem.reason or f"expected {key.allowed}"
    return ConfigError(f"{key.name}: {shown} is not allowed; {reason} {origin_text(source)}",
                       key=key.name)


def accept(key: Key, raw: object, text: bool, source: str) -> Any:
    """Parse and validate one value from one layer, or raise ConfigError."""
    try:
        return key.validator(parse(key, raw, text))
    except Invalid as problem:
        raise _fail(key, raw, problem, source) from None


def _looks_secret(name: str, hint_is_secret: bool) -> bool:
    return hint_is_secret or any(word in name.lower() for word in ("pass", "secret", "token"))


def _hidden(value: object) -> str:
    return f"<hidden {type_name(value).split(' ', 1)[-1]}>"


# What an error about an unknown name points to: a command every install has (pip installs no
# etc/ directory); it writes the annotated file of every key, as etc/scheduler0.yml.
LIST_KEYS_COMMAND = "scheduler0 config init --defaults"


def unknown_key(name: object, value: object, source: str) -> ConfigError:
    """A misspelt key stops start-up with the closest known name; secrets stay hidden."""
    hint = suggest(str(name), [key.name for key in KEYS])
    advice = (f"did you mean {hint}?" if hint else
              f"run `{LIST_KEYS_COMMAND}` for a file listing the known keys")
    secret = _looks_secret(str(name), hint is not None and BY_NAME[hint].secret)
    shown = _hidden(value) if secret else show(value, 60)
    return ConfigError(f"{name}: unknown key (value {shown}) is not allowed; "
                       f"{advice} {origin_text(source)}", key=str(name))


# Variables with the prefix that are not keys and are still allowed: the ones
# ``scheduler0 create credential --format env`` prints for a user's scripts.  The node never
# reads them; they are listed so that a shell holding them can still start a node.
CLIENT_ENV_VARS = ("SCHEDULER0_API_KEY", "SCHEDULER0_API_SECRET")


def _known_variables() -> dict[str, Key | None]:
    """Every SCHEDULER0_* name the loader accepts: key -> its Key, client variable -> None."""
    known: dict[str, Key | None] = {name: None for name in CLIENT_ENV_VARS}
    for key in KEYS:
        for variable in (key.env, *key.env_aliases):
            known[variable] = key
    return known


# The Go original's variables that have no counterpart here (PySyncObj has no such knobs):
# a closest-spelling suggestion would point at an unrelated key.
_GO_ONLY_ENV_VARS = frozenset({
    "SCHEDULER0_RAFT_HEARTBEAT_TIMEOUT", "SCHEDULER0_RAFT_ELECTION_TIMEOUT",
    "SCHEDULER0_RAFT_COMMIT_TIMEOUT", "SCHEDULER0_RAFT_MAX_APPEND_ENTRIES",
})


def _unknown_variable(name: str, value: str) -> ConfigError:
    if name in _GO_ONLY_ENV_VARS:
        return ConfigError(f"{name}: unknown variable (value {show(value, 60)}) is not allowed; "
                           f"it is a setting of the Go original that this node does not have, "
                           f"unset it (from the environment)", key=name)
    known = _known_variables()
    # compare what follows the prefix, which every candidate shares
    canonical = [key.env for key in KEYS] + list(CLIENT_ENV_VARS)
    tail = suggest(name[len(ENV_PREFIX):], [c[len(ENV_PREFIX):] for c in canonical])
    hint = ENV_PREFIX + tail if tail else None
    hinted = known.get(hint) if hint else None
    advice = (f"did you mean {hint}?" if hint else
              f"run `{LIST_KEYS_COMMAND}` for a file naming each key's variable")
    secret = _looks_secret(name, hint in CLIENT_ENV_VARS or (hinted is not None
                                                             and hinted.secret))
    shown = _hidden(value) if secret else show(value, 60)
    return ConfigError(f"{name}: unknown variable (value {shown}) is not allowed; {advice} "
                       f"(from the environment)", key=name)


def _check_environment(environ: Mapping[str, str]) -> None:
    """A misspelt variable stops start-up like a misspelt key, instead of being ignored."""
    known = _known_variables()
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            raise _unknown_variable(name, environ[name])


def _cross_check(values: dict[str, Any], sources: dict[str, str]) -> None:
    """Checks that involve more than one key."""
    if values["Protocol"] == "https":
        for name in ("TLSCertFile", "TLSKeyFile"):
            path = values[name]
            if not path:
                raise ConfigError(
                    f"{name}: '' is not allowed; Protocol https needs TLSCertFile and TLSKeyFile "
                    f"set to PEM files (Protocol {origin_plain(sources['Protocol'])})", key=name)
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise ConfigError(
                    f"{name}: {show(path)} is not allowed; expected an existing readable PEM "
                    f"file because Protocol is https {origin_text(sources[name])}", key=name)
    replicas: tuple[Replica, ...] = values["Replicas"]
    if replicas:
        ids = [replica.node_id for replica in replicas]
        if values["NodeId"] not in ids:
            listed = ", ".join(str(i) for i in ids)
            raise ConfigError(
                f"NodeId: {values['NodeId']} is not allowed; expected one of the NodeIds listed "
                f"in Replicas ({listed}) (NodeId {origin_plain(sources['NodeId'])}; Replicas "
                f"{origin_plain(sources['Replicas'])})", key="NodeId")


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, object] | None = None) -> Config:
    """Build a validated Config from defaults < file < environment < overrides.

    - ``path``: YAML file of ``Key: value`` lines; None = no file.  Values there must already
      have the key's type (an int for an int key; an int is fine for a float key; booleans are
      never numbers); ``null`` means "unset" for SecretKey/AuthUsername/AuthPassword and an
      empty list for list keys.  Unknown keys are errors with a suggestion.
    - ``environ``: ``None`` = ``os.environ``.  ``SCHEDULER0_<UPPER_SNAKE>`` names of known keys
      (and the Go original's SCHEDULER0_LOGLEVEL / SCHEDULER0_PEER_CONNECT_RETRY_DELAY_SECONDS)
      are read.  Any other SCHEDULER0_* variable is an error naming it (a misspelling would
      otherwise be silently ignored), except the client variables in ``CLIENT_ENV_VARS``,
      which the node does not read.  Strings are coerced: ints, floats, booleans
      (true/false/yes/no/1/0/on/off), lists (a YAML flow list ``[a, b]``, a JSON array or
      comma-separated), Replicas (a YAML flow or JSON list of mappings with
      Address/RaftAddress/NodeId or address/raft_address/nodeId/node_id).
    - ``overrides``: the command line, keyed by key name (``"Port"``).  Strings are coerced like
      the environment, other values must already have the right type; a None value means "not
      given" (the usual argparse default) and is skipped.  Unknown names are errors.

    Raises ConfigError with a one-line message on the first problem found.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {key.name: key.default for key in KEYS}
    sources: dict[str, str] = {key.name: "default" for key in KEYS}

    if path is not None:
        path_text = os.fspath(path)
        origin = f"file {path_text}"
        for name, raw in read_file(path_text).items():
            key = BY_NAME.get(name) if isinstance(name, str) else None
            if key is None:
                raise unknown_key(name, raw, origin)
            values[name] = accept(key, raw, False, origin)
            sources[name] = origin

    _check_environment(environ)
    for key in KEYS:
        for variable in (key.env, *key.env_aliases):
            if variable in environ:
                origin = f"env {variable}"
                values[key.name] = accept(key, environ[variable], True, origin)
                sources[key.name] = origin
                break

    for name, raw in (overrides or {}).items():
        key = BY_NAME.get(name)
        if key is None:
            raise unknown_key(name, raw, "command line")
        if raw is None:
            continue
        values[name] = accept(key, raw, isinstance(raw, str), "command line")
        sources[name] = "command line"

    _cross_check(values, sources)
    return Config(**{key.attr: values[key.name] for key in KEYS}, source=sources)
