"""
The C{scheduler0} command line: set a node up, start it and get API credentials from it.

Every command reads its settings exactly as the daemon (C{twistd scheduler0}) does: the same
C{--config}, C{--host}, C{--port}, C{--data-dir}, C{--log-level} and C{--set Key=Value}
options fed to L{scheduler0.config.load_config} with the process environment, so the
precedence is defaults < file < C{SCHEDULER0_*} environment < command line, and a bad value
stops the command with the same one-line message the daemon would print (exit status 2).

Exit statuses: 0 success; 1 the command failed (a file would be overwritten, the node refused
or could not be reached, ...); 2 bad usage or configuration; 130 interrupted.

All output goes through L{Console} so tests (and embedding callers) can supply their own
streams, environment and password prompt.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import difflib
import getpass as getpass_module
import http.client
import json
import os
import shlex
import socket
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

from .config import CLIENT_ENV_VARS, KEYS, Config, ConfigError, dump_yaml, load_config
from .node_secrets import NodeSecrets, SecretsError, generate, resolve, secrets_path, write_file

__all__ = ["Console", "main"]

PROG = "scheduler0"
VERSION_FALLBACK = "0.1.0"
DEFAULT_CONFIG_FILE = "scheduler0.yml"
REQUEST_TIMEOUT = 10.0
SCOPES = ("read", "write", "execute", "admin")
# What `create credential` prints (the node's answer) and what --format env calls its parts.
CREDENTIAL_FIELDS = ("id", "apiKey", "apiSecret", "scopes", "archived", "dateCreated",
                     "dateModified", "projectIds")
#: Most projects one credential can be limited to (the node's limit too).
MAX_CREDENTIAL_PROJECTS = 1000
ENV_VARIABLES = (("apiKey", CLIENT_ENV_VARS[0]), ("apiSecret", CLIENT_ENV_VARS[1]))
# The keys `config init` asks for, in this order.
PROMPTED_KEYS = ("Host", "Port", "DataDir", "NodeId", "RaftAddress", "LogLevel")
SECRET_KEYS = ("SecretKey", "AuthUsername", "AuthPassword")
_KEY_BY_NAME = {key.name: key for key in KEYS}
_UNSPECIFIED_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class CliError(Exception):
    """Stops a command: C{message} goes to stderr as C{scheduler0: <message>}."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Console:
    """The command's surroundings: streams, environment and how to read a hidden answer."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None,
                 stderr: TextIO | None = None, environ: Mapping[str, str] | None = None,
                 getpass: Callable[[str], str] | None = None) -> None:
        self.stdin = sys.stdin if stdin is None else stdin
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.environ = os.environ if environ is None else environ
        self._getpass = getpass

    @property
    def interactive(self) -> bool:
        """True when a person can answer questions: stdin is a terminal."""
        try:
            return bool(self.stdin.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def error(self, message: str) -> None:
        self.note(f"{PROG}: {message}")

    def ask(self, prompt: str) -> str:
        """One line from stdin (prompt on stderr, so stdout stays clean); EOFError at end."""
        self.stderr.write(prompt)
        self.stderr.flush()
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def ask_hidden(self, prompt: str) -> str:
        """A line typed without echo (passwords and keys)."""
        if self._getpass is not None:
            return self._getpass(prompt)
        return getpass_module.getpass(prompt, stream=self.stderr)


# --------------------------------------------------------------------------------------------
# Options shared with the daemon


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected Key=Value, got {text!r}")
    return key.strip(), value


def _add_config_options(parser: argparse.ArgumentParser, config_help: str) -> None:
    group = parser.add_argument_group(
        "configuration (as for the daemon: defaults < --config file < SCHEDULER0_* "
        "environment < these options)")
    group.add_argument("-c", "--config", metavar="PATH", help=config_help)
    group.add_argument("--host", metavar="HOST",
                       help="interface the HTTP API binds / is reached on (Host)")
    group.add_argument("-p", "--port", metavar="N", help="TCP port of the HTTP API (Port)")
    group.add_argument("-d", "--data-dir", metavar="DIR",
                       help="directory for the database and node-secrets.json (DataDir)")
    group.add_argument("--log-level", metavar="LEVEL",
                       help="debug, info, warn or error (LogLevel)")
    group.add_argument("--set", dest="assignments", metavar="Key=Value", action="append",
                       type=_assignment, default=[],
                       help="set any configuration key, e.g. --set JobExecutionTimeout=10 "
                            "(repeatable)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The command line as load_config overrides, like L{scheduler0.tap.Options.overrides}."""
    values: dict[str, Any] = dict(args.assignments)
    for attr, key in (("host", "Host"), ("port", "Port"), ("data_dir", "DataDir"),
                      ("log_level", "LogLevel")):
        if getattr(args, attr) is not None:
            values[key] = getattr(args, attr)
    return values


