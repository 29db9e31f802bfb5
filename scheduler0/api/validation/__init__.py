"""
Turning request bodies into validated column values, with messages that say what to fix.

One concept per module: L{text} holds the limits and the bounded-text helpers every body
shares, L{jobs} the job fields (spec, URL, dates, the cron parse budget), L{accounts}
projects, credentials and secret rotation, L{query} the query-string arguments. The API
resources import this package as C{V}; every name stays importable from here.

Integers are bounded so that nothing past validation can overflow sqlite's 64-bit INTEGER.
"""

from __future__ import annotations

from .accounts import (DEFAULT_SCOPES, MAX_CREDENTIAL_PROJECTS, MAX_ROTATION_GRACE, SCOPES,
                       _CREDENTIAL_NAMES, _PROJECT_NAMES, _project_ids, validate_credential,
                       validate_project, validate_rotation)
from .jobs import (EXECUTION_TYPES, MISFIRE_POLICIES, _JOB_FIELDS, _JOB_NAMES, _SERVER_OWNED,
                   _check_cron_budget, _check_url, _spec_of, _time_field, validate_job,
                   validate_jobs)
from .query import (EXECUTION_STATES, _INTEGER, _int_arg, _text_arg, execution_filters,
                    optional_int_arg, page)
from .text import (MAX_CRON_CHARS_PER_REQUEST, MAX_DATA_BYTES, MAX_DESCRIPTION_CHARS,
                   MAX_GRACE_SECONDS, MAX_ID, MAX_JOBS_PER_REQUEST, MAX_NAME_CHARS, MAX_PAGE,
                   MAX_SPEC_CHARS, MAX_TIMEZONE_CHARS, MAX_URL_CHARS, _ECHO_CHARS, _aliases,
                   _bounded_text, _echo, _is_id, _is_int, _normalise, _snake)

__all__ = [
    "DEFAULT_SCOPES", "EXECUTION_STATES", "EXECUTION_TYPES", "MAX_CREDENTIAL_PROJECTS",
    "MAX_CRON_CHARS_PER_REQUEST", "MAX_DATA_BYTES", "MAX_DESCRIPTION_CHARS",
    "MAX_GRACE_SECONDS", "MAX_ID", "MAX_JOBS_PER_REQUEST", "MAX_NAME_CHARS", "MAX_PAGE",
    "MAX_ROTATION_GRACE", "MAX_SPEC_CHARS", "MAX_TIMEZONE_CHARS", "MAX_URL_CHARS",
    "MISFIRE_POLICIES", "SCOPES", "execution_filters", "optional_int_arg", "page",
    "validate_credential", "validate_job", "validate_jobs", "validate_project",
    "validate_rotation",
    # private helpers, kept importable from here for anyone who reached for them
    "_CREDENTIAL_NAMES", "_ECHO_CHARS", "_INTEGER", "_JOB_FIELDS", "_JOB_NAMES",
    "_PROJECT_NAMES", "_SERVER_OWNED", "_aliases", "_bounded_text", "_check_cron_budget",
    "_check_url", "_echo", "_int_arg", "_is_id", "_is_int", "_normalise", "_project_ids",
    "_snake", "_spec_of", "_text_arg", "_time_field",
]
