"""
The sqlite schema of the replicated state.

Every table here is written only by L{scheduler0.state.machine.apply_command}; node-local
bookkeeping that must not be replicated lives elsewhere.
"""

import functools
import sqlite3

# The authoritative marker is sqlite's header field C{PRAGMA user_version}; the meta row
# C{schema_version} says the same for files written before user_version was set (they are
# migrated by setting it). A release that changes the tables bumps this and migrates.
SCHEMA_VERSION = 1

# The table that can grow to tens of millions of rows; the start-up check may skip it on a
# very large file (see L{scheduler0.store.integrity}).
LARGE_TABLES = ("executions",)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per applied command id: applying an id a second time is a no-op that answers
-- the stored result (the Raft library may report failure for a command it did apply).
CREATE TABLE IF NOT EXISTS applied_commands (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    result TEXT NOT NULL
);

-- Highest id ever used per table, so ids of deleted rows are never handed out again.
CREATE TABLE IF NOT EXISTS sequences (
    name TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    -- callbacks are signed with signing_secret; during a rotation's grace period (until
    -- previous_secret_expires) with previous_signing_secret too
    signing_secret TEXT NOT NULL,
    previous_signing_secret TEXT,
    previous_secret_expires TEXT,
    date_created TEXT NOT NULL,
    date_modified TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    spec TEXT NOT NULL,
    callback_url TEXT NOT NULL,
    data TEXT,
    execution_type TEXT NOT NULL,
    timezone TEXT NOT NULL,
    start_date TEXT,
    end_date TEXT,
    paused INTEGER NOT NULL DEFAULT 0,
    misfire_policy TEXT NOT NULL,
    misfire_grace_seconds INTEGER NOT NULL,
    date_created TEXT NOT NULL,
    date_modified TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_project ON jobs (project_id, id);

-- One row per occurrence, keyed by its deterministic execution id. state is one of
-- scheduled, dispatched, succeeded, failed, retrying, dead; 'dead' rows are the
-- dead-letter queue.
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    scheduled_time TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    target TEXT NOT NULL,
    node_id INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    error_category TEXT,
    duration_ms REAL,
    lateness_ms REAL,
    first_attempt_at TEXT,
    last_attempt_at TEXT,
    next_retry_at TEXT,
    date_created TEXT NOT NULL,
    date_modified TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_job ON executions (job_id, scheduled_time);
CREATE INDEX IF NOT EXISTS executions_by_project ON executions (project_id, scheduled_time);
CREATE INDEX IF NOT EXISTS executions_by_time ON executions (scheduled_time);
CREATE INDEX IF NOT EXISTS executions_unfinished ON executions (state)
    WHERE state NOT IN ('succeeded', 'failed');

-- The delivery outbox: one row per callback POST in flight, written (durably) before the
-- POST and deleted in the same transaction as its outcome records. An occurrence listed
-- here is 'dispatched'; after a crash it is sent again with the same execution id. One row
-- per POST instead of one 'dispatched' row per occurrence halves the rows written per
-- firing. occurrences: JSON [[execution id, job id, scheduled time, attempt], ...].
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    node_id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    target TEXT NOT NULL,
    started_at TEXT NOT NULL,
    occurrences TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS credentials (
    id INTEGER PRIMARY KEY,
    api_key TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    date_created TEXT NOT NULL,
    date_modified TEXT NOT NULL
);
"""


@functools.lru_cache(maxsize=1)
def expected_tables() -> dict[str, tuple[str, ...]]:
    """Every table of L{SCHEMA} with its columns, in order: what an existing file must have."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SCHEMA)
        names = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {name: tuple(row[1] for row in conn.execute(f"PRAGMA table_info({name})"))
                for name in names}
    finally:
        conn.close()
