"""
End to end (issue 9, item 7): an operator's halt survives a crash of the process. A real
C{twistd scheduler0} node is halted, killed with SIGKILL and started again: it comes back
HALTED and sends nothing (no catch-up at start, no re-send) until an operator restarts the
supervisor; then missed occurrences follow each job's misfire policy. The restart is
stored as well: after a second kill -9 the node comes back running.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from .daemon import Daemon, sleep
from .receiver import Receiver
from .operability import EVERY_SECOND, OperabilityTestCase, job


class HaltAcrossRestartTests(OperabilityTestCase):
    timeout = 90

    def stored_halt(self, node: Daemon) -> Any:
        """What the node's database says about the operator's halt (None: nothing yet)."""
        path = os.path.join(node.data_dir, "scheduler0.db")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT halted FROM supervisor WHERE id = 1").fetchone()
            return None if row is None else bool(row[0])
        finally:
            conn.close()

    async def wait_stored(self, node: Daemon, halted: bool, timeout: float = 5) -> None:
        """The halt API answers before its command is written (within moments): wait for
        the write, so that the kill that follows tests the restart, not that race."""
        deadline = time.monotonic() + timeout
        while self.stored_halt(node) is not halted:
            if time.monotonic() > deadline:
                self.fail(f"the operator's halted={halted} was not stored within {timeout} s;"
                          f" log tail:\n{node.log_text()[-2000:]}")
            await sleep(0.02)

    async def test_a_halt_survives_kill_9_and_nothing_goes_out_until_restart(self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        created = await client.ok("POST", "/jobs", [
            job(pid, receiver.url, EVERY_SECOND, 0, misfirePolicy="fire_once",
                misfireGraceSeconds=60),
            job(pid, receiver.url, EVERY_SECOND, 1, misfirePolicy="skip"),
        ], expect=201)
        once, skip = (j["id"] for j in created)
        await receiver.wait_jobs([once, skip], 2, timeout=5)

        halt_sent = time.time()
        halted = await self.api(node, "POST", "/api/supervisor/halt")
        halt_done = time.time()
        self.assertEqual(halted["state"], "HALTED")
        await self.wait_stored(node, halted=True)
        status = await node.kill()
        self.assertEqual(status.signal, 9)
        await sleep(1.5)                                    # slots pass while it is down
        await node.start()

        state = await self.api(node, "GET", "/api/supervisor/state")
        self.assertEqual(state["state"], "HALTED")
        self.assertIn("halted by an operator", state["reason"])
        self.assertIn("since", state["reason"])
        _, snapshot = await self.health(node)
        self.assertIs(snapshot["enabled"], False)
        samples = await self.metrics(node)
        self.assertEqual(samples[("scheduler0_scheduler_halted", frozenset())], 1.0)
        self.assertIn("halted by an operator since", node.log_text())
        await sleep(2)
        self.assertEqual((await self.api(node, "GET", "/api/supervisor/state"))["state"],
                         "HALTED")
        # nothing left the node after the halt answer, before the crash or after the
        # start, except a delivery already in flight at the halt (within moments of it)
        late = [(p.index, round(p.received - halt_done, 3), [h.scheduled_text for h in p.hits])
                for p in receiver.posts if p.received > halt_done
                and (p.received > halt_done + 0.25
                     or any(h.scheduled > halt_sent for h in p.hits))]
        self.assertEqual(late, [], f"callbacks while halted:\n{receiver.summary()}")
        last_before = {j: max(h.scheduled for h in receiver.hits_for(j)) for j in (once, skip)}

        restart_sent = time.time()
        restarted = await self.api(node, "POST", "/api/supervisor/restart")
        self.assertEqual(restarted, {"state": "RUNNING", "reason": None})

        def after(job_id: int, since: float = restart_sent) -> list[float]:
            return sorted(h.scheduled for h in receiver.hits_for(job_id) if h.received > since)

        await receiver.wait_until(lambda: len(after(once)) >= 3 and len(after(skip)) >= 2,
                                  timeout=5, what="deliveries after the restart")
        # skip: from the first slot after the restart; fire_once: exactly one catch-up,
        # the latest slot missed (while halted, down or halted again), then the regular ones
        regular = after(skip)[0]
        self.assertGreater(regular, restart_sent, receiver.summary())
        self.assertGreaterEqual(regular - last_before[skip], 4, receiver.summary())
        times = after(once)
        self.assertEqual(times[0], regular - 1, receiver.summary())
        self.assertEqual(times, [times[0] + k for k in range(len(times))], receiver.summary())
        eids = [h.execution_id for h in receiver.hits]
        self.assertEqual(len(eids), len(set(eids)), receiver.summary())

        # the restart is stored too: after another kill -9 the node runs at once
        await self.wait_stored(node, halted=False)
        await node.kill()
        await node.start()
        self.assertEqual(await self.api(node, "GET", "/api/supervisor/state"),
                         {"state": "RUNNING", "reason": None})
        started = time.time()
        await receiver.wait_until(lambda: len(after(skip, started)) >= 1, timeout=5,
                                  what="deliveries after the second start")
