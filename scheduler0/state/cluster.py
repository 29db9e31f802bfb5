"""Appliers of the cluster's commands: the member list every node lists, and which node
executes which jobs."""

from __future__ import annotations

import json
import sqlite3

from ..domain.assignment import JOB_BUCKETS
from .payloads import AssignJobs, SetMembers
from .rows import Rejected, Result

SUFFRAGES = ("Voter", "Nonvoter")


def set_members(conn: sqlite3.Connection, change: SetMembers, stamp: str) -> Result:
    """
    Replace the member list by C{change.members} (the proposer computed the whole list),
    or, for a C{seed}, store it only when no list is stored yet: every node that becomes
    leader of a new cluster proposes its C{Replicas}, and only the first one counts.
    """
    if change.seed and conn.execute("SELECT 1 FROM cluster_members LIMIT 1").fetchone():
        return {"seeded": False}
    rows = []
    for member in change.members:
        node_id = member["node_id"]
        if not isinstance(node_id, int) or isinstance(node_id, bool) or node_id < 1:
            raise Rejected(400, "node_id: must be a whole number from 1")
        if member["suffrage"] not in SUFFRAGES:
            raise Rejected(400, "suffrage: must be Voter or Nonvoter")
        rows.append((node_id, str(member["raft_address"]), str(member["client_address"]),
                     member["suffrage"], stamp))
    if not any(row[3] == "Voter" for row in rows):
        raise Rejected(409, "a cluster needs at least one voter")
    conn.execute("DELETE FROM cluster_members")
    conn.executemany("INSERT INTO cluster_members (node_id, raft_address, client_address, "
                     "suffrage, date_modified) VALUES (?, ?, ?, ?, ?)", rows)
    return {"members": len(rows), **({"seeded": True} if change.seed else {})}


def assign_jobs(conn: sqlite3.Connection, change: AssignJobs, stamp: str) -> Result:
    """
    Store the owner of every job bucket, if C{change} was made from the stored
    assignment (its revision is the stored version plus one): a leader deposed while it
    proposed cannot undo its successor's moves.
    """
    owners = change.owners
    if len(owners) != JOB_BUCKETS or not all(
            isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in owners):
        raise Rejected(400, f"owners: must be {JOB_BUCKETS} node ids (0 for none)")
    row = conn.execute("SELECT version FROM job_assignment WHERE id = 1").fetchone()
    stored = row[0] if row else 0
    if change.revision != stored + 1:
        raise Rejected(409, f"the assignment is at version {stored}; this change was made "
                            f"from version {change.revision - 1}")
    conn.execute("INSERT OR REPLACE INTO job_assignment (id, version, owners, date_modified) "
                 "VALUES (1, ?, ?, ?)", (change.revision, json.dumps(list(owners)), stamp))
    return {"version": change.revision}
