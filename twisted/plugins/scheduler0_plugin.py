# This directory is deliberately not a package (no __init__.py): Twisted finds plugins
# in every twisted/plugins directory on sys.path.
from twisted.application.service import ServiceMaker

scheduler0 = ServiceMaker(
    "Scheduler0",
    "scheduler0.tap",
    "A distributed cron-job server that calls HTTP callbacks on schedule.",
    "scheduler0",
)
