"""
End-to-end fixtures: real C{twistd scheduler0} processes on 127.0.0.1, driven from trial's
reactor.

    node = Daemon(self, config={"MaxRequestBodyMb": 0.01})
    await node.start()                      # spawns twistd, waits for the healthcheck
    credential = await node.create_credential()   # through the CLI
    client = node.client(credential)        # treq, JSON envelope in and out
    code, envelope = await client.request("GET", "/projects")
    status = await node.stop()              # SIGTERM; ExitStatus(code=0, signal=None)
    await node.start()                      # same data dir, new log file

Every process spawned here is killed (SIGKILL) and reaped in the test's cleanup, whatever
the test did, and every HTTP connection pool is closed, so trial never sees a dirty reactor.
Each start writes the node's stdout and stderr to C{<workdir>/node-<n>.log}; failures quote
its tail.

The node runs from the source tree: C{PYTHONPATH} starts with the repository root, which
makes the subprocess import C{scheduler0} from here and find the plugin file
C{twisted/plugins/scheduler0_plugin.py} (Twisted scans every C{twisted/plugins} directory on
C{sys.path}).

About 450 lines, kept as one module: a node's process, its config, its CLI and its HTTP
client are one fixture that every end-to-end test uses together. Raw HTTP (exact bytes, and
when a request left) is in L{tests.raw_http}.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
from typing import Any, Iterable, Mapping

import attrs
import yaml
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.web.client import Agent, HTTPConnectionPool

reactor: Any = _reactor

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
CONFIG_NAME = "scheduler0.yml"
DATA_DIR_NAME = "data"
SECRETS_NAME = "node-secrets.json"


# --------------------------------------------------------------------------------------------
# Small helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """C{count} different free ports: each is held open until all are chosen (one
    L{free_port} after another may hand out the same port twice)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def node_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a node or CLI subprocess: this process's, without any
    C{SCHEDULER0_*} setting (so the runner's shell cannot change a test), with the repository
    root first on C{PYTHONPATH}, unbuffered output, plus C{extra}."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER0_")}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def sleep(seconds: float) -> Deferred:
    return deferLater(reactor, seconds, lambda: None)


def tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"<no log: {e}>"


def basic_headers(username: str, password: str, kind: str = "cmd") -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "X-Peer": kind}


def key_headers(credential: Mapping[str, Any]) -> dict[str, str]:
    return {"x-api-key": credential["apiKey"], "x-secret-key": credential["apiSecret"]}


@attrs.frozen
class ExitStatus:
    """How a process ended: C{code} is its exit code (None when a signal killed it)."""

    code: int | None
    signal: int | None

    @property
    def clean(self) -> bool:
        return self.code == 0 and self.signal is None

    @classmethod
    def from_reason(cls, reason: Any) -> "ExitStatus":
        value = reason.value
        if isinstance(value, ProcessDone):
            return cls(0, None)
        if isinstance(value, ProcessTerminated):
            return cls(value.exitCode, value.signal)
        raise value


# --------------------------------------------------------------------------------------------
# Processes


