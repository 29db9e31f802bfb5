"""
The sqlite schema of the replicated state.

Every table here is written only by L{scheduler0.state.machine.apply_command}; node-local
bookkeeping that must not be replicated lives elsewhere.
"""

import functools
import sqlite3

import attrs

# The authoritative marker is sqlite's header field C{PRAGMA user_version}; the meta row
# C{schema_version} says the same for files written before user_version was set (they are
# migrated by setting it). A release that changes the tables bumps this and adds a
# L{Migration} from the previous version to L{MIGRATIONS}.
#
# 2: previous signing secrets in their own table (every rotation keeps its old secret
#    until its own expiry), and the supervisor's operator halt (kept across restarts).
# 3: credentials limited to a list of projects (C{credentials.project_ids}).
# 4: the index of the last Raft log entry applied (C{raft_applied}).
# 5: the cluster's replicated member list (C{cluster_members}).
# 6: which node executes which jobs (C{job_assignment}).
SCHEMA_VERSION = 6

#: Most previous signing secrets kept per project (the most recently rotated out): each
#: rotation keeps the secret it replaces for its grace period, so a receiver that has not
#: switched yet keeps verifying; past this many, the oldest one's grace ends early.
MAX_PREVIOUS_SECRETS = 5

# The table that can grow to tens of millions of rows; the start-up check may skip it on a
# very large file (see L{scheduler0.store.integrity}).
LARGE_TABLES = ("executions",)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The index of the last Raft log entry whose command is in this file (at most one row,
-- written in the same transaction as that entry's batch): replaying the journal at start
-- skips the entries at or below it, and a snapshot claims exactly this index. A single
-- node (no Raft) never writes it.
CREATE TABLE IF NOT EXISTS raft_applied (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    applied_index INTEGER NOT NULL
);

-- The cluster's members as the cluster-management API changed them (a cluster.members
-- command), so every node lists the same ones; empty on a single node and until the
-- first leader stores Replicas. suffrage: 'Voter' or 'Nonvoter'.
CREATE TABLE IF NOT EXISTS cluster_members (
    node_id INTEGER PRIMARY KEY,
    raft_address TEXT NOT NULL,
    client_address TEXT NOT NULL,
    suffrage TEXT NOT NULL,
    date_modified TEXT NOT NULL
);

-- Which node executes the jobs of each bucket (a job's bucket: its id modulo the number
-- of owners listed), as the leader last assigned them (a cluster.assign command): owners
-- is a JSON array of NodeIds (0: none). At most one row; none on a single node.
CREATE TABLE IF NOT EXISTS job_assignment (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    owners TEXT NOT NULL,
    date_modified TEXT NOT NULL
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
    -- callbacks are signed with signing_secret, and with every previous_signing_secrets
    -- row of the project that has not expired
    signing_secret TEXT NOT NULL,
    date_created TEXT NOT NULL,
    date_modified TEXT NOT NULL
);

-- Secrets rotated out of a project, each kept (and signing beside the current one) until
-- its own grace period ends; a rotation drops the expired ones and keeps at most
-- MAX_PREVIOUS_SECRETS, the most recently rotated out.
CREATE TABLE IF NOT EXISTS previous_signing_secrets (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    secret TEXT NOT NULL,
    expires TEXT NOT NULL,
    rotated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, secret)
);

-- The operator's halt of the scheduler (POST /api/supervisor/halt and /restart), so that
-- a restart of the process does not resume it silently. One row (id 1) once set.
CREATE TABLE IF NOT EXISTS supervisor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    halted INTEGER NOT NULL,
    reason TEXT,
    changed_at TEXT NOT NULL
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
-- scheduled, dispatched, succeeded, failed, retrying, dead; 'dead' rows of existing jobs
-- are the dead-letter queue. No foreign key to jobs: a deleted job's history stays until
-- retention prunes it.
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

-- project_ids: NULL for a node-wide credential, else the comma-separated ids of the only
-- projects it may see (kept when one of them is deleted: ids are never reused, and
-- dropping it would widen the credential).
CREATE TABLE IF NOT EXISTS credentials (
    id INTEGER PRIMARY KEY,
    api_key TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    date_created TEXT NOT NULL,
    date_modified TEXT NOT NULL,
    project_ids TEXT
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


@attrs.frozen
class Migration:
    """
    What brings a file of version C{from_version} to the next one.

    @ivar new_tables: tables the migration creates (the older file has none of them).
    @ivar new_columns: per table, columns the migration adds to a table the older file
        has (with C{ALTER TABLE ... ADD COLUMN} in C{script}; last in L{SCHEMA}'s
        definition, where C{ADD COLUMN} puts them).
    @ivar old_columns: per table, columns the older version has and the migration moves
        away (an older file must have them).
    @ivar script: SQL run inside the migration's transaction, after the new tables were
        created from L{SCHEMA}.
    @ivar drops: C{(table, column)} dropped at the end; skipped on sqlite before 3.35
        (no DROP COLUMN), where they stay unused.
    """

    from_version: int
    new_tables: tuple[str, ...]
    old_columns: dict[str, tuple[str, ...]]
    script: str
    drops: tuple[tuple[str, str], ...] = ()
    new_columns: dict[str, tuple[str, ...]] = attrs.field(factory=dict)


MIGRATIONS: dict[int, Migration] = {
    1: Migration(
        from_version=1,
        new_tables=("previous_signing_secrets", "supervisor"),
        old_columns={"projects": ("previous_signing_secret", "previous_secret_expires")},
        script="""
            INSERT OR IGNORE INTO previous_signing_secrets (project_id, secret, expires,
                                                            rotated_at)
            SELECT id, previous_signing_secret, previous_secret_expires, date_modified
            FROM projects
            WHERE previous_signing_secret IS NOT NULL AND previous_secret_expires IS NOT NULL;
        """,
        drops=(("projects", "previous_signing_secret"),
               ("projects", "previous_secret_expires")),
    ),
    2: Migration(
        from_version=2,
        new_tables=(),
        old_columns={},
        new_columns={"credentials": ("project_ids",)},
        # every existing credential stays node-wide
        script="ALTER TABLE credentials ADD COLUMN project_ids TEXT;",
    ),
    3: Migration(
        from_version=3,
        new_tables=("raft_applied",),
        old_columns={},
        script="",
    ),
    4: Migration(
        from_version=4,
        new_tables=("cluster_members",),
        old_columns={},
        script="",
    ),
    5: Migration(
        from_version=5,
        new_tables=("job_assignment",),
        old_columns={},
        script="",
    ),
}
