"""Prefect tasks: each wraps one call into the domain package, on a batch of images.

A Prefect task run costs ~10 ms here, so nothing in this package runs per image. Tasks
never cache by input (``NO_CACHE``): their inputs are clients and image batches, which
hash badly; the content-addressed prediction cache does that job instead.

Importing this package routes prelabel's own log lines to the current run's logs
(``tasks.logs``): every flow imports its tasks, so a flow run has them however it is started.
"""

from tasks.logs import route_prelabel_logs

route_prelabel_logs()