def _daemon_options(args: argparse.Namespace) -> list[str]:
    """The same options spelled for the twistd plugin."""
    argv: list[str] = []
    if args.config is not None:
        argv += ["--config", args.config]
    for attr, flag in (("host", "--host"), ("port", "--port"), ("data_dir", "--data-dir"),
                       ("log_level", "--log-level")):
        if getattr(args, attr) is not None:
            argv += [flag, getattr(args, attr)]
    for key, value in args.assignments:
        argv += ["--set", f"{key}={value}"]
    return argv


def _load(args: argparse.Namespace, console: Console) -> Config:
    try:
        return load_config(args.config, console.environ, _overrides(args))
    except ConfigError as e:
        raise CliError(f"configuration error: {e}", 2) from None


def _config_hint(args: argparse.Namespace) -> str:
    return f" --config {args.config}" if args.config else ""


# --------------------------------------------------------------------------------------------
# config init


def _answer_problem(error: ConfigError) -> str:
    return str(error).removesuffix(" (from command line)")


def _prompt_config(console: Console, values: dict[str, Any], config: Config) -> dict[str, Any]:
    console.note("Answer each question or press Enter to keep the value in brackets.")
    for name in PROMPTED_KEYS:
        key = _KEY_BY_NAME[name]
        console.note(f"{name}: {key.doc}")
        while True:
            current = getattr(config, key.attr)
            answer = console.ask(f"{name} [{current}]: ").strip()
            if not answer:
                break
            candidate = {**values, name: answer}
            try:
                config = load_config(None, {}, candidate)
            except ConfigError as e:
                console.note(f"  {_answer_problem(e)}")
                continue
            values = candidate
            break
    return values


