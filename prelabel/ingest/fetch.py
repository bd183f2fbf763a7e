"""Image bytes from local paths, ``s3://`` keys and http(s) URLs, many at a time (and, for videos,
one remote file at a time straight to disk: ``download``).

One asyncio loop drives every fetch: URLs through one ``httpx.AsyncClient`` (bounded
concurrency, per-request timeout, the retry policy of ``prelabel.core.retry``,
a size cap, a content-type check), local files, S3 objects and files served by the
configured Label Studio (with its key, never written anywhere) through worker threads.
Results go to a handler as they complete, and a fetch holds its concurrency slot until the
handler is done with its bytes, so memory stays bounded by ``concurrency`` images however
long the list. Every failure is a ``SourceError`` naming the URI; nothing else stops.

A fetcher makes its own Label Studio client on first use and closes it when a fetch ends; one
shared by threads (the review page) is given a client it borrows and never closes, since
closing it under another thread's request breaks that request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import stat
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from prelabel.core.errors import SourceError
from prelabel.core.redact import safe_url
from prelabel.core.retry import TRANSIENT_STATUS, RetryPolicy, TransientStatusError
from prelabel.ingest.guards import label_studio_file_path, redirect_guard
from prelabel.store.uris import split_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from prelabel.core.settings import Settings
    from prelabel.labelstudio.client import LabelStudioClient

__all__ = ["FetchOptions", "Fetcher"]

_POOL_SIZE = 8
_BINARY_TYPES = ("application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class FetchOptions:
    """How downloads behave: parallelism, patience, and what counts as acceptable."""

    concurrency: int = 32
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 0.5
    max_bytes: int = 50 * 2**20


class Fetcher:
    """Fetches URIs concurrently; see the module docstring."""

    def __init__(
        self,
        settings: Settings | None = None,
        options: FetchOptions | None = None,
        label_studio: LabelStudioClient | None = None,
    ) -> None:
        self.settings, self.options = settings, options or FetchOptions()
        self._s3: S3Client | None = None
        self._s3_lock = threading.Lock()
        self._label_studio = label_studio
        self._owns_label_studio = label_studio is None

    def fetch(self, uris: Iterable[str], handle: Callable[[str, bytes | SourceError], None]) -> None:
        """Call ``handle(uri, bytes or error)`` for every URI, in completion order, one at a time."""
        try:
            asyncio.run(self._fetch_all(uris, handle))
        finally:
            if self._owns_label_studio and self._label_studio is not None:
                self._label_studio.close()
                self._label_studio = None

    def fetch_all(self, uris: Iterable[str]) -> dict[str, bytes | SourceError]:
        """Every URI's bytes or error (for a batch that fits in memory)."""
        results: dict[str, bytes | SourceError] = {}
        self.fetch(uris, results.__setitem__)
        return results

    def get_json(self, url: str, params: Mapping[str, Any]) -> Any:
        """One JSON document (a REST page), with the same retries as images."""

        async def run() -> Any:
            async with self._client() as client:
                response = await self._get(client, url, params)
                try:
                    return response.json()
                except ValueError as exc:
                    raise SourceError(f"{response.url}: the answer is not JSON ({exc})") from exc

        return asyncio.run(run())

    # -- internals ------------------------------------------------------------------------

    def _client(self, connections: int | None = None) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections or self.options.concurrency)
        settings = self.settings
        trusted = [settings.ls_url, settings.s3_endpoint_url or ""] if settings is not None else []
        return httpx.AsyncClient(
            timeout=self.options.timeout,
            limits=limits,
            follow_redirects=True,
            verify=_tls_context(),
            event_hooks={"response": [redirect_guard(trusted)]},
        )

    async def _fetch_all(
        self, uris: Iterable[str], handle: Callable[[str, bytes | SourceError], None]
    ) -> None:
        slots = asyncio.Semaphore(max(1, self.options.concurrency))
        handler_lock = asyncio.Lock()
        running: set[asyncio.Task[None]] = set()
        # httpcore scans its whole pool for every request: several small pools cost far less
        # CPU than one large one (measured: 64 connections in one pool halve the throughput).
        pools = max(1, self.options.concurrency // _POOL_SIZE)
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(self._client(_POOL_SIZE)) for _ in range(pools)]

            async def one(uri: str, client: httpx.AsyncClient) -> None:
                try:
                    try:
                        outcome: bytes | SourceError = await self._read(client, uri)
                    except SourceError as exc:
                        outcome = exc
                    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
                        outcome = SourceError(f"{safe_url(uri)}: malformed URI ({exc})")
                    async with handler_lock:
                        await asyncio.to_thread(handle, uri, outcome)
                finally:
                    slots.release()

            for number, uri in enumerate(uris):
                await slots.acquire()
                job = asyncio.create_task(one(uri, clients[number % pools]))
                running.add(job)
                job.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)

    async def _read(self, client: httpx.AsyncClient, uri: str) -> bytes:
        if self._from_label_studio(uri):
            return await asyncio.to_thread(self._read_label_studio, uri)
        if uri.startswith(("http://", "https://")):
            return await self._download(client, uri)
        if uri.startswith("s3://"):
            return await asyncio.to_thread(self._read_s3, uri)
        if "://" in uri:
            raise SourceError(f"{uri}: unsupported scheme (use a local path, s3:// or http(s)://)")
        return await asyncio.to_thread(self._read_local, uri)

    def _read_local(self, uri: str) -> bytes:
        path = Path(uri)
        try:
            with path.open("rb") as handle:
                status = os.fstat(handle.fileno())
                if not stat.S_ISREG(status.st_mode):
                    raise SourceError(f"{uri}: not a regular file")
                if status.st_size > self.options.max_bytes:
                    raise SourceError(f"{uri}: larger than the {self.options.max_bytes:,}-byte limit")
                return handle.read(self.options.max_bytes + 1)
        except OSError as exc:
            raise SourceError(f"{uri}: cannot read file ({exc.strerror or exc})") from exc

    def _from_label_studio(self, uri: str) -> bool:
        """A file the configured Label Studio serves (uploads, local files): sent with its key."""
        settings = self.settings
        return bool(settings and settings.ls_api_key and label_studio_file_path(uri, settings.ls_url))

    def _read_label_studio(self, uri: str) -> bytes:
        from prelabel.core.errors import LabelStudioError
        from prelabel.labelstudio.client import LabelStudioClient

        settings = self.settings
        if settings is None or settings.ls_api_key is None:  # _from_label_studio said it is there
            raise SourceError(f"{uri}: no Label Studio key configured")
        if self._label_studio is None:
            self._label_studio = LabelStudioClient(settings.ls_url, settings.ls_api_key)
        try:
            path = label_studio_file_path(uri, settings.ls_url) or ""
            answer = self._label_studio.request("GET", path)
        except LabelStudioError as exc:
            raise SourceError(f"{uri}: {exc}") from exc
        if len(answer.content) > self.options.max_bytes:
            raise SourceError(f"{uri}: larger than the {self.options.max_bytes:,}-byte limit")
        return answer.content

    def _s3_client(self) -> S3Client:
        with self._s3_lock:  # boto3 clients are thread-safe once made; making one is not
            if self._s3 is None:
                from prelabel.store.s3 import s3_client

                self._s3 = s3_client(self.settings)
            return self._s3

    def _read_s3(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        with _s3_errors(uri):
            answer = self._s3_client().get_object(Bucket=bucket, Key=key)
            if answer["ContentLength"] > self.options.max_bytes:
                raise SourceError(f"{uri}: larger than the {self.options.max_bytes:,}-byte limit")
            return answer["Body"].read()

    def download(self, uri: str, path: Path) -> None:
        """Copy ``uri`` (an ``s3://`` key or an http(s) URL) to the file ``path``, streamed and
        with no size limit (a video), under the same retries and redirect guard as images."""
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            with _s3_errors(uri):
                self._s3_client().download_file(bucket, key, str(path))
        elif uri.startswith(("http://", "https://")):

            async def run() -> None:
                async with self._client(1) as client:
                    await self._get(client, uri, None, lambda response: _write_body(response, path))

            try:
                asyncio.run(run())
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
                raise SourceError(f"{safe_url(uri)}: malformed URI ({exc})") from exc
        else:
            raise SourceError(f"{uri}: not a remote file (s3:// or http(s)://)")

    async def _download(self, client: httpx.AsyncClient, url: str) -> bytes:
        async def image(response: httpx.Response) -> None:
            _check_type(url, response.headers.get("content-type", ""))
            await self._read_body(url, response)

        response = await self._get(client, url, None, image)
        return response.content

    async def _get(
        self,
        client: httpx.AsyncClient,
        url: str,
        params: Mapping[str, Any] | None,
        read: Callable[[httpx.Response], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        """GET under the retry policy; the body is read by ``read`` (default: whole, under the
        size cap), again on each try."""
        tries = 0

        async def attempt() -> httpx.Response:
            nonlocal tries
            tries += 1
            async with client.stream("GET", url, params=params) as response:
                if response.status_code in TRANSIENT_STATUS:
                    raise TransientStatusError(response)
                if response.status_code >= 400:
                    raise SourceError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
                await (read or functools.partial(self._read_body, url))(response)
                return response

        policy = RetryPolicy(retries=self.options.retries, backoff=self.options.backoff)
        try:
            return await policy.acall("GET", url, attempt)
        except TransientStatusError as exc:
            raise SourceError(f"{url}: HTTP {exc.status} {exc.response.reason_phrase}") from exc
        except httpx.RequestError as exc:
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            raise SourceError(f"{url}: download {kind} after {tries} tries ({exc!r})") from exc

    async def _read_body(self, url: str, response: httpx.Response) -> None:
        limit = self.options.max_bytes
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise SourceError(f"{url}: {int(declared):,} bytes is over the {limit:,}-byte limit")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise SourceError(f"{url}: more than the {limit:,}-byte limit")
            chunks.append(chunk)
        response._content = b"".join(chunks)  # what .content and .json() read


async def _write_body(response: httpx.Response, path: Path) -> None:
    """The body into ``path`` (made again on a retry), a megabyte at a time."""
    with path.open("wb") as handle:
        async for chunk in response.aiter_bytes(1 << 20):
            handle.write(chunk)


@contextlib.contextmanager
def _s3_errors(uri: str) -> Iterator[None]:
    """boto3's errors as one ``SourceError`` naming ``uri``."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SourceError(f"{uri}: S3 answered {code}") from exc
    except (BotoCoreError, Boto3Error) as exc:  # Boto3Error: a transfer's retries ran out
        raise SourceError(f"{uri}: S3 read failed ({exc})") from exc


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's roots, ``SSL_CERT_FILE``), made once: each client
    made its own, about 70 ms of reading certificates, for every fetch of every batch."""
    return httpx.create_ssl_context()


def _check_type(url: str, content_type: str) -> None:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind and not kind.startswith("image/") and kind not in _BINARY_TYPES:
        raise SourceError(f"{url}: content type {kind!r} is not an image")
