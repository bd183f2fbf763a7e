"""Prefect flows: thin compositions of the tasks in ``tasks/``, one module per flow.

Dependency rule, one way only: ``deployments/ -> flows/ -> tasks/ -> prelabel/``.
"""