def _write_text(path: str, text: str, mode: int) -> None:
    """Write next to the target and rename, so a failed write leaves the old file intact."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            load_config(tmp, {}, None)
        except ConfigError as e:  # dump_yaml and load_config disagree: a bug, keep the old file
            raise CliError(f"internal error: the generated configuration does not load back: {e}")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def cmd_config_init(args: argparse.Namespace, console: Console) -> int:
    path = args.config or DEFAULT_CONFIG_FILE
    values = _overrides(args)
    try:
        # The environment is deliberately left out: the file records what was chosen here,
        # and SCHEDULER0_* variables still apply on top of it when the node starts.
        config = load_config(None, {}, values)
    except ConfigError as e:
        raise CliError(f"configuration error: {e}", 2) from None
    if os.path.isdir(path):
        raise CliError(f"{path} is a directory; give the file to write with --config PATH")
    if os.path.lexists(path) and not args.force:
        raise CliError(f"{path} already exists; pass --force to overwrite it")
    if console.interactive and not args.defaults:
        values = _prompt_config(console, values, config)
        config = load_config(None, {}, values)
    text = dump_yaml(config.to_mapping())
    # A file holding a secret is readable by its owner only.
    has_secret = any(getattr(config, _KEY_BY_NAME[name].attr) is not None
                     for name in SECRET_KEYS)
    try:
        _write_text(path, text, 0o600 if has_secret else 0o644)
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None
    console.out(f"Wrote {path}")
    console.out(f"Next: {PROG} credential init --config {path}   (node secrets, optional)")
    console.out(f"      {PROG} start --config {path}")
    return 0


# --------------------------------------------------------------------------------------------
# credential init


def _check_secret(name: str, value: str) -> str | None:
    """The problem with a secret value in words, or None when it is acceptable."""
    try:
        load_config(None, {}, {name: value})
    except ConfigError as e:
        return _answer_problem(e)
    return None


def _confirm(console: Console, prompt: str) -> bool:
    answer = console.ask(prompt).strip().lower()
    return answer in ("y", "yes")


def _prompt_secrets(console: Console, username: str | None, password: str | None,
                    secret_key: str | None) -> tuple[str, str, str, list[str]]:
    generated: list[str] = []
    fresh = generate()
    while username is None:
        answer = console.ask(f"AuthUsername [{fresh.auth_username}]: ").strip()
        answer = answer or fresh.auth_username
        problem = _check_secret("AuthUsername", answer)
        if problem:
            console.note(f"  {problem}")
        else:
            username = answer
    while password is None:
        answer = console.ask_hidden("AuthPassword (hidden; Enter = generate a random one): ")
        if not answer:
            password = fresh.auth_password
            generated.append("AuthPassword")
            break
        if console.ask_hidden("AuthPassword again: ") != answer:
            console.note("  the two passwords differ; try again")
            continue
        password = answer
    while secret_key is None:
        answer = console.ask_hidden("SecretKey (hidden; Enter = generate a random one): ")
        if not answer:
            secret_key = fresh.secret_key
            generated.append("SecretKey")
            break
        problem = _check_secret("SecretKey", answer)
        if problem:
            console.note(f"  {problem}")
        else:
            secret_key = answer
    return username, password, secret_key, generated


def cmd_credential_init(args: argparse.Namespace, console: Console) -> int:
    config = _load(args, console)
    for name, value in (("AuthUsername", args.username), ("AuthPassword", args.password),
                        ("SecretKey", args.secret_key)):
        if value is not None:
            problem = _check_secret(name, value)
            if problem:
                raise CliError(f"--{_flag(name)}: {problem}", 2)
    path = secrets_path(config.data_dir)
    replacing = os.path.lexists(path)
    if replacing and not args.force:
        if not console.interactive:
            raise CliError(f"node secrets already exist in {path}; pass --force to replace them")
        if not _confirm(console, f"Node secrets already exist in {path}. Replace them? [y/N] "):
            raise CliError(f"left {path} unchanged")
    username, password, secret_key = args.username, args.password, args.secret_key
    generated: list[str] = []
    if args.generate or not console.interactive:
        missing = [name for name, value in (("AuthUsername", username),
                                            ("AuthPassword", password),
                                            ("SecretKey", secret_key)) if value is None]
        if missing and not args.generate:
            flags = ", ".join(f"--{_flag(name)}" for name in missing)
            raise CliError(f"no value for {flags} and stdin is not a terminal to ask; pass "
                           f"{flags} or --generate to create random ones", 2)
        fresh = generate()
        username = username if username is not None else fresh.auth_username
        if password is None:
            password, generated = fresh.auth_password, generated + ["AuthPassword"]
        if secret_key is None:
            secret_key, generated = fresh.secret_key, generated + ["SecretKey"]
    else:
        username, password, secret_key, generated = _prompt_secrets(
            console, username, password, secret_key)
    try:
        written = write_file(config.data_dir, NodeSecrets(
            secret_key=secret_key, auth_username=username, auth_password=password))
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None
    console.out(f"Wrote node secrets to {written} (mode 0600); AuthUsername is {username}")
    if generated:
        console.out(f"Generated {' and '.join(generated)}; they are kept only in that file.")
    for name in SECRET_KEYS:
        source = config.source.get(name, "default")
        if source != "default":
            console.note(f"note: {name} is also set ({_origin(source)}), which takes "
                         f"precedence over the file")
    if replacing:
        console.note(f"A running node keeps its old secrets until it is restarted "
                     f"({PROG} start{_config_hint(args)}).")
    return 0


def _flag(name: str) -> str:
    return {"AuthUsername": "username", "AuthPassword": "password",
            "SecretKey": "secret-key"}[name]


def _origin(source: str) -> str:
    if source.startswith("env "):
        return f"environment {source[4:]}"
    return source


# --------------------------------------------------------------------------------------------
# create credential


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would resend the node's Basic credentials elsewhere."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


def _node_url(config: Config) -> str:
    """Where this machine reaches the node: its own base URL, with a wildcard bind address
    (0.0.0.0, ::) replaced by loopback."""
    host = _UNSPECIFIED_HOSTS.get(config.host, config.host)
    host = f"[{host}]" if ":" in host else host
    return f"{config.protocol}://{host}:{config.port}"


def _base_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    path = parts.path.rstrip("/") if parts else ""
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or path or parts.query or parts.fragment or parts.username is not None):
        raise CliError(f"--url: {text!r} is not a node base URL such as http://127.0.0.1:9091",
                       2)
    return f"{parts.scheme}://{parts.netloc}"


def _scopes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    scopes = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if not scopes or unknown:
        shown = ", ".join(unknown) if unknown else repr(text)
        raise CliError(f"--scopes: {shown} is not allowed; expected a comma-separated list of "
                       f"{', '.join(SCOPES)}", 2)
    return [scope for scope in SCOPES if scope in scopes]


def _projects(text: str | None) -> list[int] | None:
    """--projects: comma-separated project ids (None: a node-wide credential)."""
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",") if part.strip()]
    bad = [part for part in parts
           if not (part.isascii() and part.isdigit() and 1 <= int(part) < 2**63)]
    if not parts or bad or len(parts) > MAX_CREDENTIAL_PROJECTS:
        shown = (f"{bad[0]!r} is not a project id" if bad
                 else f"{len(parts)} projects are too many" if parts else "no project given")
        raise CliError(f"--projects: {shown}; expected a comma-separated list of at most "
                       f"{MAX_CREDENTIAL_PROJECTS} project ids, e.g. 1,2", 2)
    return sorted({int(part) for part in parts})


def _message(payload: bytes) -> str:
    """The error text of an answer: the envelope's data, else the start of the body."""
    text = payload.decode("utf-8", "replace")
    try:
        envelope = json.loads(text)
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and "data" in envelope:
        data = envelope["data"]
        text = data if isinstance(data, str) else json.dumps(data)
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _fields(names: list[str] | None) -> list[str] | None:
    """The --field names, checked before the node is asked: a credential whose secret could
    not be printed would be lost."""
    if not names:
        return None
    for name in names:
        if name not in CREDENTIAL_FIELDS:
            close = difflib.get_close_matches(name, CREDENTIAL_FIELDS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise CliError(f"--field: {name!r} is not a field of a credential; {hint}expected "
                           f"one of {', '.join(CREDENTIAL_FIELDS)}", 2)
    return names


def _field_text(value: object) -> str:
    """A field on a line of its own: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _render_credential(credential: dict[str, Any], output: str,
                       fields: list[str] | None) -> str:
    """The created credential as --format / --field ask: JSON, shell lines, or bare values."""
    if fields:
        missing = [name for name in fields if name not in credential]
        if missing:
            raise CliError(f"the node's answer has no {', '.join(missing)} (it has "
                           f"{', '.join(sorted(credential))}); archive credential "
                           f"{credential.get('id')} and try again")
        return "\n".join(_field_text(credential[name]) for name in fields)
    if output == "env":
        for name in ("apiKey", "apiSecret"):
            if not isinstance(credential.get(name), str):
                raise CliError(f"the node's answer has no {name}: {json.dumps(credential)}")
        return "\n".join(f"export {variable}={shlex.quote(credential[name])}"
                         for name, variable in ENV_VARIABLES)
    return json.dumps(credential)


def cmd_create_credential(args: argparse.Namespace, console: Console) -> int:
    config = _load(args, console)
    if _fields(args.fields) and args.format == "env":
        raise CliError("--field and --format env cannot be combined; give one of them", 2)
    scopes = _scopes(args.scopes)
    projects = _projects(args.projects)
    base = _base_url(args.url) if args.url is not None else _node_url(config)
    if args.timeout <= 0:
        raise CliError("--timeout: expected a number of seconds > 0", 2)
    try:
        node_secrets, _ = resolve(config, create=False)
    except SecretsError as e:
        raise CliError(str(e)) from None
    url = base + "/api/v1/credentials"
    token = base64.b64encode(
        f"{node_secrets.auth_username}:{node_secrets.auth_password}".encode()).decode("ascii")
    body: dict[str, Any] = {} if scopes is None else {"scopes": scopes}
    if projects is not None:
        body["projectIds"] = projects
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(),
        method="POST", headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Peer": "cmd",
            "Authorization": f"Basic {token}",
            "User-Agent": f"{PROG}-cli/{_version()}",
        })
    handlers: list[Any] = [urllib.request.ProxyHandler({}), _NoRedirect()]
    if base.startswith("https:"):
        try:
            context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as e:
            raise CliError(f"--cafile: cannot load {args.cafile}: {e}", 2) from None
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    status, payload, location = _post(opener, request, url, args.timeout,
                                      f"{PROG} start{_config_hint(args)}")
    if status == 201:
        try:
            envelope = json.loads(payload)
        except ValueError:
            envelope = None
        if (isinstance(envelope, dict) and envelope.get("success") is True
                and isinstance(envelope.get("data"), dict)):
            console.out(_render_credential(envelope["data"], args.format, args.fields))
            return 0
        raise CliError(f"201 unexpected answer from {url}: {_message(payload)}")
    message = _message(payload) or "(empty answer)"
    if 300 <= status < 400:
        message = (f"the node redirected to {location or '(no Location)'}; not following it "
                   f"with the node's credentials (point --url at the right node)")
    raise CliError(f"{status} {message}")


def _post(opener: urllib.request.OpenerDirector, request: urllib.request.Request, url: str,
          timeout: float, start_hint: str) -> tuple[int, bytes, str | None]:
    """Send the request; returns (status, body, Location) or raises a one-line CliError."""
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(1 << 20), response.headers.get("Location")
    except urllib.error.HTTPError as e:
        try:
            body = e.read(1 << 20)
        except (OSError, http.client.HTTPException):
            body = b""
        return e.code, body, e.headers.get("Location") if e.headers else None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, ConnectionRefusedError):
            raise CliError(f"cannot connect to {url}: connection refused; the node does not "
                           f"seem to be running (start it with `{start_hint}`)") from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise CliError(f"{url} did not answer within {timeout:g} s") from None
        if isinstance(reason, ssl.SSLError):
            raise CliError(f"TLS with {url} failed: {getattr(reason, 'reason', None) or reason}; "
                           f"if the node's certificate is self-signed pass --cafile") from None
        if isinstance(reason, socket.gaierror):
            raise CliError(f"cannot resolve the host of {url}: {reason.strerror}") from None
        text = getattr(reason, "strerror", None) or str(reason)
        raise CliError(f"cannot reach {url}: {text}") from None
    except (TimeoutError, socket.timeout):
        raise CliError(f"{url} did not answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as e:
        raise CliError(f"the connection to {url} failed: {e or type(e).__name__}") from None


# --------------------------------------------------------------------------------------------
# start, version


def twistd_options_class() -> type:
    """twistd's C{ServerOptions} with the scheduler0 plugin always among its sub-commands, so
    the node starts even where Twisted's plugin discovery misses
    C{twisted/plugins/scheduler0_plugin.py} (an unusual install, an unwritable plugin cache)."""
    from twisted.application.service import ServiceMaker
    from twisted.scripts import twistd

    class ServerOptions(twistd.ServerOptions):  # type: ignore[misc, valid-type, name-defined]
        @property
        def subCommands(self):  # type: ignore[no-untyped-def]
            commands = list(super().subCommands)
            if "scheduler0" not in self.loadedPlugins:
                maker = ServiceMaker("Scheduler0", "scheduler0.tap",
                                     "A distributed cron-job server.", "scheduler0")
                self.loadedPlugins["scheduler0"] = maker
                commands.append(("scheduler0", None, maker.options, maker.description))
            return iter(commands)

    return ServerOptions


def _run_twistd(argv: list[str]) -> int:
    """Run C{twistd} in this process with C{argv} (C{argv[0]} is the program name); returns
    its exit status."""
    from twisted.application import app
    from twisted.scripts import twistd

    saved = sys.argv
    sys.argv = argv
    try:
        app.run(twistd.runApp, twistd_options_class())
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        sys.stderr.write(f"{e.code}\n")
        return 1
    finally:
        sys.argv = saved
    return 0


def cmd_start(args: argparse.Namespace, console: Console) -> int:
    _load(args, console)  # fail here, with status 2, before twistd starts
    return _run_twistd(["twistd", "--nodaemon", "--pidfile=", "scheduler0",
                        *_daemon_options(args)])


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version("scheduler0")
    except (ImportError, PackageNotFoundError):
        return VERSION_FALLBACK


def cmd_version(args: argparse.Namespace, console: Console) -> int:
    console.out(f"{PROG} {_version()}")
    return 0


# --------------------------------------------------------------------------------------------
# The parser


class _Parser(argparse.ArgumentParser):
    """argparse writing to the command's L{Console} instead of the process's streams."""

    console: Console | None = None

    def _print_message(self, message: str, file: Any = None) -> None:
        if not message:
            return
        if self.console is None:
            super()._print_message(message, file)
            return
        stream = self.console.stderr if file is sys.stderr else self.console.stdout
        stream.write(message)
        stream.flush()

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n"
                     f"Run '{self.prog} --help' for the options.\n")


_FORMATTER = argparse.RawDescriptionHelpFormatter

_TOP_DESCRIPTION = """\
Scheduler0: a distributed cron-job server that calls HTTP callbacks on schedule.

Getting started on one machine:
  scheduler0 config init              write ./scheduler0.yml (asks questions on a terminal)
  scheduler0 start -c scheduler0.yml  run the node in the foreground (Ctrl-C stops it)
  scheduler0 create credential -c scheduler0.yml
                                      print a new API key and secret from the running node

Files:
  ./scheduler0.yml                    the config file `config init` writes (--config PATH)
  <DataDir>/node-secrets.json         SecretKey, AuthUsername, AuthPassword (mode 0600), written
                                      by `credential init` or generated on the node's first start
  <DataDir>/                          the sqlite database; DataDir defaults to ./scheduler0-data

Settings: defaults < --config file < SCHEDULER0_<KEY> environment variables < command line
(--host, --port, --data-dir, --log-level, --set Key=Value). No file is read unless --config
is given. See etc/scheduler0.yml for every key."""

_TOP_EPILOG = f"Run '{PROG} <command> --help' for a command's options."


def build_parser(console: Console | None = None) -> argparse.ArgumentParser:
    """The whole command line; help and usage errors are written to C{console}."""
    parser_class = type("Parser", (_Parser,), {"console": console})
    parser = parser_class(prog=PROG, description=_TOP_DESCRIPTION, epilog=_TOP_EPILOG,
                     formatter_class=_FORMATTER)
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True,
                                     parser_class=parser_class)

    # config init
    config = commands.add_parser(
        "config", help="write a configuration file (config init)", formatter_class=_FORMATTER,
        description="Configuration files. The only action is `init`.")
    config_actions = config.add_subparsers(dest="action", metavar="<action>", required=True,
                                           parser_class=parser_class)
    init = config_actions.add_parser(
        "init", formatter_class=_FORMATTER, help="write a YAML file holding every key",
        description=f"""\
Write a YAML configuration file holding every key with a comment saying what it does,
its default and its environment variable.

The file goes to --config PATH, by default ./{DEFAULT_CONFIG_FILE} in the current directory;
an existing file is only replaced with --force. On a terminal (and without --defaults) it
asks for Host, Port, DataDir, NodeId, RaftAddress and LogLevel, showing the current value in
brackets: press Enter to keep it; an invalid answer is explained and asked again. Without a
terminal it writes the values given by the options below and the defaults, without asking.

SCHEDULER0_* environment variables are not copied into the file; they still apply on top of
it when the node starts. Secrets (SecretKey, AuthUsername, AuthPassword) are left unset in
the file unless given with --set; a file holding one is created with mode 0600.""",
        epilog=f"Example: {PROG} config init --defaults --port 9092 --data-dir /var/lib/scheduler0")
    _add_config_options(init, f"the file to write (default ./{DEFAULT_CONFIG_FILE})")
    init.add_argument("--defaults", action="store_true",
                      help="do not ask questions; write the defaults and the values given by "
                           "options")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=cmd_config_init)

    # credential init
    credential = commands.add_parser(
        "credential", help="set the node secrets (credential init)", formatter_class=_FORMATTER,
        description="The node secrets. The only action is `init`.")
    credential_actions = credential.add_subparsers(dest="action", metavar="<action>",
                                                   required=True, parser_class=parser_class)
    cinit = credential_actions.add_parser(
        "init", formatter_class=_FORMATTER,
        help="write SecretKey, AuthUsername and AuthPassword to <DataDir>/node-secrets.json",
        description="""\
Set the node secrets: SecretKey, AuthUsername and AuthPassword. They are written to
<DataDir>/node-secrets.json (mode 0600, DataDir from the configuration below), where the node
and the other commands of this tool read them. Nodes and this tool authenticate to each other
with HTTP Basic auth using AuthUsername and AuthPassword.

Values come from the options below; any that are missing are asked for on a terminal (the
password and key without echo; Enter generates a random one) or, with --generate, generated.
Without a terminal and without --generate a missing value is an error. An existing file is
replaced only with --force (on a terminal you are asked instead). The password is never
printed. You only need this to choose the secrets yourself: a node started without them
generates this file on its first start. Values set in the configuration itself (SecretKey,
AuthUsername, AuthPassword in the file, environment or --set) take precedence over this file.""")
    _add_config_options(cinit, "YAML configuration file (its DataDir says where the secrets go)")
    cinit.add_argument("--username", metavar="USER", help="the AuthUsername (no ':')")
    cinit.add_argument("--password", metavar="PASSWORD",
                       help="the AuthPassword; visible to other users in the process list, so "
                            "prefer the prompt or --generate")
    cinit.add_argument("--secret-key", metavar="KEY",
                       help="the SecretKey from which signing material is derived")
    cinit.add_argument("--generate", action="store_true",
                       help="generate random values for those not given (username: scheduler0)")
    cinit.add_argument("--force", action="store_true",
                       help="replace an existing node-secrets.json without asking")
    cinit.set_defaults(handler=cmd_credential_init)

    # create credential
    create = commands.add_parser(
        "create", help="ask the running node for an API credential (create credential)",
        formatter_class=_FORMATTER,
        description="Create things on a running node. The only action is `credential`.")
    create_actions = create.add_subparsers(dest="action", metavar="<action>", required=True,
                                           parser_class=parser_class)
    ccred = create_actions.add_parser(
        "credential", formatter_class=_FORMATTER,
        help="create an API key and secret for a client",
        description=f"""\
Ask the running node for a new API credential and print it as one JSON object on stdout:
{{"id", "apiKey", "apiSecret", "scopes", "projectIds", "archived", "dateCreated",
"dateModified"}}.
The secret is shown only this once; clients send it as the headers x-api-key and x-secret-key.
For scripts, --format env prints two shell lines instead,
  export {CLIENT_ENV_VARS[0]}=...
  export {CLIENT_ENV_VARS[1]}=...
(so: eval "$({PROG} create credential --format env)"), and --field NAME prints just that
field, one line per --field given.

The default scopes are read, write and execute: calls that need admin (managing credentials,
the monitoring and supervisor calls) need --scopes read,write,execute,admin.

--projects 1,2 limits the credential to those projects: it sees and changes only them,
their jobs, executions and signing secrets (404 for anything else), and cannot make the
node-wide calls (new projects, credentials, monitoring, supervisor) nor have admin. Without
--projects the credential is node-wide.

The node is reached at Protocol://Host:Port from the configuration (a wildcard Host such as
0.0.0.0 means this machine), or at --url. The request is authenticated with the node secrets
(AuthUsername/AuthPassword from the configuration or <DataDir>/node-secrets.json) and is never
sent through a proxy or along a redirect. Errors go to stderr as one line and exit with 1.""",
        epilog=f"Examples:\n"
               f"  eval \"$({PROG} create credential --config {DEFAULT_CONFIG_FILE} "
               f"--format env)\"\n"
               f"  {{ read -r KEY; read -r SECRET; }} < <({PROG} create credential "
               f"--scopes read --field apiKey --field apiSecret)")
    _add_config_options(ccred, "YAML configuration file of the node to ask")
    ccred.add_argument("--scopes", metavar="LIST",
                       help="comma-separated scopes from read, write, execute, admin "
                            "(default: the node's default, read,write,execute)")
    ccred.add_argument("--projects", metavar="IDS",
                       help="comma-separated project ids the credential is limited to, e.g. "
                            "1,2 (default: none, a node-wide credential)")
    ccred.add_argument("--format", choices=("json", "env"), default="json",
                       help=f"json (default): the whole credential as one JSON object; env: "
                            f"'export {CLIENT_ENV_VARS[0]}=...' and "
                            f"'export {CLIENT_ENV_VARS[1]}=...' lines for a shell")
    ccred.add_argument("--field", dest="fields", metavar="NAME", action="append",
                       help=f"print only this field of the credential, e.g. apiKey "
                            f"(repeatable: one line each; one of {', '.join(CREDENTIAL_FIELDS)})")
    ccred.add_argument("--url", metavar="BASE",
                       help="the node's base URL, e.g. https://node1.example:9091 (default: "
                            "from the configuration)")
    ccred.add_argument("--cafile", metavar="PEM",
                       help="CA certificates to verify an https node with (e.g. the node's own "
                            "certificate when self-signed); otherwise the system's CAs are used")
    ccred.add_argument("--timeout", metavar="SECONDS", type=float, default=REQUEST_TIMEOUT,
                       help=f"give up after this many seconds (default {REQUEST_TIMEOUT:g})")
    ccred.set_defaults(handler=cmd_create_credential)

    # start
    start = commands.add_parser(
        "start", formatter_class=_FORMATTER, help="run a node in the foreground",
        description="""\
