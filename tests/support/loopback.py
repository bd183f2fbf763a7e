"""The HTTP server the test stand-ins run on: Python's threading server, quiet about clients
that hung up before their answer was written (a fetch that gave up, a test done with the
server). Its traceback would be printed by a handler thread that outlives the test, into the
captured stderr of whatever test the process runs next."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer

__all__ = ["LoopbackServer"]


class LoopbackServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset...
            super().handle_error(request, client_address)  # type: ignore[arg-type]
