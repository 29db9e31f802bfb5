"""
The private PySyncObj names the node relies on, all reached in one place
(L{scheduler0.consensus.raft.ReplicatedLog}, a SyncObj subclass reaching its own names):
a PySyncObj upgrade that renames or changes one fails here, naming what to re-read, rather
than breaking the healthcheck or the proposals at run time.
"""

from __future__ import annotations

import inspect

from pysyncobj import SyncObj
from twisted.trial.unittest import SynchronousTestCase

REREAD = ("PySyncObj changed: re-read pysyncobj/syncobj.py ({name}) and update "
          "scheduler0/consensus/raft.py ReplicatedLog")


class PySyncObjPrivateNamesTests(SynchronousTestCase):
    def test_the_private_methods_exist_and_take_no_argument(self) -> None:
        for name in ("_getLeader", "_isLeader", "_SyncObj__getCurrentLogIndex",
                     "_getEncryptor"):
            method = getattr(SyncObj, name, None)
            self.assertTrue(callable(method), REREAD.format(name=name))
            self.assertEqual(list(inspect.signature(method).parameters), ["self"],
                             REREAD.format(name=name))

    def test_the_election_deadline_a_promoted_node_holds_back(self) -> None:
        """raft_node.ReplicatedLog.hold_candidacy moves the deadline PySyncObj's tick
        compares before standing for election."""
        source = inspect.getsource(SyncObj)
        self.assertIn("if self.__raftElectionDeadline < monotonicTime() and", source,
                      REREAD.format(name="__raftElectionDeadline"))

    def test_the_current_log_index_is_the_last_journal_entry(self) -> None:
        source = inspect.getsource(getattr(SyncObj, "_SyncObj__getCurrentLogIndex"))
        self.assertIn("__raftLog[-1][1]", source, REREAD.format(name="__getCurrentLogIndex"))


    def test_the_membership_and_response_times_it_reaches(self) -> None:
        method = getattr(SyncObj, "_SyncObj__updateClusterConfiguration", None)
        self.assertTrue(callable(method), REREAD.format(name="__updateClusterConfiguration"))
        self.assertEqual(list(inspect.signature(method).parameters), ["self", "newNodes"],
                         REREAD.format(name="__updateClusterConfiguration"))
        source = inspect.getsource(SyncObj.__init__)
        self.assertIn("self.__lastResponseTime = {}", source,
                      REREAD.format(name="__lastResponseTime"))
        self.assertIn("self.__lastResponseTime[node] = monotonicTime()",
                      inspect.getsource(SyncObj), REREAD.format(name="__lastResponseTime"))

    def test_the_transport_names_a_learner_relies_on(self) -> None:
        """raft_node._GuardedTransport names read-only nodes by the address they announce:
        it hooks the greeting and the message dispatch, and reads the read-only set."""
        from pysyncobj.transport import Transport, TCPTransport
        for cls, name, params in ((TCPTransport, "_sendSelfAddress", ["self", "conn"]),
                                  (Transport, "_onMessageReceived", ["self", "node", "message"]),
                                  (TCPTransport, "_onDisconnected", ["self", "conn"]),
                                  (TCPTransport, "_connToNode", ["self", "conn"])):
            method = getattr(cls, name, None)
            self.assertTrue(callable(method), REREAD.format(name=f"transport {name}"))
            self.assertEqual(list(inspect.signature(method).parameters), params,
                             REREAD.format(name=f"transport {name}"))
        source = inspect.getsource(TCPTransport)
        for needle in ("self._readonlyNodes = set()", "self._selfIsReadonlyNode =",
                       "conn.send('readonly')", "self._syncObj = syncObj",
                       "functools.partial(self._onMessageReceived, node)"):
            self.assertIn(needle, source, REREAD.format(name=f"transport: {needle}"))
        status = inspect.getsource(SyncObj.getStatus)
        for key in ("'readonly_node_status_server_' + node.id", "'match_idx_server_' + node.id"):
            self.assertIn(key, status, REREAD.format(name=f"getStatus {key}"))

    def test_what_a_one_node_cluster_reaches(self) -> None:
        """raft_node.ReplicatedLog: a single node appends what it proposed before its tick
        (C{_checkCommandsToApply}, which the tick runs last) and gives a node with no
        transport a poller that makes no system call (C{_poller}, polled at the tick's end)."""
        method = getattr(SyncObj, "_checkCommandsToApply", None)
        self.assertTrue(callable(method), REREAD.format(name="_checkCommandsToApply"))
        self.assertEqual(list(inspect.signature(method).parameters), ["self"],
                         REREAD.format(name="_checkCommandsToApply"))
        tick = inspect.getsource(SyncObj._onTick)
        for needle in ("self._checkCommandsToApply()", "self._poller.poll(timeToWait)"):
            self.assertIn(needle, tick, REREAD.format(name=f"_onTick: {needle}"))
        self.assertIn("self._poller = createPoller(", inspect.getsource(SyncObj.__init__),
                      REREAD.format(name="_poller"))