Run a Scheduler0 node in the foreground (twistd --nodaemon --pidfile= scheduler0 with the
options below); Ctrl-C or SIGTERM stops it cleanly. Logs go to stderr.

With no options it serves a single node on 127.0.0.1:9091 and keeps its database and
node-secrets.json (generated on first start, mode 0600) in ./scheduler0-data/. The
configuration is checked first: a bad value stops it with one line and exit status 2.
To run it as a daemon use the systemd unit in etc/ or twistd directly.""")
    _add_config_options(start, "YAML configuration file")
    start.set_defaults(handler=cmd_start)

    # version
    version = commands.add_parser("version", help="print the version",
                                  description="Print the version of scheduler0.")
    version.set_defaults(handler=cmd_version)
    return parser


# --------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None,
         environ: Mapping[str, str] | None = None,
         getpass: Callable[[str], str] | None = None) -> int:
    """Run one command and return its exit status (the console script exits with it).

    @param argv: the arguments after the program name; None = C{sys.argv[1:]}.
    @param environ: where C{SCHEDULER0_*} variables are read; None = C{os.environ}.
    @param getpass: reads an answer without echo; None = L{getpass.getpass}.
    """
    console = Console(stdin, stdout, stderr, environ, getpass)
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(console)
    try:
        args = parser.parse_args(arguments)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        return int(args.handler(args, console))
    except CliError as e:
        console.error(e.message)
        return e.status
    except EOFError:
        console.note("")
        console.error("no answer (end of input); nothing was written")
        return 1
    except KeyboardInterrupt:
        console.note("")
        console.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
