"""The one way prelabel makes an S3 client: endpoint, region and keys from its settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from prelabel.core.settings import Settings

__all__ = ["s3_client"]


def s3_client(settings: Settings | None) -> S3Client:
    """A boto3 S3 client from prelabel's settings (endpoint, region, keys), else boto3's defaults."""
    import boto3

    kwargs: dict[str, Any] = {}
    if settings is not None:
        if settings.s3_endpoint_url:
            kwargs["endpoint_url"] = settings.s3_endpoint_url
        if settings.s3_region:
            kwargs["region_name"] = settings.s3_region
        if settings.s3_access_key_id and settings.s3_secret_access_key:
            kwargs["aws_access_key_id"] = settings.s3_access_key_id.get_secret_value()
            kwargs["aws_secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    return boto3.client("s3", **kwargs)
