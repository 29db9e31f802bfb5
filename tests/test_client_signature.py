"""
What a callback receiver relies on without installing the server: L{verify_signature} of
scheduler0.client, the same check for Node.js as the README prints it (run with C{node}),
and scheduler0.client importing and working with the standard library alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from scheduler0.client import verify_signature
from scheduler0.execution import signing
from scheduler0.execution.signing import signature_header

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = b'[{"id":7,"executionId":"7-20261126T160500Z","data":"{\\"invoice\\":42}"}]'
CURRENT = "whsec_current-secret"
PREVIOUS = "whsec_previous-secret"
T = 1_790_000_000

#: (secret, header, body, tolerance, now, expected): what every verifier must agree on
CASES = [
    (CURRENT, signature_header(BODY, [CURRENT, PREVIOUS], T), BODY, 300, T, True),
    (PREVIOUS, signature_header(BODY, [CURRENT, PREVIOUS], T), BODY, 300, T + 300, True),
    (CURRENT, signature_header(BODY, [CURRENT], T), BODY, 300, T - 300, True),
    (CURRENT, signature_header(BODY, [CURRENT], T), BODY, 300, T + 301, False),
    (CURRENT, signature_header(BODY, [CURRENT], T), BODY, 1000, T + 999, True),
    ("whsec_other", signature_header(BODY, [CURRENT], T), BODY, 300, T, False),
    (CURRENT, signature_header(BODY, [CURRENT], T), BODY.replace(b"42", b"43"), 300, T, False),
    (CURRENT, signature_header(BODY, [CURRENT], T).replace(f"t={T}", f"t={T + 1}"), BODY,
     300, T, False),
    (CURRENT, f"v1={signature_header(BODY, [CURRENT], T).split('v1=')[1]}", BODY, 300, T,
     False),
    (CURRENT, f"t={T}", BODY, 300, T, False),
    (CURRENT, f"t={T},t={T}," + signature_header(BODY, [CURRENT], T).split(",")[1], BODY,
     300, T, False),
    (CURRENT, signature_header(BODY, [CURRENT], T).replace(f"t={T}", f"t=+{T}"), BODY, 300,
     T, False),
    (CURRENT, "garbage", BODY, 300, T, False),
    (CURRENT, "", BODY, 300, T, False),
    # a secret and a body beyond ASCII
    ("whsec_ünï", signature_header("[\"é\"]".encode(), ["whsec_ünï"], T), "[\"é\"]".encode(),
     300, T, True),
]


class VerifySignatureTests(SynchronousTestCase):
    def test_the_cases(self) -> None:
        for secret, header, body, tolerance, now, expected in CASES:
            self.assertEqual(verify_signature(secret, header, body, tolerance=tolerance,
                                              now=now), expected, (secret, header, now))

    def test_the_servers_verify_is_the_same_function(self) -> None:
        for secret, header, body, tolerance, now, expected in CASES:
            self.assertEqual(signing.verify(header, body, secret, now, tolerance), expected)

    def test_now_defaults_to_the_current_time(self) -> None:
        fresh = signature_header(BODY, [CURRENT], int(time.time()))
        stale = signature_header(BODY, [CURRENT], int(time.time()) - 3600)
        self.assertTrue(verify_signature(CURRENT, fresh, BODY))
        self.assertFalse(verify_signature(CURRENT, stale, BODY))

    def test_what_a_web_framework_hands_over(self) -> None:
        header = signature_header(BODY, [CURRENT], T)
        self.assertFalse(verify_signature(CURRENT, None, BODY, now=T))  # header missing
        self.assertTrue(verify_signature(CURRENT, header.encode(), BODY, now=T))
        self.assertTrue(verify_signature(CURRENT, header, BODY.decode(), now=T))


def readme_block(marker: str) -> str:
    """The README's fenced code block that contains C{marker}."""
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for block in re.findall(r"```[a-z]*\n(.*?)```", readme, re.S):
        if marker in block:
            return block
    raise AssertionError(f"no README code block contains {marker!r}")


