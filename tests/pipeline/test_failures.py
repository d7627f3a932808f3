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
    assert manifest["status"] == "failed" and "injected" in manifest["error"]
