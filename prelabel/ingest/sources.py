"""Where images come from: local folders, S3 prefixes, URL lists, paged REST APIs.

Each source yields light ``SourceItem`` references (URI, file name, extra fields such as a
label) lazily, so listing 15 million REST records or a large bucket holds one page at a
time; the bytes are fetched later (``prelabel.ingest.fetch``), only for the items kept. Also the
raw prediction files that sit beside local images.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from prelabel.core.errors import SourceError
from prelabel.ingest.taskrefs import task_image_uri
from prelabel.store.uris import name_of, split_s3_uri

if TYPE_CHECKING:
    from prelabel.core.settings import Settings
    from prelabel.ingest.fetch import Fetcher

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PAGES",
    "REMOTE_SCHEMES",
    "RestSource",
    "SourceItem",
    "has_images",
    "iter_image_files",
    "iter_project",
    "iter_rest",
    "iter_s3",
    "iter_url_list",
    "no_images",
    "remote_item",
    "remote_problem",
]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".jfif", ".mpo"}
)


def no_images(root: str | Path) -> SourceError:
    """The one error of a folder without a single image prelabel reads."""
    kinds = ", ".join(sorted(IMAGE_SUFFIXES))
    return SourceError(f"0 images found in {root} (prelabel reads {kinds}; hidden files are skipped)")


def has_images(root: str | Path, suffixes: frozenset[str] = IMAGE_SUFFIXES) -> bool:
    """Whether ``root`` holds an image file ``iter_image_files`` would list (or, given
    ``suffixes``, a file of those kinds: a video project's videos); stops at the first (no
    sorting: cheap on a large folder)."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes:
                path = Path(folder) / name
                if path.is_file() and not path.is_symlink():
                    return True
    return False


def iter_image_files(root: str | Path, recursive: bool = True) -> Iterator[Path]:
    """Image files under ``root`` in sorted order, by extension (case-insensitive).

    Hidden and system files (``.name``, macOS ``._name``) are skipped, and so are
    symbolic links that point outside ``root``.
    """
    base = Path(root)
    if not base.exists():
        raise SourceError(f"{base}: no such folder")
    if not base.is_dir():
        raise SourceError(f"{base}: not a folder")
    resolved_root = base.resolve()
    candidates = base.rglob("*") if recursive else base.glob("*")
    for path in sorted(candidates):
        relative = path.relative_to(base)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(resolved_root):
            continue
        yield path


@dataclass(frozen=True)
class SourceItem:
    """One image reference: where its bytes are, its file name, and extra columns (a label).

    ``problem`` marks an item the source could not give (a local path in a URL list, a page
    limit reached): it becomes an error row, and the other items go on.
    """

    uri: str
    name: str
    fields: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None


REMOTE_SCHEMES = ("http://", "https://", "s3://")
MAX_PAGES = 10_000
"""REST paging stops here (an API that ignores the offset would page forever)."""


def remote_item(uri: str, name: str, fields: Mapping[str, str] | None = None) -> SourceItem:
    """An item named by a remote list (URL list, REST page, task data): http(s) or s3 only, a
    well-formed URL; anything else (``/etc/hostname``, ``file://``, ``http://[::1/x``) is a problem."""
    return SourceItem(uri, name, fields or {}, problem=remote_problem(uri))


def remote_problem(uri: str) -> str | None:
    """Why ``uri`` is not a usable remote reference, or None."""
    import httpx

    if not uri.startswith(REMOTE_SCHEMES):
        return "unsupported scheme or a local path (lists, REST pages and task data name http(s) or s3 URIs)"
    if any(ord(c) < 32 or c == "\x7f" for c in uri):
        return "the URI holds control characters"
    if uri.startswith("s3://"):
        return None if uri[5:].partition("/")[0] and uri[5:].partition("/")[2] else "not s3://bucket/key"
    try:
        url = httpx.URL(uri)
        if not url.host:
            return "the URL names no host"
        if url.port is not None and not 0 < url.port < 65536:
            return f"malformed URL (port {url.port} out of range)"
    except (httpx.InvalidURL, ValueError) as exc:
        return f"malformed URL ({exc})"
    return None


def iter_s3(
    uri: str, settings: Settings | None = None, suffixes: frozenset[str] = IMAGE_SUFFIXES
) -> Iterator[SourceItem]:
    """Objects under ``s3://bucket/prefix`` with one of ``suffixes`` (images by default), page
    by page, hidden names skipped."""
    from botocore.exceptions import BotoCoreError, ClientError

    from prelabel.store.s3 import s3_client

    bucket, prefix = split_s3_uri(uri)
    pages = s3_client(settings).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    try:
        for page in pages:
            for entry in page.get("Contents", []):
                key = entry["Key"]
                parts = PurePosixPath(key[len(prefix) :]).parts
                if any(part.startswith(".") for part in parts):
                    continue
                if PurePosixPath(key).suffix.lower() in suffixes:
                    yield SourceItem(f"s3://{bucket}/{key}", PurePosixPath(key).name)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SourceError(f"{uri}: cannot list the prefix (S3 answered {code})") from exc
    except BotoCoreError as exc:
        raise SourceError(f"{uri}: cannot list the prefix ({exc})") from exc


