"""Ingest s3: the tests of `test_ingest.py` that need real servers."""

from __future__ import annotations

import pytest

from prelabel.core.errors import SourceError
from prelabel.core.settings import Settings
from prelabel.ingest.fetch import Fetcher
from prelabel.ingest.sources import SourceItem, iter_s3
from prelabel.store.s3 import s3_client
from tests.unit.ingest.test_ingest import SAMPLES


def test_s3_prefix_listing_and_reading(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(
        s3_endpoint_url=s3_endpoint, s3_region="us-east-1", s3_access_key_id="k", s3_secret_access_key="s"
    )  # type: ignore[arg-type]
    client = s3_client(settings)
    client.create_bucket(Bucket="listing")
    for i in range(1205):  # more than one listing page
        client.put_object(Bucket="listing", Key=f"p/{i:05d}.png", Body=b"x")
    client.put_object(Bucket="listing", Key="p/._hidden.jpg", Body=b"x")
    client.put_object(Bucket="listing", Key="p/notes.txt", Body=b"x")
    client.put_object(Bucket="listing", Key="p/sub/real.JPG", Body=next(iter(SAMPLES.values())))
    listed = list(iter_s3("s3://listing/p/", settings))
    assert len(listed) == 1206 and listed[-1] == SourceItem("s3://listing/p/sub/real.JPG", "real.JPG")
    fetched = Fetcher(settings).fetch_all(["s3://listing/p/sub/real.JPG", "s3://listing/p/nothing.jpg"])
    assert fetched["s3://listing/p/sub/real.JPG"] == next(iter(SAMPLES.values()))
    assert "NoSuchKey" in str(fetched["s3://listing/p/nothing.jpg"])
    with pytest.raises(SourceError, match="cannot list"):
        list(iter_s3("s3://no-such-bucket/p", settings))
