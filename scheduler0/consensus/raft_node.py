"""
The PySyncObj object of a node: L{ReplicatedLog}, a SyncObj with ONE replicated method, its
transport (which tells both sides when a peer has another secret), and PySyncObj's own log
lines brought into the node's log. The private PySyncObj names the node relies on are
reached here only, by the subclass (tests/test_pysyncobj_private.py watches them).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from cryptography.fernet import InvalidToken
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.monotonic import monotonic as pysyncobj_monotonic
from pysyncobj.transport import TCPTransport, Transport
from twisted.logger import Logger, LogLevel

log = Logger()


class _PySyncObjLogs(logging.Handler):
    """PySyncObj logs through the standard library; its records go to the node's log, one
    line each (no traceback: a bind failure, the one it logs with one, is reported by
    L{RaftCommandLog.privilegedStartService})."""

    _LEVELS = {logging.DEBUG: LogLevel.debug, logging.INFO: LogLevel.info,
               logging.WARNING: LogLevel.warn, logging.ERROR: LogLevel.error,
               logging.CRITICAL: LogLevel.critical}
    _log = Logger(namespace="pysyncobj")

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message == "failed to perform initialization":
            return
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {record.exc_info[1]!r}"
        self._log.emit(self._LEVELS.get(record.levelno, LogLevel.error), "PySyncObj: {message}",
                       message=message, pysyncobj_logger=record.name)


def _bridge_pysyncobj_logs() -> None:
    logger = logging.getLogger("pysyncobj")
    if not any(isinstance(h, _PySyncObjLogs) for h in logger.handlers):
        logger.addHandler(_PySyncObjLogs())
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


class _WrongSecretWarning:
    """
    Wraps PySyncObj's Fernet: traffic that does not decrypt (a peer with another cluster
    secret) is logged, then refused as before (PySyncObj itself drops such connections
    without a word). Only one side of a pair dials the other, and the side that dialled
    sees the other hang up during the handshake (L{_GuardedTransport}): both are logged, at
    most once every C{every} seconds.
    """

    def __init__(self, fernet: Any, clock: Callable[[], float], address: str,
                 every: float = 10.0) -> None:
        self._fernet = fernet
        self._address = address
        self._clock = clock
        self._every = every
        self._last: dict[str, float] = {}

    def _due(self, key: str) -> bool:
        now = self._clock()
        if now - self._last.get(key, -self._every) < self._every:
            return False
        self._last[key] = now
        return True

    def _bad(self) -> None:
        if self._due(""):
            log.error("refused Raft traffic that does not decrypt: a node with another cluster "
                      "secret (SecretKey) is trying to talk to this one; every node of a cluster "
                      "needs the same SecretKey, AuthUsername and AuthPassword",
                      raft_node=self._address)

    def hung_up(self, peer: str) -> None:
        if self._due(peer):
            log.error("Raft peer {peer} does not decrypt this node's traffic: it hung up during "
                      "the encrypted handshake, so it has another cluster secret (SecretKey); "
                      "every node of a cluster needs the same SecretKey, AuthUsername and "
                      "AuthPassword", peer=peer, raft_node=self._address)

    def encrypt_at_time(self, data: bytes, at: int) -> bytes:
        return self._fernet.encrypt_at_time(data, at)

    def extract_timestamp(self, token: bytes) -> int:
        try:
            return self._fernet.extract_timestamp(token)
        except InvalidToken:
            self._bad()
            raise

    def decrypt(self, token: bytes, *args: Any) -> bytes:
        try:
            return self._fernet.decrypt(token, *args)
        except InvalidToken:
            self._bad()
            raise


#: The message a non-voter sends after PySyncObj's C{'readonly'} greeting: its Raft address,
#: so the leader can tell whose progress each of its anonymous read-only nodes is (PySyncObj
#: names them by a counter). A PySyncObj without this transport ignores the unknown type.
LEARNER_HELLO = "scheduler0_learner"


class _GuardedTransport(TCPTransport):
    """PySyncObj's TCP transport, noticing a peer that hangs up during the encrypted
    handshake of a connection this node opened (it could not decrypt what we sent), and
    naming read-only nodes by the Raft address they announce (L{LEARNER_HELLO})."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handshaking: set[Any] = set()
        super().__init__(*args, **kwargs)

    def _sendSelfAddress(self, conn: Any) -> None:
        super()._sendSelfAddress(conn)
        address = getattr(self._syncObj, "learner_address", None)
        if self._selfIsReadonlyNode and address:
            conn.send({"type": LEARNER_HELLO, "address": address})

    def _onMessageReceived(self, node: Any, message: Any) -> None:
        if isinstance(message, dict) and message.get("type") == LEARNER_HELLO:
            if node in self._readonlyNodes:
                self._syncObj.learner_announced(node.id, str(message.get("address", "")))
            return
        super()._onMessageReceived(node, message)

    def _onOutgoingConnected(self, conn: Any) -> None:
        if self._syncObj.encryptor:
            self._handshaking.add(conn)
        super()._onOutgoingConnected(conn)

    def _onOutgoingMessageReceived(self, conn: Any, message: Any) -> None:
        self._handshaking.discard(conn)
        super()._onOutgoingMessageReceived(conn, message)

    def _onDisconnected(self, conn: Any) -> None:
        if conn in self._handshaking:
            self._handshaking.discard(conn)
            node = self._connToNode(conn)
            self._syncObj.encryptor.hung_up(getattr(node, "address", str(node)))
        node = self._connToNode(conn)
        if node is not None and node in self._readonlyNodes:
            self._syncObj.learner_gone(node.id)
        super()._onDisconnected(conn)


