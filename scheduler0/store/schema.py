"""
The sqlite schema of the replicated state.

Every table here is written only by L{scheduler0.state.machine.apply_command}; node-local
bookkeeping that must not be replicated lives elsewhere.
"""

SCHEMA_VERSION = 1

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
