"""
The domain's records: what a project, a credential, a job, an execution and a delivery
are, as plain typed values.

They travel between the parts of a node (the API hands a L{JobFields} to the command
facade, the executor hands L{Execution} records to the recorder, the store reads L{Job}
and L{Execution} back) and inside commands. Their attribute names are the domain's; how
they are stored (L{scheduler0.state}, L{scheduler0.store}) and how the API and the
callbacks show them (camelCase, at the edge) is decided elsewhere.
"""

from .credential import Credential
from .dead_letters import DeadLetterSummary
from .delivery import DeliveryFinished, DeliveryOutcome, DeliveryRecord
from .execution import TERMINAL_STATES, Execution
from .job import JOB_FIELD_NAMES, Job, JobFields
from .project import PreviousSecret, Project, SigningSecrets
from .supervisor import SupervisorHalt

__all__ = [
    "Credential", "DeadLetterSummary", "DeliveryFinished", "DeliveryOutcome", "DeliveryRecord",
    "Execution", "JOB_FIELD_NAMES", "Job", "JobFields", "PreviousSecret",
    "Project", "SigningSecrets", "SupervisorHalt", "TERMINAL_STATES",
]
