"""
A node started with C{JoinCluster: true} is a learner (issue 14 item 2), with PySyncObj on
real loopback ports in this one process (as L{tests.test_raft_log}): it replicates without
a vote, and the leader knows it by the Raft address it announces, with its progress, so
add-node can wait for it to catch up before it counts.
"""

from __future__ import annotations

import attrs
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from scheduler0.consensus.raft import RaftCommandLog

from .test_raft_log import Cluster, project, projects, until


class LearnerTests(TestCase):
    timeout = 60

    async def test_a_learner_replicates_without_a_vote_and_the_leader_sees_its_progress(
            self) -> None:
        cluster = Cluster(self, 3)
        voters = cluster.addresses[:2]
        for i in range(2):  # a two-voter cluster
            settings = attrs.evolve(cluster.settings(i), partners=tuple(
                a for a in voters if a != cluster.addresses[i]))
            log = RaftCommandLog(cluster.paths[i], reactor, settings)
            log.startService()
            cluster.logs[i] = log
        await cluster.leader_known()
        leader = next(log for log in cluster.running() if log.status()["state"] == "Leader")
        for i in range(1, 4):
            self.assertTrue((await leader.submit(project(i)))["ok"])

        # the third node joins with JoinCluster: true and Replicas naming the voters
        joining = attrs.evolve(cluster.settings(2), partners=tuple(voters), join=True)
        learner = RaftCommandLog(cluster.paths[2], reactor, joining)
        learner.startService()
        cluster.logs[2] = learner
        self.assertFalse(learner.voter)
        await until(lambda: projects(cluster.paths[2]) == ["p1", "p2", "p3"],
                    what="the learner holds the log")
        self.assertTrue((await leader.submit(project(4)))["ok"])
        await until(lambda: projects(cluster.paths[2]) == ["p1", "p2", "p3", "p4"],
                    what="the learner holds the next write")

        # the leader names it by its Raft address, with the entry it holds; no vote
        def seen() -> dict:
            row = leader.learners().get(cluster.addresses[2], {})
            return row if row.get("matchIndex", 0) >= int(
                leader.status()["commit_index"]) else {}
        row = await until(seen, what="the leader sees the learner caught up")
        self.assertEqual((row["connected"], row["voter"]), (True, False))
        self.assertNotIn(cluster.addresses[2], leader.peers())
        self.assertEqual(leader.status()["num_peers"], "1")
        self.assertEqual(learner.leader()[0], leader.settings.self_address)  # it follows

        # gone when it stops
        await cluster.stop(2)
        await until(lambda: cluster.addresses[2] not in leader.learners(),
                    what="the leader forgets the stopped learner")