def iter_url_list(path: str | Path, url_column: str = "url") -> Iterator[SourceItem]:
    """URLs from a text file (one per line, ``#`` comments) or a CSV column (other columns kept)."""
    source = Path(path)
    if not source.is_file():
        raise SourceError(f"{source}: no such URL list")
    with source.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        if source.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            if url_column not in (reader.fieldnames or []):
                raise SourceError(f"{source}: no {url_column!r} column (columns: {reader.fieldnames})")
            for row in reader:
                url = (row.pop(url_column) or "").strip()
                if url:
                    yield remote_item(url, name_of(url), {k: v or "" for k, v in row.items() if k})
            return
        for line in handle:
            url = line.strip()
            if url and not url.startswith("#"):
                yield remote_item(url, name_of(url))


@dataclass(frozen=True)
class RestSource:
    """A paged JSON API: ``GET url?offset=..&limit=..``; where the items and their fields are.

    ``url_path`` locates each item's image URL, with ``[]`` marking the list of items:
    ``trees[].image_url`` reads ``page["trees"][i]["image_url"]``; ``label_path`` (relative
    to an item, dotted) names the label kept as the ``label`` column.
    """

    url: str
    url_path: str = "items[].image_url"
    label_path: str | None = None
    page_size: int = 100
    max_items: int | None = None
    offset_param: str = "offset"
    limit_param: str = "limit"
    max_pages: int = MAX_PAGES


def iter_rest(source: RestSource, fetcher: Fetcher) -> Iterator[SourceItem]:
    """Items page by page until an empty page or ``max_items``."""
    if "[]" not in source.url_path:
        raise SourceError(
            f"url path {source.url_path!r} must mark the item list with [], e.g. trees[].image_url"
        )
    list_path, _, item_path = source.url_path.partition("[]")
    offset, seen, pages, previous = 0, 0, 0, None
    while source.max_items is None or seen < source.max_items:
        if pages >= source.max_pages:
            yield SourceItem(
                source.url, "", problem=f"stopped after {pages:,} pages (the page limit, max_pages)"
            )
            return
        params = {source.offset_param: offset, source.limit_param: source.page_size}
        page = fetcher.get_json(source.url, params)
        pages += 1
        items = _walk(page, list_path.strip("."), f"{source.url} (offset {offset})")
        if not isinstance(items, list):
            raise SourceError(f"{source.url} (offset {offset}): {list_path!r} is not a list")
        if not items:
            return
        if items == previous:
            problem = (
                f"offset {offset} answered the previous page again: the API ignores {source.offset_param!r}"
            )
            yield SourceItem(source.url, "", problem=problem)
            return
        previous = items
        for item in items:
            url = _walk(item, item_path.strip("."), f"{source.url} (offset {offset})")
            if not isinstance(url, str) or not url:
                raise SourceError(f"{source.url} (offset {offset}): an item has no {source.url_path!r}")
            fields = {}
            if source.label_path:
                fields["label"] = str(_walk(item, source.label_path, f"{source.url} (offset {offset})"))
            yield remote_item(url, name_of(url), fields)
            seen += 1
            if source.max_items is not None and seen >= source.max_items:
                return
        offset += len(items)


def iter_project(uri: str, settings: Settings) -> Iterator[SourceItem]:
    """The images of a Label Studio project, ``ls://PROJECT_ID``: uploads and local files as
    URLs of the configured server (fetched with its key), S3 keys and other URLs as they are."""
    from prelabel.labelstudio.client import LabelStudioClient

    raw = uri.removeprefix("ls://")
    if not raw.isdigit():
        raise SourceError(f"{uri}: expected ls://PROJECT_ID, e.g. ls://3")
    if settings.ls_api_key is None:
        raise SourceError(f"{uri}: set PRELABEL_LS_API_KEY to read a Label Studio project")
    with LabelStudioClient(settings.ls_url, settings.ls_api_key) as client:
        key = client.get_project(int(raw)).config.image.data_key
        for task in client.iter_tasks(int(raw)):
            ref = task.image_ref(key)
            if ref:
                yield remote_item(
                    task_image_uri(ref, settings.ls_url), name_of(ref), {"task_id": str(task.id)}
                )


def _walk(document: Any, path: str, where: str) -> Any:
    for key in filter(None, path.split(".")):
        if not isinstance(document, Mapping) or key not in document:
            raise SourceError(f"{where}: no {key!r} in the answer at {path!r}")
        document = document[key]
    return document
