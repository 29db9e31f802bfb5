"""
A Python client for Scheduler0's HTTP API, and the callback signature check, with the
standard library only: C{pip install --no-deps scheduler0} is enough (the server's
dependencies are never imported from here).

    from scheduler0.client import Client, Scheduler0Error, verify_signature
"""

from .auth import ApiKeyAuth, Auth, NoAuth, PeerAuth
from .batching import BatchLimits
from .client import DEFAULT_URL, Client
from .cluster import ClusterApi
from .errors import Scheduler0Error
from .resources import CredentialsApi, ExecutionsApi, HealthApi, JobsApi, ProjectsApi
from .retry import NO_RETRY, RetryPolicy
from .signature import SIGNATURE_HEADER, verify_signature
from .transport import HttpTransport, RawResponse, Transport
from .models import Credential, Execution, Job, JobFields, Page, Project, RunResult

__all__ = [
    "ApiKeyAuth", "Auth", "BatchLimits", "Client", "ClusterApi", "Credential",
    "CredentialsApi", "DEFAULT_URL", "Execution", "ExecutionsApi", "HealthApi",
    "HttpTransport", "Job", "JobFields", "JobsApi", "NO_RETRY", "NoAuth", "Page", "PeerAuth",
    "Project", "ProjectsApi", "RawResponse", "RetryPolicy", "RunResult", "SIGNATURE_HEADER",
    "Scheduler0Error", "Transport", "verify_signature",
]
