"""
C{scheduler0 create credential}: ask the running node for a new API credential, with the
node secrets as HTTP Basic auth, and print it as JSON, shell lines or bare fields.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import http.client
import json
import shlex
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ..config import CLIENT_ENV_VARS, Config
from ..node_secrets import SecretsError, resolve
from .common import (DEFAULT_CONFIG_FILE, FORMATTER, PROG, CliError, Console, Parser,
                     add_config_options, config_hint, load, package_version)

REQUEST_TIMEOUT = 10.0
SCOPES = ("read", "write", "execute", "admin")
# What `create credential` prints (the node's answer) and what --format env calls its parts.
CREDENTIAL_FIELDS = ("id", "apiKey", "apiSecret", "scopes", "archived", "dateCreated",
                     "dateModified", "projectIds")
#: Most projects one credential can be limited to (the node's limit too).
MAX_CREDENTIAL_PROJECTS = 1000
ENV_VARIABLES = (("apiKey", CLIENT_ENV_VARS[0]), ("apiSecret", CLIENT_ENV_VARS[1]))
_UNSPECIFIED_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


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
    config = load(args, console)
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
            "User-Agent": f"{PROG}-cli/{package_version()}",
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
                                      f"{PROG} start{config_hint(args)}")
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



def add_parser(commands: Any, parser_class: type[Parser]) -> None:
    """The `create` command group and its `credential` action."""
    create = commands.add_parser(
        "create", help="ask the running node for an API credential (create credential)",
        formatter_class=FORMATTER,
        description="Create things on a running node. The only action is `credential`.")
    create_actions = create.add_subparsers(dest="action", metavar="<action>", required=True,
                                           parser_class=parser_class)
    ccred = create_actions.add_parser(
        "credential", formatter_class=FORMATTER,
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
    add_config_options(ccred, "YAML configuration file of the node to ask")
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
