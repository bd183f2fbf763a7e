"""What the fetcher refuses to do for a source it does not trust.

- **The Label Studio key** goes only with a request for a file the configured server holds:
  same scheme, host and port, and a path that, normalised, is under ``/data/upload/`` or
  ``/data/local-files/`` (``/data/../api/...`` is not).
- **Redirects** to a private, loopback, link-local or otherwise reserved address are refused
  unless they stay on the configured Label Studio or S3 endpoint: a public list cannot steer
  the fetcher onto the machine's own network.
- **Local files** are read only when they are regular files (no ``/dev/zero``, no FIFO).
"""

from __future__ import annotations

import asyncio
import ipaddress
import posixpath
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote

import httpx

from prelabel.core.errors import SourceError
from prelabel.core.redact import safe_url

__all__ = ["LABEL_STUDIO_FILE_PATHS", "label_studio_file_path", "redirect_guard"]

LABEL_STUDIO_FILE_PATHS = ("/data/upload/", "/data/local-files/")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def label_studio_file_path(uri: str, ls_url: str) -> str | None:
    """The path (with its query) to ask the configured Label Studio for, when ``uri`` is one of
    its files; None otherwise (the key is then never sent)."""
    try:
        url, base = httpx.URL(uri), httpx.URL(ls_url)
    except (httpx.InvalidURL, ValueError):
        return None
    if _origin(url) != _origin(base):
        return None
    prefix = base.path.rstrip("/")
    path = unquote(url.path)
    if not path.startswith(prefix + "/"):
        return None
    inner = posixpath.normpath(path[len(prefix) :])
    if not inner.startswith(LABEL_STUDIO_FILE_PATHS) and not (inner + "/").startswith(
        LABEL_STUDIO_FILE_PATHS
    ):
        return None
    query = url.query.decode()
    return url.raw_path.decode()[len(prefix) :].split("?")[0] + (f"?{query}" if query else "")


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    return not ip.is_global or ip.is_multicast


async def _resolves_private(host: str) -> bool:
    try:
        return _private(host)
    except ValueError:
        pass  # a name: look it up
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False  # the request itself will fail with a clear error
    return any(_private(str(info[4][0])) for info in infos)


def redirect_guard(trusted: Iterable[str]) -> Callable[[httpx.Response], Awaitable[None]]:
    """An httpx response hook refusing redirects onto private addresses, except to the
    ``trusted`` endpoints (base URLs of the configured Label Studio and S3)."""
    allowed = set()
    for base in trusted:
        try:
            allowed.add(_origin(httpx.URL(base))[1:])
        except (httpx.InvalidURL, ValueError):
            continue

    async def hook(response: httpx.Response) -> None:
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            return
        try:
            target = response.request.url.join(location)
        except (httpx.InvalidURL, ValueError) as exc:
            raise SourceError(
                f"{safe_url(response.request.url)}: redirected to a malformed URL ({exc})"
            ) from exc
        if _origin(target)[1:] in allowed:
            return
        if await _resolves_private(target.host):
            raise SourceError(
                f"{safe_url(response.request.url)}: redirected to {safe_url(target)}, a private or "
                "loopback address; refused"
            )

    return hook
