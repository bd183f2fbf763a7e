"""Every command module, imported once so their commands register on ``app``, in help order:
what users run most first."""

# isort: skip_file
from prelabel_cli import predict
from prelabel_cli import data
from prelabel_cli import project
from prelabel_cli import quality
from prelabel_cli import review
from prelabel_cli import serve
from prelabel_cli import servers
from prelabel_cli import catalog

__all__ = ["catalog", "data", "predict", "project", "quality", "review", "serve", "servers"]
