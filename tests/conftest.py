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


@pytest.fixture(scope="session")
def postgres():
    """A started PostgreSQL server (Debian's package) in a temp dir, stopped after the session;
    `postgres.new_database()` gives a fresh database's SQLAlchemy URL."""
    from pgserver import PostgresServer

    with PostgresServer() as server:
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


# ---------------------------------------------------------------------------------------------
# The generated classroom clip and the `classcap` command, as a teacher or technician runs it.

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLASSCAP = [sys.executable, "-m", "pipeline.cli"]


@dataclass
class Clip:
    path: Path
    classroom: object  # fixtures.classroom.Classroom

    @property
    def truth(self):
        return self.classroom.ground_truth()


@pytest.fixture(scope="session")
def classroom_clip(tmp_path_factory) -> Clip:
    """A 3 s generated classroom at 1280×720, 30 fps, with audio, and its exact ground truth."""
    from fixtures.classroom import Classroom, ClassroomSpec, write_mp4

    classroom = Classroom(ClassroomSpec(seed=7, duration_s=3.0))
    path = tmp_path_factory.mktemp("clips") / "classroom.mp4"
    write_mp4(classroom, path)
    return Clip(path, classroom)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def clean_env(**overrides) -> dict:
    """This environment without any AWS_ setting (no storage unless a test names one), plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(overrides)
    return env


def storage_env(server, **overrides) -> dict:
    return clean_env(**(server.env() | overrides))


@pytest.fixture
def classcap(seaweed):
    """`classcap(*args, env=None, prefix=())` runs the real command line in a subprocess."""

    def run(*args, env=None, prefix=(), timeout=300) -> Run:
        done = subprocess.run(
            [*prefix, *CLASSCAP, *map(str, args)],
            env=env or storage_env(seaweed),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


def metric(text: str, name: str) -> float:
    """A value from Prometheus text exposition (counters may carry a `_total` suffix)."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "_total "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in the metrics")


def metrics_url(station, timeout: float = 120) -> str:
    """The address a `record` started with `metrics_port = 0` prints on stderr."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline and station.poll() is None, "no metrics address"
        line = station.stderr.readline()
        if line.startswith("metrics on "):
            return line.split()[-1]


def read_metrics(url: str) -> str:
    return urllib.request.urlopen(url, timeout=5).read().decode()


class NobodyIdentity:
    """An identity worker for batch work that answers every chip, in the order asked and
    `delay_s` late: no match (nobody enrolled, far from every excluded student)."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.inbox = []

    def submit(self, track_id, chip, small=False):
        self.inbox.append((track_id, None))
        return True

    def has_room(self):
        return True

    def poll(self):
        return []

    def wait(self, track_ids, timeout):
        time.sleep(self.delay_s)
        out, self.inbox = self.inbox, []
        return out

    def close(self):
        pass
