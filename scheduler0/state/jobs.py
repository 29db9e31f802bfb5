"""Appliers of the job commands: create, update and delete (which closes its history)."""

from __future__ import annotations

import json
import operator
import sqlite3

from ..domain.job import JOB_FIELD_NAMES
from .executions import finish_delivery
from .payloads import CreateJobs, DeleteJob, UpdateJob
from .rows import Rejected, Result, allocate_ids, missing_projects, require_row, update_row

#: a job's columns: its id, then its fields (L{scheduler0.domain.JobFields}), same names
JOB_COLUMNS = ("id", *JOB_FIELD_NAMES)
_field_values = operator.attrgetter(*JOB_FIELD_NAMES)


def create_jobs(conn: sqlite3.Connection, create: CreateJobs, stamp: str) -> Result:
    """The jobs get consecutive ids from C{first_id} on, in the order the command lists them."""
    jobs = create.jobs
    missing = missing_projects(conn, {job.project_id for job in jobs})
    if missing:
        index = next(i for i, job in enumerate(jobs) if job.project_id in missing)
        raise Rejected(
            400, f"jobs[{index}].projectId: project {jobs[index].project_id} does not exist"
        )
    first = allocate_ids(conn, "jobs", len(jobs))
    conn.executemany(
        f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}, date_created, date_modified) "
        f"VALUES ({', '.join('?' * (len(JOB_COLUMNS) + 2))})",
        [(job_id, *_field_values(fields), stamp, stamp)
         for job_id, fields in enumerate(jobs, first)],
    )
    return {"count": len(jobs), "first_id": first}


def update_job(conn: sqlite3.Connection, update: UpdateJob, stamp: str) -> Result:
    job_id = update.id
    require_row(conn, "jobs", job_id, "job")
    changes = update.changes
    if "project_id" in changes and missing_projects(conn, {changes["project_id"]}):
        raise Rejected(400, f"projectId: project {changes['project_id']} does not exist")
    update_row(conn, "jobs", job_id, changes, stamp)
    return {"id": job_id}


#: the last error of a deleted job's occurrences that had not finished
DELETED_BEFORE_FINISHING = "the job was deleted before this occurrence finished"


def delete_job(conn: sqlite3.Connection, delete: DeleteJob, stamp: str) -> Result:
    """
    The job goes; its execution history stays until retention prunes it (an operator
    who deleted a job can still ask what it did). Occurrences that had not finished
    (held, waiting for a retry) are recorded as failed, so nothing resumes them and
    retention can prune them. The job's entries in the delivery outbox are dropped, as
    is any outcome recorded after this command (L{record_executions}): a deleted job's
    history ends with its deletion.
    """
    job_id = delete.id
    require_row(conn, "jobs", job_id, "job")
    conn.execute(
        "UPDATE executions SET state = 'failed', last_error = ?, next_retry_at = NULL, "
        "date_modified = ? WHERE job_id = ? AND state IN ('scheduled', 'dispatched', "
        "'retrying')", (DELETED_BEFORE_FINISHING, stamp, job_id))
    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    for delivery_id, occurrences in conn.execute(
            "SELECT d.id, d.occurrences FROM deliveries d WHERE EXISTS "
            "(SELECT 1 FROM json_each(d.occurrences) o WHERE o.value ->> 1 = ?)",
            (job_id,)).fetchall():
        finish_delivery(conn, delivery_id, [o[0] for o in json.loads(occurrences)
                                            if o[1] == job_id], keep_facts=False)
    return {"id": job_id}