class NodeSnippetTests(SynchronousTestCase):
    def test_the_readme_nodejs_verifier_agrees(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise SkipTest("node is not installed")
        snippet = readme_block("// verify X-Scheduler0-Signature (Node.js)")
        cases = [{"secret": s, "header": h, "body": b.decode("utf-8"), "tolerance": tol,
                  "now": now} for s, h, b, tol, now, _ in CASES]
        driver = snippet + textwrap.dedent("""
            const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
            process.stdout.write(JSON.stringify(cases.map((c) => verifyScheduler0Signature(
              c.secret, c.header, Buffer.from(c.body, "utf8"), c.tolerance, c.now))));
            """)
        path = os.path.join(self.mktemp() + ".js")
        with open(path, "w", encoding="utf-8") as f:
            f.write(driver)
        done = subprocess.run([node, path], input=json.dumps(cases), capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), [c[-1] for c in CASES])


STANDALONE = r"""
import importlib.util, json, sys, threading
if len(sys.argv) > 2:
    sys.path.insert(0, sys.argv[2])  # -I ignores PYTHONPATH: the copied package only
from http.server import BaseHTTPRequestHandler, HTTPServer

from scheduler0.client import Client, Scheduler0Error, verify_signature

class Node(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"success": False, "data": "job 5 does not exist"}).encode()
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Node)
threading.Thread(target=server.handle_request, daemon=True).start()
client = Client(f"http://127.0.0.1:{server.server_address[1]}", api_key="k", api_secret="s")
try:
    client.jobs.get(5)
except Scheduler0Error as e:
    answer = [e.status, e.message]
header = sys.argv[1]
verified = verify_signature("whsec_x", header, b"[]", now=1_790_000_000)
outside = sorted(m.split(".")[0] for m in sys.modules
                 if m != "__main__" and m.split(".")[0] not in sys.stdlib_module_names)
# the server's dependencies are not there to import (checked last: looking up
# twisted.internet imports the namespace package twisted/plugins of an installed wheel)
def importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False

for name in ("twisted.internet", "klein", "treq", "attrs", "yaml", "croniter", "pysyncobj"):
    assert not importable(name), f"{name} is importable here"
print(json.dumps({"answer": answer, "verified": verified, "outside": sorted(set(outside))}))
"""


EXPECTED = {"answer": [404, "job 5 does not exist"], "verified": True,
            "outside": ["scheduler0"]}


class StandaloneTests(SynchronousTestCase):
    def test_the_client_needs_only_the_standard_library(self) -> None:
        """
        As after C{pip install --no-deps}: an isolated interpreter (C{-I -S}: no site
        packages, so none of the server's dependencies) with only C{scheduler0/__init__.py}
        and C{scheduler0/client/} on its path imports the client, gets a node's error as
        L{Scheduler0Error} over a real socket, verifies a signature, and loads no module
        outside the standard library but scheduler0's own.
        """
        root = self.mktemp()
        package = os.path.join(root, "scheduler0")
        os.makedirs(package)
        shutil.copy(os.path.join(REPO_ROOT, "scheduler0", "__init__.py"), package)
        shutil.copytree(os.path.join(REPO_ROOT, "scheduler0", "client"),
                        os.path.join(package, "client"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        header = signature_header(b"[]", ["whsec_x"], 1_790_000_000)
        done = subprocess.run([sys.executable, "-I", "-S", "-c", STANDALONE, header,
                               os.path.abspath(root)],
                              cwd=root, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), EXPECTED)

    def test_the_wheel_installed_alone_with_no_deps(self) -> None:
        """C{pip install --no-deps} of the wheel into a fresh virtualenv: the same script
        runs with only that package installed."""
        from .test_cli_packaging import build_wheel, clean_env
        workdir = Path(os.path.abspath(self.mktemp()))
        workdir.mkdir()
        wheel = build_wheel(workdir)
        venv = workdir / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                       check=True, capture_output=True, timeout=120, env=clean_env())
        python = str(venv / "bin" / "python")
        subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
                        "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                       check=True, capture_output=True, timeout=300, env=clean_env())
        header = signature_header(b"[]", ["whsec_x"], 1_790_000_000)
        done = subprocess.run([python, "-I", "-c", STANDALONE, header], cwd=workdir,
                              capture_output=True, text=True, timeout=60, env=clean_env())
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), EXPECTED)
