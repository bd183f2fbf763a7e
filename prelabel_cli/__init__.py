"""The ``prelabel`` command line: a thin front end over the package and its flows."""
