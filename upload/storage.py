"""Addressing S3-compatible storage the way AWS tools do, with errors a technician can act on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from upload.errors import UploadError


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_s3_url(url: str) -> S3Location:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise UploadError(f"{url!r} is not a storage address; write it as s3://BUCKET/PREFIX.")
    return S3Location(parsed.netloc, parsed.path.strip("/"))


@dataclass(frozen=True)
class StorageSettings:
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3

    @classmethod
    def from_env(cls, **overrides) -> "StorageSettings":
        values = dict(
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            access_key=os.environ.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def where(self) -> str:
        return self.endpoint_url or f"AWS S3 ({self.region})"


def make_client(settings: StorageSettings, connections: int = 10):
    """A boto3 S3 client; `connections`: how many requests it may have open at once (a server
    answering many readers needs as many as its worker threads)."""
    config = Config(
        max_pool_connections=connections,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        s3={"addressing_style": "path"},
        # Checksums only when an operation requires them: not every S3-compatible server knows
        # the newer flexible-checksum headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        region_name=settings.region,
        config=config,
    )


def explain(err: Exception, settings: StorageSettings, bucket: str, action: str) -> UploadError:
    """One sentence for a storage failure, naming the bucket and the endpoint."""
    where = settings.where()
    if isinstance(err, NoCredentialsError):
        return UploadError(
            f"No storage credentials are set for {where}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a school's own storage)."
        )
    if isinstance(err, EndpointConnectionError) or (isinstance(err, BotoCoreError) and "connect" in str(err).lower()):
        return UploadError(f"Cannot reach storage at {where} to {action}; check the endpoint address and the network.")
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket" or (code in ("404", "NotFound") and action == "check the bucket"):
            return UploadError(f"Bucket {bucket} does not exist at {where}; check the bucket name, or create the bucket first.")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied", "ExpiredToken") or status == 403:
            return UploadError(
                f"Storage at {where} refused the station's credentials for bucket {bucket} ({code or status}) while trying to {action}; check the access key and secret."
            )
        message = err.response.get("Error", {}).get("Message") or code
        return UploadError(f"Storage at {where} failed to {action} in bucket {bucket}: {message}.")
    if isinstance(err, BotoCoreError):
        return UploadError(f"Storage at {where} failed to {action} in bucket {bucket}: {err}.")
    return UploadError(f"Could not {action} in bucket {bucket} at {where}: {err}.")


def check_bucket(client, settings: StorageSettings, bucket: str) -> None:
    """Fail early, before any frame is read, if the bucket cannot be reached."""
    try:
        client.head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "check the bucket") from err
