"""Shared fixtures: one real SeaweedFS S3 server on loopback for the whole test session."""

import uuid

import boto3
import pytest
from botocore.config import Config

from upload.seaweed import SeaweedServer

# Fail fast on a dead server instead of botocore's default 60 s connect wait and 5 retries.
S3_CONFIG = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 2})


def s3_client(server: SeaweedServer, secret_key: str | None = None):
    """A boto3 S3 client for `server`; `secret_key` overrides the server's (to test auth)."""
    return boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=secret_key or server.secret_key, config=S3_CONFIG)


@pytest.fixture(scope="session")
def seaweed():
    """A started SeaweedServer in a temp dir (about 1 s to start), stopped after the session."""
    with SeaweedServer() as server:
        yield server


@pytest.fixture
def s3_for():
    """`s3_for(server, secret_key=None)`: a client for another server, or with a wrong secret."""
    return s3_client


@pytest.fixture
def s3(seaweed):
    return s3_client(seaweed)


@pytest.fixture
def bucket(s3):
    """A fresh, uniquely named bucket, so tests never see each other's objects."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name
