"""Cache s3: the tests of `test_cache_models.py` that need real servers."""

from __future__ import annotations

import pytest

from prelabel.core.errors import SettingsError
from prelabel.core.settings import Settings
from prelabel.store.cache import S3Cache, open_cache
from prelabel.store.s3 import s3_client
from tests.unit.store.test_cache_models import DETECTIONS, SIGNATURE, _same


def test_s3_cache_on_a_real_s3_protocol_server(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        s3_access_key_id="test",
        s3_secret_access_key="test",
    )  # type: ignore[arg-type]
    s3_client(settings).create_bucket(Bucket="preds")
    cache = open_cache("s3://preds/cache/v1", settings)
    assert isinstance(cache, S3Cache)
    assert cache.get("cd" * 32, SIGNATURE) is None
    cache.put("cd" * 32, SIGNATURE, DETECTIONS)
    again = cache.get("cd" * 32, SIGNATURE)
    assert again is not None and _same(again, DETECTIONS)
    keys = [o["Key"] for o in s3_client(settings).list_objects_v2(Bucket="preds")["Contents"]]
    assert keys == [f"cache/v1/{SIGNATURE.key}/cd/{'cd' * 32}.json"]
    assert cache.get_marker("shard-x") is None
    cache.put_marker("shard-x", {"worker": "gpu-b"})
    assert cache.get_marker("shard-x") == {"worker": "gpu-b"}
    with pytest.raises(SettingsError, match="names no bucket"):
        open_cache("s3://", settings)