class _Child(ProcessProtocol):
    """Collects a child's output (to a file and/or memory) and reports its end."""

    def __init__(self, log_path: str | None = None) -> None:
        self.log = open(log_path, "ab") if log_path else None
        self.out = bytearray()
        self.err = bytearray()
        self.ended: Deferred = Deferred()
        self.status: ExitStatus | None = None

    def outReceived(self, data: bytes) -> None:
        self.out += data
        if self.log:
            self.log.write(data)
            self.log.flush()

    def errReceived(self, data: bytes) -> None:
        self.err += data
        if self.log:
            self.log.write(data)
            self.log.flush()

    def processEnded(self, reason: Any) -> None:
        if self.log:
            self.log.close()
        self.status = ExitStatus.from_reason(reason)
        self.ended.callback(self.status)

    @property
    def running(self) -> bool:
        return self.status is None

    def signal(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def wait(self, timeout: float) -> Deferred:
        """The ExitStatus, or TimeoutError after C{timeout} seconds (the process lives on)."""
        d: Deferred = Deferred()

        def ended(status: ExitStatus) -> ExitStatus:
            if not d.called:
                d.callback(status)
            return status

        self.ended.addCallback(ended)
        return d.addTimeout(timeout, reactor)

    def output(self) -> str:
        return (bytes(self.out) + bytes(self.err)).decode("utf-8", "replace")


async def reap(child: _Child) -> None:
    """Kill C{child} if it still runs and wait until it is gone (cleanup)."""
    if child.running:
        child.signal("KILL")
        await child.wait(30)


def spawn(testcase: Any, argv: list[str], *, cwd: str, env: Mapping[str, str],
          log_path: str | None = None) -> _Child:
    """Start C{argv}; the test's cleanup kills and reaps it if it is still running."""
    child = _Child(log_path)
    reactor.spawnProcess(child, argv[0], argv, env=dict(env), path=cwd)
    testcase.addCleanup(reap, child)
    return child


async def run(testcase: Any, argv: list[str], *, cwd: str, env: Mapping[str, str],
              timeout: float = 30) -> tuple[ExitStatus, str, str]:
    """Run C{argv} to completion: (status, stdout, stderr)."""
    child = spawn(testcase, argv, cwd=cwd, env=env)
    try:
        status = await child.wait(timeout)
    except DeferredTimeout:
        testcase.fail(f"{argv} did not finish within {timeout} s; output so far:\n"
                      f"{child.output()}")
    return (status, child.out.decode("utf-8", "replace"), child.err.decode("utf-8", "replace"))


def twistd_argv(config_path: str | None, *extra: str) -> list[str]:
    argv = [TWISTD, "--nodaemon", "--pidfile=", "scheduler0"]
    if config_path is not None:
        argv += ["--config", config_path]
    return argv + list(extra)


# --------------------------------------------------------------------------------------------
# HTTP


class NodeClient:
    """JSON over treq against one node; C{headers} go with every request."""

    def __init__(self, base_url: str, http: HTTPClient, headers: Mapping[str, str] | None = None,
                 timeout: float = 60) -> None:
        self.base_url = base_url
        self.http = http
        self.headers = dict(headers or {})
        self.timeout = timeout

    def with_headers(self, headers: Mapping[str, str]) -> "NodeClient":
        return NodeClient(self.base_url, self.http, headers, self.timeout)

    async def request(self, method: str, path: str, body: Any = None, *,
                      raw: bytes | None = None,
                      headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """(status, decoded envelope or None for an empty body). C{path} is below /api/v1."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        hdrs = dict(self.headers if headers is None else headers)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        d = self.http.request(method, self.base_url + "/api/v1" + path, data=data,
                              headers=hdrs)
        d.addTimeout(self.timeout, reactor)
        response = await d
        body_d = response.content()
        body_d.addTimeout(self.timeout, reactor)
        content = await body_d
        try:
            envelope = json.loads(content) if content else None
        except ValueError:
            raise AssertionError(f"{method} {path}: {response.code} with a body that is not "
                                 f"JSON: {content[:300]!r}") from None
        if envelope is not None:
            if set(envelope) != {"success", "data"} or envelope["success"] != (
                    response.code < 400):
                raise AssertionError(f"{method} {path}: {response.code} with a body that is "
                                     f"not the envelope: {content[:300]!r}")
        return response.code, envelope

    async def ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """The envelope's C{data}; fails unless the status is C{expect}."""
        code, envelope = await self.request(method, path, body)
        if code != expect:
            raise AssertionError(f"{method} {path}: expected {expect}, got {code}: "
                                 f"{str(envelope)[:500]}")
        return envelope["data"] if envelope else None


# --------------------------------------------------------------------------------------------
# The node


class Daemon:
    """
    One scheduler0 node run by C{twistd} in its own working directory.

    @param config: keys written to C{<workdir>/scheduler0.yml} over the fixture's defaults
        (free Port and RaftAddress, DataDir C{<workdir>/data}, RateLimitPerMinute 0).
    @param config_file: False starts C{twistd -n scheduler0} with no C{--config}; then the
        node reads only C{env} (and its built-in defaults).
    @param env: extra environment variables for the node and the CLI.
    """

    def __init__(self, testcase: Any, config: Mapping[str, Any] | None = None, *,
                 config_file: bool = True, env: Mapping[str, str] | None = None,
                 workdir: str | None = None, port: int | None = None,
                 raft_port: int | None = None) -> None:
        self.testcase = testcase
        self.workdir = os.path.abspath(workdir or testcase.mktemp())
        os.makedirs(self.workdir, exist_ok=True)
        self.port = port or free_port()
        self.raft_port = raft_port or free_port()
        self.extra_env = dict(env or {})
        self.config_path: str | None = None
        if config_file:
            settings: dict[str, Any] = {
                "Port": self.port,
                "RaftAddress": f"127.0.0.1:{self.raft_port}",
                "DataDir": os.path.join(self.workdir, DATA_DIR_NAME),
                "RateLimitPerMinute": 0,
            }
            settings.update(config or {})
            self.config_path = os.path.join(self.workdir, CONFIG_NAME)
            with open(self.config_path, "w", encoding="utf-8") as f:
                yaml.safe_dump(settings, f, sort_keys=False)
            self.data_dir = os.path.abspath(os.path.join(self.workdir, str(settings["DataDir"])))
        else:
            self.data_dir = os.path.join(self.workdir, "scheduler0-data")
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: _Child | None = None
        self.starts = 0
        self.log_path = ""
        self._pool: HTTPConnectionPool | None = None
        self._http: HTTPClient | None = None
        testcase.addCleanup(self._cleanup)

    # -- lifecycle ----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return node_env(self.extra_env)

    async def start(self, timeout: float = 20) -> "Daemon":
        """Spawn twistd and wait until the healthcheck answers 200."""
        assert self.process is None or not self.process.running, "already running"
        self.starts += 1
        self.log_path = os.path.join(self.workdir, f"node-{self.starts}.log")
        self.process = spawn(self.testcase, twistd_argv(self.config_path), cwd=self.workdir,
                             env=self.env(), log_path=self.log_path)
        self.started_at = time.monotonic()
        await self.wait_healthy(timeout)
        self.ready_after = time.monotonic() - self.started_at
        return self

    async def wait_healthy(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            assert self.process is not None
            if not self.process.running:
                self.testcase.fail(f"the node exited ({self.process.status}) before its "
                                   f"healthcheck answered; log tail:\n{tail(self.log_path)}")
            try:
                d = self.http().get(self.base_url + "/api/v1/healthcheck")
                d.addTimeout(2, reactor)
                response = await d
                await response.content()
                if response.code == 200:
                    return
                last = f"status {response.code}"
            except (CancelledError, DeferredTimeout, Exception) as e:  # refused, reset, ...
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                self.testcase.fail(f"the node's healthcheck did not answer within {timeout} s "
                                   f"({last}); log tail:\n{tail(self.log_path)}")
            await sleep(0.05)

    def signal(self, name: str) -> None:
        assert self.process is not None
        self.process.signal(name)

    async def wait_exit(self, timeout: float = 20) -> ExitStatus:
        assert self.process is not None
        try:
            status = await self.process.wait(timeout)
        except DeferredTimeout:
            self.process.signal("KILL")
            await self.process.wait(30)
            self.testcase.fail(f"the node did not exit within {timeout} s (killed it); log "
                               f"tail:\n{tail(self.log_path)}")
        await self._close_pool()
        return status

    async def stop(self, timeout: float = 20) -> ExitStatus:
        """SIGTERM, then wait for the process to end; returns how it ended."""
        self.signal("TERM")
        return await self.wait_exit(timeout)

    async def kill(self) -> ExitStatus:
        """SIGKILL (kill -9), then wait for the process to end."""
        self.signal("KILL")
        return await self.wait_exit(30)

    async def _cleanup(self) -> None:
        if self.process is not None:
            await reap(self.process)
        await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool, self._http = self._pool, None, None
        if pool is not None:
            await pool.closeCachedConnections()

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    # -- secrets, credentials, HTTP -----------------------------------------------------

    def secrets(self) -> dict[str, str]:
        with open(os.path.join(self.data_dir, SECRETS_NAME), encoding="utf-8") as f:
            return json.load(f)

    def peer_headers(self, kind: str = "cmd") -> dict[str, str]:
        """HTTP Basic with the node's generated AuthUsername/AuthPassword plus X-Peer."""
        values = self.secrets()
        return basic_headers(values["AuthUsername"], values["AuthPassword"], kind)

    def http(self) -> HTTPClient:
        """A treq client with its own connection pool (closed when the node stops)."""
        if self._http is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = 8
            self._pool.retryAutomatically = False
            self._http = HTTPClient(Agent(reactor, pool=self._pool, connectTimeout=5))
        return self._http

    def client(self, credential: Mapping[str, Any] | None = None, *,
               peer: bool = False) -> NodeClient:
        """A JSON client: with a credential's keys, the node's peer credentials, or none."""
        headers = key_headers(credential) if credential else (
            self.peer_headers() if peer else {})
        return NodeClient(self.base_url, self.http(), headers)

    def cli_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "scheduler0.cli", *args]

    async def cli(self, *args: str, timeout: float = 30) -> tuple[ExitStatus, str, str]:
        """Run the CLI in the node's working directory with the node's environment."""
        return await run(self.testcase, self.cli_argv(*args), cwd=self.workdir,
                         env=self.env(), timeout=timeout)

    async def create_credential(self, *extra: str) -> dict[str, Any]:
        """C{scheduler0 create credential --config <yml>} (or --data-dir/--port without a
        config file); returns the JSON object it prints."""
        if self.config_path is not None:
            where: Iterable[str] = ("--config", self.config_path)
        else:
            where = ("--data-dir", self.data_dir, "--port", str(self.port))
        status, out, err = await self.cli("create", "credential", *where, *extra)
        if not status.clean:
            self.testcase.fail(f"create credential ended with {status}:\n{out}{err}")
        try:
            credential = json.loads(out)
        except ValueError:
            self.testcase.fail(f"create credential printed something that is not one JSON "
                               f"object:\n{out!r}\nstderr:\n{err}")
        for field in ("apiKey", "apiSecret"):
            self.testcase.assertIn(field, credential, out)
        return credential
