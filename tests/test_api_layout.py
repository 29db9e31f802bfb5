"""
Issue 11 item 1: writes reach the command log through one module, the command facade, so
that a change to how commands are replicated (Raft) touches one place. Handlers decode,
call the facade and encode; they never build commands or allocate ids themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

API = Path(__file__).resolve().parent.parent / "scheduler0" / "api"


def command_imports(path: Path) -> list[str]:
    """The names a module imports from L{scheduler0.state.commands} (or that module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names = {alias.name for alias in node.names}
            if node.module.endswith("state.commands") or (
                    node.module.endswith("state") and "commands" in names):
                found.extend(sorted(names))
    return found


class CommandFacadeTests(SynchronousTestCase):
    def test_only_the_facade_builds_commands(self) -> None:
        users = {path.name: command_imports(path) for path in sorted(API.glob("*.py"))}
        self.assertEqual({name: found for name, found in users.items() if found},
                         {"facade.py": ["Command", "issue"]})
