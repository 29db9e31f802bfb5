"""Configuration: the one place every key is defined, loaded and validated.

Why this package is strict: the Go original silently ignored misspelt keys, ignored the
environment whenever a file existed and crashed later on zero values.  Here every key has a
default, a one-line doc and a validator; anything wrong stops start-up with a single line that
names the key, the offending value, what is allowed and where the value came from.

Precedence (lowest first): defaults < YAML file < environment (``SCHEDULER0_<UPPER_SNAKE>``)
< overrides (the command line).  Every value given at any layer must be valid, even one that a
higher layer replaces: a broken file is reported, not papered over.

Modules: ``keys`` (the key table, one entry per key), ``model`` (``Config``, derived from the
table), ``checks`` (value checks), ``parsing`` (raw value -> key type), ``sources`` (the layers,
origins, unknown names, ``load_config``), ``yaml_read`` / ``yaml_write`` (the file, ``dump_yaml``),
``errors`` (``ConfigError`` and message helpers), ``replica`` (``Replica``).
"""

from __future__ import annotations

from .errors import ConfigError
from .keys import KEYS, Key, env_var
from .model import Config
from .replica import Replica
from .sources import CLIENT_ENV_VARS, load_config
from .yaml_write import dump_yaml

__all__ = [
    "CLIENT_ENV_VARS",
    "Config",
    "ConfigError",
    "KEYS",
    "Key",
    "Replica",
    "dump_yaml",
    "env_var",
    "load_config",
]
