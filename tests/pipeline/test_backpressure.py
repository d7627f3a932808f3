"""Bounded memory: a slow storage sink makes a file source wait; nothing piles up in memory; a
recording's peak memory does not grow with its length."""

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from blur.engine import PrivacyEngine
from blur.policy import FacePolicy
from blur.types import Box, Detection
from capture.iterable import IterableSource
from capture.types import Frame, SourceInfo
from conftest import CLASSCAP, NobodyIdentity, storage_env
from pipeline.config import Placement, PipelineConfig
from pipeline.recording import Recording
from upload.storage import S3Location, StorageSettings, make_client

WIDTH, HEIGHT = 640, 360


class NoFaces:
    def detect(self, image):
        return []

    def close(self):
        pass


class GatedUploads:
    """The real S3 client, with upload_part held until the test opens the gate (fault injection)."""

    def __init__(self, client):
        self._client = client
        self.gate = threading.Event()
        self.parts_started = 0

    def upload_part(self, **kwargs):
        self.parts_started += 1
        self.gate.wait(timeout=60)
        return self._client.upload_part(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def noise_source(n):
    rng = np.random.default_rng(3)
    info = SourceInfo("test:noise", WIDTH, HEIGHT, Fraction(1, 30), Fraction(30), n, None, None, live=False)

    def frames():
        for i in range(n):
            yield Frame(i, Fraction(1, 30), rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8), "test:noise", time.monotonic())

    return IterableSource(info, frames())


def test_slow_storage_makes_the_file_source_wait(seaweed, bucket):
    # given a pipeline with small queues writing to storage whose part uploads are held
    storage = StorageSettings(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    client = GatedUploads(make_client(storage))
    config = PipelineConfig(raw_queue=4, redacted_queue=4, parts_in_flight=1, crf=18, keyframe_seconds=0.2)
    recording = Recording(
        noise_source(300), PrivacyEngine(NoFaces()), client, storage, S3Location(bucket, "recordings"),
        Placement("test-site", "room-1", "test-station"), config, model_hashes={},
    )
    result = {}
    runner = threading.Thread(target=lambda: result.update(r=recording.run()))
    runner.start()
    try:
        # when the first part's upload hangs
        deadline = time.monotonic() + 60
        while client.parts_started == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        # then the source soon stops reading (two looks 1.5 s apart see the same count) ...
        seen = [-1]
        while time.monotonic() < deadline:
            time.sleep(1.5)
            seen.append(recording.counters.frames_in)
            if seen[-1] == seen[-2]:
                break
        assert seen[-1] == seen[-2] < 300, seen
        # ... and the frames it holds are only what the queues allow
        held = recording.counters.frames_in - recording.counters.frames_out
        assert held <= config.raw_queue + config.redacted_queue + 3 + config.strong_every
    finally:
        client.gate.set()
        runner.join(timeout=120)
    # and once storage moves again, every frame arrives and no queue ever exceeded its size
    assert result["r"].manifest.frames_out == 300
    hw = recording.counters.queue_high_water
    assert hw["raw"] <= config.raw_queue and hw["redacted"] <= config.redacted_queue and hw["parts"] <= config.parts_in_flight
    fragment_bytes = recording.counters.part_buffer_peak_bytes - config.part_size
    assert recording.counters.part_buffer_peak_bytes <= config.part_size + 2 * 1024 * 1024, fragment_bytes


class OneFace:
    def detect(self, image):
        return [Detection(Box(100, 100, 140, 150), 0.9)]

    def close(self):
        pass


def test_the_memory_bound_covers_the_frames_the_engine_holds_in_batch_work():
    # given the engine as the factory builds it for a file under exclude: the strong search in
    # the background, the fast one running ahead, frames waiting an anchor more for identity
    config = PipelineConfig(raw_queue=8, redacted_queue=8, parts_in_flight=2)
    policy = FacePolicy("exclude", NobodyIdentity(delay_s=0.01), chipper=lambda image, box: (image[:150, :150], True, False), wait_for_identity=True)
    engine = PrivacyEngine(OneFace(), OneFace(), policy, strong_every=config.strong_every, in_background=True,
                           lookahead=config.batch_lookahead)
    # when a minute's worth of frames goes through it
    held = released = 0
    for i in range(120):
        released += len(engine.push(np.zeros((HEIGHT, WIDTH, 3), np.uint8), i))
        held = max(held, i + 1 - released)
    released += len(engine.flush())
    engine.close()
    assert released == 120
    # then it never held more than it says, and the bound counts that many frames beside the queues
    assert held <= engine.max_held_frames
    frame, fragment = 1280 * 720 * 3, 1_000_000
    frames_in_bound = (config.memory_bound(1280, 720, fragment) - fragment - 4 * config.part_size) // frame
    assert frames_in_bound >= config.raw_queue + config.redacted_queue + 3 + engine.max_held_frames


def peak_rss_mb(command: list[str], env: dict) -> float:
    """The peak resident memory of one run of `command`, as the kernel counted it (ru_maxrss of
    a wrapper's only child)."""
    import json
    import subprocess
    import sys

    wrapper = ("import json, resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(json.dumps([done.returncode, done.stderr[-2000:], resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    out = subprocess.run([sys.executable, "-c", wrapper, *command], env=env, capture_output=True, text=True, timeout=300)
    code, stderr, kib = json.loads(out.stdout.strip().splitlines()[-1])
    assert code == 0, stderr
    return kib / 1024


@pytest.mark.slow
def test_a_recording_s_peak_memory_stays_flat_as_it_runs_longer_and_under_a_gibibyte(seaweed, bucket):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)

    def record(seconds):
        return peak_rss_mb([*CLASSCAP, "record", "--source", "testpattern", "--duration", str(seconds), "--policy", "all",
                            "--audio", "drop", "--site", "n", "--room", "r", "--notice-confirmed", "--metrics-port", "-1"], env)

    short, long = record(3), record(15)
    print(f"peak RSS: {short:.0f} MB over 3 s, {long:.0f} MB over 15 s")
    assert long < 1024, "DESIGN.md's bound: under 1 GiB"
    assert long - short < 64, "memory must not grow with the length of the lesson"