class NoTransport(Transport):
    """The transport of a one-node cluster (a single node): no port to bind, nobody to
    send to. PySyncObj's base transport is ready at once and sends nothing."""

    def send(self, node: Any, message: Any) -> bool:
        return False


class _NothingToPoll:
    """
    The poller of a node with L{NoTransport}: no descriptors, so no system call. PySyncObj
    polls at the end of every tick, and a poll, even of nothing for no time, lets go of
    the interpreter lock, which the writer thread then takes and may keep for up to
    Python's switch interval (5 ms) while the reactor waits.
    """

    def subscribe(self, descr: Any, callback: Any, eventMask: Any) -> None:
        raise RuntimeError("a node with no transport has nothing to poll")

    def unsubscribe(self, descr: Any) -> None:
        pass

    def poll(self, timeout: float) -> None:
        pass


class ReplicatedLog(SyncObj):
    """
    The PySyncObj object: ONE replicated method. Method ids are numbered by sorted name, so
    adding or renaming a C{ver=0} replicated method would renumber this one and break old
    journals (reference/stack.md §1.2): a new one needs C{ver=1}.
    """

    def __init__(self, self_address: str | None, partners: list[str], conf: SyncObjConf,
                 on_entry: Callable[[Any, int, bool], None], clock: Callable[[], float],
                 learner_address: str | None = None,
                 transport_class: type = _GuardedTransport) -> None:
        self._on_entry = on_entry
        self._clock = clock
        self._self_address = self_address
        self._wrapped_encryptor: _WrongSecretWarning | None = None
        #: a non-voter's own Raft address, announced to the voters it dials
        self.learner_address = learner_address if self_address is None else None
        # read-only node id (PySyncObj's counter) -> the Raft address it announced
        self._learners: dict[str, str] = {}
        super().__init__(self_address, partners, conf=conf, transportClass=transport_class)
        if transport_class is NoTransport:
            self._poller = _NothingToPoll()

    @property
    def encryptor(self) -> Any:  # type: ignore[override]
        """The transport's encryptor: PySyncObj's own, wrapped (the password is always set,
        and the transport asks for it only after SyncObj made it)."""
        if self._wrapped_encryptor is None:
            fernet = self._getEncryptor()
            if fernet is None:
                return None
            self._wrapped_encryptor = _WrongSecretWarning(fernet, self._clock,
                                                          self._self_address)
        return self._wrapped_encryptor

    # PySyncObj keeps these private; they are reached here only, on this subclass, and
    # tests/test_pysyncobj_private.py fails loudly if an upgrade renames them
    def leader_node(self) -> Any:
        """The last known leader (a PySyncObj node: its C{address} is its Raft address), or
        None while there is none."""
        return self._getLeader()

    def is_leader(self) -> bool:
        return bool(self._isLeader())

    def last_log_index(self) -> int:
        """The journal's last index (past the commit index while entries replicate)."""
        return int(self._SyncObj__getCurrentLogIndex())  # type: ignore[attr-defined]

    def append_proposed(self) -> None:
        """
        Append the proposals waiting in PySyncObj's queue to the log now, as a leader's
        tick does last: a one-node cluster then commits and applies them in one tick
        instead of two (a tick costs about 10 µs of the reactor).
        """
        self._checkCommandsToApply()

    def rebuild_alone(self) -> None:
        """
        Forget every other voter: this node becomes a one-node cluster and elects itself at
        its next election timeout, keeping its log (force-rebuild after a loss of quorum).
        PySyncObj has no public way to change the membership without a quorum to commit
        the change; its own snapshot loading uses this private method the same way.
        """
        self._SyncObj__updateClusterConfiguration([])  # type: ignore[attr-defined]

    def hold_candidacy(self, seconds: float) -> None:
        """
        Stand for no election for C{seconds}: a node just promoted to voter hears from the
        leader (which adds it and connects to it) before its election timer could make it
        depose that leader (PySyncObj has no PreVote: a RequestVote with a higher term makes
        any leader step down). A heartbeat resets the deadline as usual.
        """
        self._SyncObj__raftElectionDeadline = (  # type: ignore[attr-defined]
            pysyncobj_monotonic() + seconds)

    def response_ages(self) -> dict[str, float]:
        """On the leader: seconds since each voter last answered it, by Raft address
        (PySyncObj keeps the times private; it uses them for its leader fallback)."""
        now = pysyncobj_monotonic()
        times = self._SyncObj__lastResponseTime  # type: ignore[attr-defined]
        return {getattr(node, "address", str(node)): max(now - at, 0.0)
                for node, at in dict(times).items()}

    def learner_announced(self, node_id: str, address: str) -> None:
        """The transport: read-only node C{node_id} is the non-voter at C{address}."""
        if address:
            self._learners[node_id] = address

    def learner_gone(self, node_id: str) -> None:
        self._learners.pop(node_id, None)

    def learners(self) -> dict[str, dict[str, Any]]:
        """
        The connected non-voters that announced their Raft address, by that address:
        C{connected}, and on the leader C{matchIndex} (the last entry it holds, from the
        answers PySyncObj counts for read-only nodes as for voters) and C{lastResponse}.
        """
        status = self.getStatus()
        leading = status["state"] == 2
        now = pysyncobj_monotonic()
        times = self._SyncObj__lastResponseTime  # type: ignore[attr-defined]
        ages = {getattr(node, "id", str(node)): max(now - at, 0.0)
                for node, at in dict(times).items()} if leading else {}
        found: dict[str, dict[str, Any]] = {}
        for node_id, address in list(self._learners.items()):
            connected = status.get(f"readonly_node_status_server_{node_id}")
            if connected is None:
                continue
            found[address] = {
                "connected": connected == 2, "voter": False,
                "matchIndex": status.get(f"match_idx_server_{node_id}") if leading else None,
                "lastResponse": ages.get(node_id)}
        return found

    @replicated
    def apply_command(self, command_json: str | int, urgent: bool = False) -> None:
        # PySyncObj applies entries in order and counts raftLastApplied up after each, so
        # the entry being applied is the next one. C{urgent}, and a number (the key of the
        # commands the entry carries, held by the node: its API writes of a reactor turn,
        # or one urgent or large command), are proposed by a single node only, whose
        # journal never leaves its memory: a cluster's entries carry one command's JSON
        # alone, as older releases wrote.
        self._on_entry(command_json, self.raftLastApplied + 1, urgent)
