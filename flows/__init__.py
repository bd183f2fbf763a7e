"""Prefect flows: thin compositions of the tasks in ``tasks/``, one module per flow.

Dependency rule, one way only: ``deployments/ -> flows/ -> tasks/ -> prelabel/``. Importing
this package imports no Prefect, so the command line reads the flows' parameters
(``flows.params``) at start-up for free; every flow imports ``tasks``, which routes
prelabel's own log lines to the run's logs (``tasks.logs``).
"""
