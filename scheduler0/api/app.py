"""
The REST API (PRODUCT §4), assembled: L{Api} combines one routes mixin per resource
(L{scheduler0.api.projects}, C{jobs}, C{executions}, C{credentials}, C{monitoring},
C{supervisor}) with the error handlers of L{scheduler0.api.error_map}; they all register on
the one Klein app of L{scheduler0.api.routing}.

Every answer is the envelope of L{scheduler0.api.envelope}. A handler decodes and checks
the request, calls one method of the L{CommandFacade} for a write (which allocates ids,
builds the command and answers once the command log has applied it), and encodes.
"""

from __future__ import annotations

from typing import Any, Callable

from ..consensus.interface import ICommandLog
from ..schedule.spec import FireTimeCache
from ..store.reads import StateReader
from .auth import Authenticator
from .cluster import ClusterRoutes
from .contract import ContractRoutes
from .credentials import CredentialRoutes
from .error_map import ErrorHandlers
from .executions import ExecutionRoutes
from .facade import CommandFacade
from .jobs import JobRoutes
from .monitoring import MonitoringRoutes
from .projects import ProjectRoutes
from .routing import EdgeResource, app
from .settings import ApiSettings, Operations
from .supervisor import SupervisorRoutes
from .ui import UiRoutes

# what node.py and the tests import from here, wherever it is defined
__all__ = ["Api", "ApiSettings", "Operations", "EdgeResource"]


class Api(MonitoringRoutes, ProjectRoutes, JobRoutes, ExecutionRoutes, CredentialRoutes,
          UiRoutes,
          SupervisorRoutes, ClusterRoutes, ContractRoutes, ErrorHandlers):
    """
    @param reader: returns the current L{StateReader}.
    @param commands: where writes go (L{ICommandLog}).
    @param clock: an C{IReactorTime}; the only source of "now".
    """

    app = app

    def __init__(self, reader: Callable[[], StateReader], commands: ICommandLog, clock: Any,
                 authenticator: Authenticator, settings: ApiSettings | None = None,
                 scheduler: Any = None, operations: Operations | None = None) -> None:
        self.reader = reader
        self.scheduler = scheduler
        self.operations = operations
        self.commands = commands
        self.clock = clock
        self.authenticator = authenticator
        self.settings = settings or ApiSettings()
        self.facade = CommandFacade(reader, commands, clock, self.settings, scheduler)

    @property
    def fire_times(self) -> FireTimeCache:
        """The facade's cache of fire times; a node sets the scheduler's, so both share."""
        return self.facade.fire_times

    @fire_times.setter
    def fire_times(self, cache: FireTimeCache) -> None:
        self.facade.fire_times = cache

    def resource(self) -> Any:
        return EdgeResource(self.app.resource())
