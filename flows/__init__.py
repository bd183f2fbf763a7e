"""Prefect flows: thin compositions of the tasks in ``tasks/``, one module per flow.

Dependency rule, one way only: ``deployments/ -> flows/ -> tasks/ -> prelabel/``.
Importing any flow routes prelabel's own log lines to the run's logs (``flows.logs``).
"""

from flows.logs import route_prelabel_logs

route_prelabel_logs()
