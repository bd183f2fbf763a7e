"""URLs fit to be shown: credentials taken out before a URL reaches a log line, an error row,
a report, an export or an exception's text.

Two strengths. ``safe_url`` (logs) keeps scheme, host, port and path only. ``redact_url``
(rows, reports, exports) keeps the query too, but drops user info and replaces the values of
parameters that carry credentials (``X-Amz-*``, ``token``, ``key``, ``signature``, ...).
Manifests keep URIs as given: they must stay fetchable.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact", "redact_url", "safe_url"]

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]]+")
_SECRET = re.compile(
    r"^(x-amz-.*|x-goog-.*|token|access_token|id_token|key|api_key|apikey|api-key|signature|sig|se|sp|sv|"
    r"password|passwd|pwd|secret|client_secret|credential|credentials|auth|authorization|session|"
    r"policy|key-pair-id)$",
    re.IGNORECASE,
)
_HIDDEN = "REDACTED"


def _host(netloc: str) -> str:
    return netloc.rpartition("@")[2]


def safe_url(url: object) -> str:
    """A URL for logs: no user info, no query (presigned signatures live there); also for a URL
    too malformed to parse (an unclosed IPv6 bracket), which is what its error message quotes."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        scheme, sep, rest = text.partition("?")[0].partition("#")[0].partition("://")
        netloc, slash, path = rest.partition("/")
        return f"{scheme}{sep}{_host(netloc)}{slash}{path}" if sep else scheme
    return urlunsplit((parts.scheme, _host(parts.netloc), parts.path, "", "")) if parts.scheme else parts.path


def redact_url(url: str) -> str:
    """``url`` without user info and with credential-like query values replaced."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return safe_url(url)
    if not parts.scheme:
        return url
    query = urlencode([(k, _HIDDEN if _SECRET.match(k) else v) for k, v in pairs], safe="/:")
    return urlunsplit((parts.scheme, _host(parts.netloc), parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with every URL in it redacted (error messages quote the URLs they failed on)."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
