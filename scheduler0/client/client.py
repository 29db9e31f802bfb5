"""L{Client}: one node's API, with its resources as attributes."""

from __future__ import annotations

import os
import ssl
import time
from typing import Callable, Mapping

from .auth import ApiKeyAuth, Auth, PeerAuth
from .batching import BatchLimits
from .cluster import ClusterApi
from .resources import CredentialsApi, ExecutionsApi, HealthApi, JobsApi, ProjectsApi
from .retry import RetryPolicy
from .session import Session
from .transport import HttpTransport, Transport

DEFAULT_URL = "http://127.0.0.1:9091"


class Client:
    """
    A Scheduler0 node's API:

        client = Client("http://127.0.0.1:9091", api_key=KEY, api_secret=SECRET)
        project = client.projects.create("billing")
        ids = client.jobs.create_many([{...}, ...])    # any number; batched for the node
        client.jobs.pause(ids[0]); client.jobs.run(ids[1])
        for page in client.executions.pages(job_id=ids[1]): ...

    Every failure raises L{Scheduler0Error}. 429 and 503 answers are retried after their
    C{Retry-After} (see L{RetryPolicy}); C{sleep} and C{clock} are for tests.

    @param auth: an L{ApiKeyAuth} or L{PeerAuth}; or give C{api_key} and C{api_secret}.
    """

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None,
                 api_secret: str | None = None, auth: Auth | None = None,
                 timeout: float = 60.0, retry: RetryPolicy = RetryPolicy(),
                 batch_limits: BatchLimits = BatchLimits(),
                 ssl_context: ssl.SSLContext | None = None,
                 transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        if auth is None and (api_key is not None or api_secret is not None):
            if not api_key or not api_secret:
                raise ValueError("give both api_key and api_secret (or auth=...)")
            auth = ApiKeyAuth(api_key, api_secret)
        self.session = Session(base_url, transport or HttpTransport(timeout, ssl_context),
                               auth=auth, retry=retry, sleep=sleep, clock=clock)
        self.projects = ProjectsApi(self.session)
        self.jobs = JobsApi(self.session, batch_limits)
        self.executions = ExecutionsApi(self.session)
        self.credentials = CredentialsApi(self.session)
        self.health = HealthApi(self.session)
        self.cluster = ClusterApi(self.session)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: object) -> "Client":
        """
        From C{SCHEDULER0_URL} (default C{http://127.0.0.1:9091}) and either
        C{SCHEDULER0_API_KEY}/C{SCHEDULER0_API_SECRET} (what C{scheduler0 create credential
        --format env} sets) or C{SCHEDULER0_AUTH_USERNAME}/C{SCHEDULER0_AUTH_PASSWORD}.
        """
        env = os.environ if environ is None else environ
        url = env.get("SCHEDULER0_URL") or DEFAULT_URL
        auth: Auth | None = None
        if env.get("SCHEDULER0_API_KEY") and env.get("SCHEDULER0_API_SECRET"):
            auth = ApiKeyAuth(env["SCHEDULER0_API_KEY"], env["SCHEDULER0_API_SECRET"])
        elif env.get("SCHEDULER0_AUTH_USERNAME") and env.get("SCHEDULER0_AUTH_PASSWORD"):
            auth = PeerAuth(env["SCHEDULER0_AUTH_USERNAME"], env["SCHEDULER0_AUTH_PASSWORD"])
        return cls(url, auth=auth, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Client({self.session.base_url!r}, auth={self.session.auth!r})"


__all__ = ["Client", "DEFAULT_URL"]
