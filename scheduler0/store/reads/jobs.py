"""
Projects and jobs as domain records: single records, pages (optionally limited to the
projects a credential may see), and the id look-ups a batch needs.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from ...domain import Job, JobFields, Project
from .common import Projects, Queries, _only


def project_from_row(row: sqlite3.Row) -> Project:
    """A stored project (its signing secrets are read apart, in L{credentials})."""
    return Project(id=row["id"], name=row["name"], description=row["description"],
                   date_created=row["date_created"], date_modified=row["date_modified"])


def job_from_row(row: sqlite3.Row) -> Job:
    """A stored job (C{paused} a boolean)."""
    return Job(
        id=row["id"],
        fields=JobFields(
            project_id=row["project_id"],
            spec=row["spec"],
            callback_url=row["callback_url"],
            data=row["data"],
            execution_type=row["execution_type"],
            timezone=row["timezone"],
            start_date=row["start_date"],
            end_date=row["end_date"],
            paused=bool(row["paused"]),
            misfire_policy=row["misfire_policy"],
            misfire_grace_seconds=row["misfire_grace_seconds"],
        ),
        date_created=row["date_created"],
        date_modified=row["date_modified"],
    )


class ProjectJobQueries(Queries):
    """The project and job queries of L{StateReader}."""

    def sequence(self, name: str) -> int:
        """The highest id ever used for C{name}'s rows (0 if none)."""
        row = self._one("SELECT last FROM sequences WHERE name = ?", (name,))
        return row[0] if row else 0

    # projects

    def project(self, project_id: int) -> Project | None:
        row = self._one("SELECT * FROM projects WHERE id = ?", (project_id,))
        return project_from_row(row) if row else None

    def projects(self, limit: int, offset: int,
                 only: Projects = None) -> tuple[list[Project], int]:
        where, args = _only("id", only)
        rows = self._conn.execute(
            f"SELECT * FROM projects WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
            (*args, limit, offset)).fetchall()
        return ([project_from_row(r) for r in rows],
                self._count(f"SELECT count(*) FROM projects WHERE {where}", args))

    def existing_project_ids(self, ids: Iterable[int]) -> set[int]:
        wanted = list(set(ids))
        found: set[int] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._conn.execute(
                f"SELECT id FROM projects WHERE id IN ({marks})", chunk))
        return found

    # jobs

    def job(self, job_id: int) -> Job | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return job_from_row(row) if row else None

    def jobs(self, project_id: int | None, limit: int, offset: int,
             only: Projects = None) -> tuple[list[Job], int]:
        """A page of jobs, of C{project_id} or of every project, among the projects in
        C{only} (when given)."""
        if only is not None and project_id is not None and project_id not in only:
            return [], 0
        if project_id is None:
            where, args = _only("project_id", only)
            rows = self._conn.execute(
                f"SELECT * FROM jobs WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
                (*args, limit, offset)).fetchall()
            total = self._count(f"SELECT count(*) FROM jobs WHERE {where}", args)
        else:
            rows = self._conn.execute(
                "SELECT * FROM jobs WHERE project_id = ? ORDER BY id LIMIT ? OFFSET ?",
                (project_id, limit, offset),
            ).fetchall()
            total = self._count("SELECT count(*) FROM jobs WHERE project_id = ?", (project_id,))
        return [job_from_row(r) for r in rows], total

    def jobs_by_ids(self, ids: list[int]) -> list[Job]:
        records: list[Job] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            records.extend(job_from_row(r) for r in self._conn.execute(
                f"SELECT * FROM jobs WHERE id IN ({marks}) ORDER BY id", chunk))
        return records
