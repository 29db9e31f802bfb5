"""
The API's JSON shapes of the domain records: camelCase, produced here at the edge and
nowhere else (the callbacks' body has its own, in L{scheduler0.schedule.occurrence}).
"""

from __future__ import annotations

from typing import Any

from ..domain import Credential, Execution, Job, Project, SigningSecrets


def project_json(project: Project) -> dict[str, Any]:
    """A project as the API shows it (never its signing secrets: L{signing_secrets_json})."""
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "dateCreated": project.date_created,
        "dateModified": project.date_modified,
    }


def signing_secrets_json(secrets: SigningSecrets) -> dict[str, Any]:
    """A project's signing secrets as C{GET .../signing-secret} shows them: the current
    one, every previous one kept (newest first), and the newest previous one on its own
    (C{previousSigningSecret}, C{previousSecretExpires}: null when never rotated), which
    clients written before several were kept read."""
    newest = secrets.newest_previous
    return {
        "signingSecret": secrets.current,
        "previousSigningSecret": newest.secret if newest else None,
        "previousSecretExpires": newest.expires if newest else None,
        "previousSigningSecrets": [{"secret": p.secret, "expires": p.expires}
                                   for p in secrets.previous],
    }


def credential_json(credential: Credential, api_secret: str | None = None) -> dict[str, Any]:
    """A credential as the API shows it: never its secret, except C{api_secret} when it
    was just made (the only time it is shown). C{projectIds} is null for a node-wide one."""
    shown: dict[str, Any] = {
        "id": credential.id,
        "apiKey": credential.api_key,
        "scopes": list(credential.scopes),
        "projectIds": (list(credential.project_ids)
                       if credential.project_ids is not None else None),
        "archived": credential.archived,
        "dateCreated": credential.date_created,
        "dateModified": credential.date_modified,
    }
    if api_secret is not None:
        shown["apiSecret"] = api_secret
    return shown


def job_json(job: Job, next_run_at: str | None) -> dict[str, Any]:
    """A job as the API shows it, with when it runs next (None: paused or finished)."""
    fields = job.fields
    return {
        "id": job.id,
        "projectId": fields.project_id,
        "spec": fields.spec,
        "callbackUrl": fields.callback_url,
        "data": fields.data,
        "executionType": fields.execution_type,
        "timezone": fields.timezone,
        "startDate": fields.start_date,
        "endDate": fields.end_date,
        "paused": fields.paused,
        "misfirePolicy": fields.misfire_policy,
        "misfireGraceSeconds": fields.misfire_grace_seconds,
        "dateCreated": job.date_created,
        "dateModified": job.date_modified,
        "nextRunAt": next_run_at,
    }


#: the camelCase name of each field a client may set on a job
JOB_JSON_NAMES = {
    "project_id": "projectId", "spec": "spec", "callback_url": "callbackUrl", "data": "data",
    "execution_type": "executionType", "timezone": "timezone", "start_date": "startDate",
    "end_date": "endDate", "paused": "paused", "misfire_policy": "misfirePolicy",
    "misfire_grace_seconds": "misfireGraceSeconds",
}


def execution_json(execution: Execution) -> dict[str, Any]:
    """An execution as the API shows it."""
    return {
        "executionId": execution.id,
        "jobId": execution.job_id,
        "projectId": execution.project_id,
        "scheduledTime": execution.scheduled_time,
        "state": execution.state,
        "attempts": execution.attempts,
        "target": execution.target,
        "nodeId": execution.node_id,
        "lastStatus": execution.last_status,
        "lastError": execution.last_error,
        "errorCategory": execution.error_category,
        "durationMs": execution.duration_ms,
        "latenessMs": execution.lateness_ms,
        "firstAttemptAt": execution.first_attempt_at,
        "lastAttemptAt": execution.last_attempt_at,
        "nextRetryAt": execution.next_retry_at,
        "dateCreated": execution.date_created,
        "dateModified": execution.date_modified,
    }
