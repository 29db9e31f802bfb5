"""
Scheduler0's tests.

Hypothesis's health check that fails a test whose inputs are slow to generate measures
wall-clock time: on a loaded 2-core machine (CI, or tests run in parallel) it fails tests
whose behaviour is fine. Every property test here runs with it off, and without a
per-example deadline, for the same reason.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("scheduler0", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("scheduler0")
