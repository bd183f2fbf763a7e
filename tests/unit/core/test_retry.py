"""The one HTTP retry policy: what is retried, what is never repeated, what is logged."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import tenacity
import tenacity.nap
from PIL import Image

from prelabel.core.errors import AmbiguousWriteError, LabelStudioUnavailableError
from prelabel.core.redact import safe_url
from prelabel.core.retry import RetryPolicy, TransientStatusError
from prelabel.ingest.fetch import Fetcher, FetchOptions
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.server import free_port
from tasks.common import as_task_retries, only_transient
from tests.conftest import encode_image
from tests.support.http_faults import Site, serve

FAST = {"retries": 3, "backoff": 0.01}


@pytest.mark.parametrize(
    ("path", "posts_stored"),
    [
        ("/drop/api/projects/1/import/predictions", 1),  # stored, then the connection dropped
        ("/proxy/api/projects/1/import/predictions", 1),  # stored, then a proxy's 502
    ],
)
def test_a_write_that_may_have_been_stored_is_never_repeated(path: str, posts_stored: int) -> None:
    with serve(Site({})) as site, LabelStudioClient(site.url, "t", **FAST) as client:
        with pytest.raises(AmbiguousWriteError, match="not repeated") as caught:
            client.request("POST", path, json=[{"task": 1, "result": []}])
        assert site.hits[path] == 1  # one request: no retry by the client
        assert len(site.posts) == posts_stored
    assert caught.value.method == "POST" and caught.value.url.endswith(path)


def test_a_write_the_server_refused_is_sent_again() -> None:
    path = "/limited/api/projects/1/import/predictions"
    with serve(Site({})) as site, LabelStudioClient(site.url, "t", **FAST) as client:
        answer = client.request("POST", path, json=[{"task": 1, "result": []}])
    assert answer.json() == {"created": 1}
    assert site.hits[path] == 2 and len(site.posts) == 1  # 429 stored nothing; the retry did


def test_a_write_that_never_reached_the_server_is_retried_then_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        caplog.at_level(logging.WARNING, logger="prelabel.core.retry"),
        LabelStudioClient(url, "t", retries=1, backoff=0.01, timeout=2) as client,
        pytest.raises(LabelStudioUnavailableError, match="ConnectError"),
    ):
        client.request("POST", "/api/projects/", json={"title": "x"})
    assert [r.getMessage().split(" failed")[0] for r in caplog.records] == [f"POST {url}/api/projects/"]


def test_reads_are_retried_and_a_final_answer_is_not() -> None:
    png = encode_image(Image.new("RGB", (4, 4)), "PNG")
    with serve(Site({"a.png": png})) as site, LabelStudioClient(site.url, "t", **FAST) as client:
        assert client.request("GET", "/flaky/a.png").content == png  # 500 once, then the image
        answer = client.request("GET", "/missing/x.jpg", allow_404=True)
    assert site.hits["/flaky/a.png"] == 2
    assert answer.status_code == 404 and site.hits["/missing/x.jpg"] == 1


def test_the_prefect_task_retry_never_repeats_an_ambiguous_write() -> None:
    class State:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def result(self) -> Any:
            raise self.error

    ambiguous = AmbiguousWriteError("POST", "http://ls/api/projects/1/import/predictions", "HTTP 502")
    assert only_transient(None, None, State(ambiguous)) is False
    unavailable = LabelStudioUnavailableError("GET", "http://ls/api/tasks", 503, "busy")
    assert only_transient(None, None, State(unavailable)) is True


def test_each_retry_is_logged_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    png = encode_image(Image.new("RGB", (8, 6), (200, 10, 10)), "PNG")
    with serve(Site({"a.png": png})) as site:
        host = site.url.removeprefix("http://")
        url = f"http://user:pa55word@{host}/flaky/a.png?X-Amz-Signature=s3cret"
        options = FetchOptions(concurrency=2, timeout=5, retries=2, backoff=0.01)
        with caplog.at_level(logging.WARNING, logger="prelabel.core.retry"):
            got = Fetcher(options=options).fetch_all([url])
    assert got[url] == png
    (line,) = [r.getMessage() for r in caplog.records if r.name == "prelabel.core.retry"]
    assert line.startswith(f"GET http://{host}/flaky/a.png failed (HTTP 500); retry 1 of 2 in ")
    assert "pa55word" not in line and "s3cret" not in line and "user" not in line


class _Clock:
    """tenacity's clock and sleep, for tests: a wait is recorded and moves the clock, at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    """The policy's waits and deadline on a clock of their own, so no busy machine changes them
    (tenacity's default sleep calls ``time.sleep`` from ``tenacity.nap``, and its call
    timestamps ``time.monotonic`` from ``tenacity``)."""
    fake = _Clock()
    monkeypatch.setattr(tenacity.nap, "time", fake)
    monkeypatch.setattr(tenacity, "time", fake)
    return fake


def test_retry_after_is_honoured_up_to_its_cap(clock: _Clock) -> None:
    policy = RetryPolicy(retries=1, backoff=0.01, max_retry_after=0.2, deadline=None)
    answer = httpx.Response(503, headers={"Retry-After": "1000"}, request=httpx.Request("GET", "http://h/x"))
    calls = 0

    def send() -> None:
        nonlocal calls
        calls += 1
        raise TransientStatusError(answer)

    with pytest.raises(TransientStatusError):
        policy.call("GET", "http://h/x", send)
    assert calls == 2 and clock.sleeps == [0.2]  # the jittered 0.005-0.01 s wait raised to the cap


def test_the_deadline_bounds_a_call(clock: _Clock) -> None:
    policy = RetryPolicy(retries=100, backoff=0.05, max_backoff=0.05, deadline=0.3)
    tries = 0

    def send() -> None:
        nonlocal tries
        tries += 1
        raise httpx.ReadTimeout("slow")

    with pytest.raises(httpx.ReadTimeout):
        policy.call("GET", "http://h/x", send)
    assert tries == len(clock.sleeps) + 1 and 6 <= tries <= 12  # 0.3 s of 0.025-0.05 s waits
    assert all(0.025 <= wait <= 0.05 for wait in clock.sleeps), clock.sleeps
    # it stopped before a wait that would pass the deadline, not before
    assert sum(clock.sleeps) < 0.3 <= sum(clock.sleeps) + 0.05


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@h:8080/a/b?sig=1", "http://h:8080/a/b"),  # user info and query dropped
        (
            "https://bucket.s3.amazonaws.com/k.jpg?X-Amz-Credential=AK",
            "https://bucket.s3.amazonaws.com/k.jpg",
        ),
        ("/api/tasks", "/api/tasks"),  # a path alone stays a path
        ("http://u:p@[::1/x.mp4?sig=1", "http://[::1/x.mp4"),  # too malformed to parse: cut by hand
    ],
)
def test_safe_url(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_the_batch_read_ahead_is_retried_like_a_task(caplog: pytest.LogCaptureFixture) -> None:
    """The read runs outside the infer-batch task (ahead, in a thread): transient failures are
    retried with the task's policy, others are not."""
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("cache unreachable")
        return "read"

    with caplog.at_level(logging.WARNING, logger="prelabel.core.retry"):
        assert as_task_retries(flaky, "reading a batch of 2 images") == "read"
    assert len(attempts) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.name == "prelabel.core.retry"]
    said = "reading a batch of 2 images failed (ConnectionError: cache unreachable); retry 1 of 3"
    assert line.startswith(said)

    def broken() -> str:
        attempts.append(1)
        raise ValueError("not transient")

    attempts.clear()
    with pytest.raises(ValueError, match="not transient"):
        as_task_retries(broken, "reading")
    assert len(attempts) == 1


def test_a_retried_reads_error_is_logged_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    """The error's text goes to the run logs: a URL in it loses its user info and signature."""
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("no answer from https://me:hunter2@s3.example/b/k?X-Amz-Signature=f00d")
        return "read"

    with caplog.at_level(logging.WARNING, logger="prelabel.core.retry"):
        assert as_task_retries(flaky, "reading a batch") == "read"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "prelabel.core.retry"]
    assert "s3.example/b/k" in line and "hunter2" not in line and "f00d" not in line
