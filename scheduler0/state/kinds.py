"""The names of the command kinds (what a command does), one per payload class."""

PROJECT_CREATE = "project.create"
PROJECT_UPDATE = "project.update"
PROJECT_DELETE = "project.delete"
PROJECT_ROTATE_SECRET = "project.rotate_secret"
JOB_CREATE = "job.create"
JOB_UPDATE = "job.update"
JOB_DELETE = "job.delete"
CREDENTIAL_CREATE = "credential.create"
CREDENTIAL_UPDATE = "credential.update"
CREDENTIAL_DELETE = "credential.delete"
EXECUTION_RECORD = "execution.record"
EXECUTION_DELETE = "execution.delete"
EXECUTION_PRUNE = "execution.prune"
#: the operator's halt or restart of the scheduler, kept so that a restart of the process
#: does not undo it
SUPERVISOR_SET = "supervisor.set"
#: the cluster's members (node id, Raft and API addresses, suffrage), replicated so every
#: node lists the same ones (the cluster-management API)
CLUSTER_MEMBERS = "cluster.members"
#: deliveries an operator asked for (run-now, a dead letter retried, a hanging execution run
#: again): applied on every node, delivered by the node that owns the job
EXECUTION_REQUEST = "execution.request"
#: an operator's breaker reset: stored nowhere, observed by every node (breakers are per node)
BREAKER_RESET = "breaker.reset"
#: the leader's assignment of job buckets to the nodes that execute them (issue 13)
CLUSTER_ASSIGN = "cluster.assign"
