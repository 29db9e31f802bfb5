"""Schedule specs and fire-time computation (see :mod:`scheduler0.schedule.spec`)."""
