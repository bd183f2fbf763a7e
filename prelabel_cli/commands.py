"""Every command module, imported once so their commands register on ``app``, in help order."""

from prelabel_cli import catalog, data, predict, project, review, servers

__all__ = ["catalog", "data", "predict", "project", "review", "servers"]
