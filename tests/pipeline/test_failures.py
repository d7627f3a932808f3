"""A stage that fails stops every other stage; its error is raised after cleanup."""

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from blur.engine import PrivacyEngine
from capture.iterable import IterableSource
from capture.types import Frame, SourceInfo
from pipeline.config import Placement, PipelineConfig
from pipeline.recording import Recording
from upload.errors import UploadError
from upload.manifest import get_manifest
from upload.storage import S3Location, StorageSettings, make_client


class NoFaces:
    def detect(self, image):
        return []

    def close(self):
        pass


class FailingPart:
    """The real client, with the n-th upload_part failing (fault injection)."""

    def __init__(self, client, fail_at):
        self._client, self.fail_at, self.calls = client, fail_at, 0

    def upload_part(self, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise UploadError("Storage refused part 2 (injected).")
        return self._client.upload_part(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def endless_noise():
    """A source that never ends on its own: only a stop from the supervisor ends it."""
    rng = np.random.default_rng(5)
    info = SourceInfo("test:endless", 640, 360, Fraction(1, 30), Fraction(30), None, None, None, live=False)

    def frames():
        i = 0
        while True:
            yield Frame(i, Fraction(1, 30), rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), "test:endless", time.monotonic())
            i += 1

    closed = threading.Event()
    return IterableSource(info, frames(), on_close=closed.set), closed


def test_a_failing_upload_stops_the_recording_aborts_it_and_records_why(seaweed, bucket, s3):
    storage = StorageSettings(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    client = FailingPart(make_client(storage), fail_at=2)
    source, closed = endless_noise()
    recording = Recording(
        source, PrivacyEngine(NoFaces()), client, storage, S3Location(bucket, "recordings"),
        Placement("test-site", "room-1", "test-station"), PipelineConfig(crf=18, keyframe_seconds=0.2), model_hashes={},
    )
    with pytest.raises(UploadError, match="injected"):
        recording.run()
    # every stage thread has ended and the source was closed
    assert not [t for t in threading.enumerate() if t.name.startswith("classcap-")]
    assert closed.is_set()
    # no video and no orphan parts; the manifest says it failed and why
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [recording.manifest_key]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    manifest = get_manifest(s3, bucket, recording.manifest_key)
    assert manifest.status == "failed" and "injected" in manifest.error


class ExpiringCredentials(FailingPart):
    """The real client, whose credential expires after the first part (fault injection)."""

    def upload_part(self, **kwargs):
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls >= self.fail_at:
            raise ClientError(
                {"Error": {"Code": "ExpiredToken", "Message": "The provided token has expired."},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}, "UploadPart")
        return self._client.upload_part(**kwargs)


def test_an_expired_credential_mid_recording_is_one_sentence_not_a_retry_loop(seaweed, bucket, s3):
    storage = StorageSettings(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    client = ExpiringCredentials(make_client(storage), fail_at=2)
    source, closed = endless_noise()
    recording = Recording(
        source, PrivacyEngine(NoFaces()), client, storage, S3Location(bucket, "recordings"),
        Placement("test-site", "room-1", "test-station"), PipelineConfig(crf=18, keyframe_seconds=0.2), model_hashes={},
    )
    started = time.monotonic()
    with pytest.raises(UploadError, match=r"refused the station's credentials .*\(ExpiredToken\)") as err:
        recording.run()
    assert time.monotonic() - started < 60, "a refused credential is not waited out like an outage"
    assert "\n" not in str(err.value) and str(err.value).endswith("check the access key and secret.")
    manifest = get_manifest(s3, bucket, recording.manifest_key)
    assert manifest.status == "failed" and "ExpiredToken" in manifest.error
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_bucket_the_station_may_not_write_is_one_sentence_and_nothing_is_left(classcap, seaweed, bucket, s3, classroom_clip):
    import json as _json

    from conftest import storage_env

    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/recordings/*"}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=_json.dumps(policy))
    try:
        run = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", env=storage_env(seaweed))
    finally:
        s3.delete_bucket_policy(Bucket=bucket)
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0 and f"refused the station's credentials for bucket {bucket}" in run.stderr
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
