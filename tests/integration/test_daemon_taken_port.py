"""
Start-up on a taken API port, end to end (moved here from tests/test_site_drain.py, which keeps
the in-process drain and listener tests): a real twistd exits at once with one line, rather
than logging the failure and running on, serving nothing.
"""

from __future__ import annotations

import os
import socket
import time

from twisted.trial.unittest import TestCase

from .daemon import free_port, node_env, run, twistd_argv


class TakenPortDaemonTests(TestCase):
    async def test_a_node_whose_port_is_taken_exits_at_once_with_one_line(self) -> None:
        """Not a node that logs the failure and runs on, serving nothing."""
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            env = node_env({"SCHEDULER0_PORT": str(port),
                            "SCHEDULER0_RAFT_ADDRESS": f"127.0.0.1:{free_port()}"})
            started = time.monotonic()
            status, out, err = await run(self, twistd_argv(None), cwd=workdir, env=env,
                                         timeout=30)
        output = out + err
        self.assertLess(time.monotonic() - started, 20, output)
        self.assertEqual((status.code, status.signal), (1, None), output)
        self.assertIn(f"scheduler0: cannot serve the API: Couldn't listen on 127.0.0.1:{port}",
                      output)
        self.assertEqual(output.count("cannot serve the API"), 1, output)
        self.assertNotIn("Traceback", output)
