"""A camera that drops out is reopened and the recording goes on; one that never returns ends it cleanly."""

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from capture.errors import CameraDisconnected, CaptureError
from capture.reconnect import ReconnectingSource
from capture.types import Frame, SourceInfo


class FakeCamera:
    """Delivers `frames` frames at `fps`, then fails as an unplugged camera does (fault injection)."""

    def __init__(self, frames, size=(64, 48), fps=100.0):
        self.frames, self.fps = frames, fps
        self.size = size
        self.info = SourceInfo("fake:cam", size[0], size[1], Fraction(1, 30), Fraction(30), None, None, None, True)
        self.closed = False

    def __iter__(self):
        for i in range(self.frames):
            time.sleep(1 / self.fps)
            image = np.full((self.size[1], self.size[0], 3), i % 256, np.uint8)
            yield Frame(i, Fraction(1, 30), image, "fake:cam", time.monotonic())
        raise CameraDisconnected("Camera fake stopped delivering frames.")

    def close(self):
        self.closed = True


class Opener:
    """Returns the cameras in `script` in turn; an exception in the script is raised instead."""

    def __init__(self, *script):
        self.script, self.calls = list(script), 0

    def __call__(self):
        self.calls += 1
        step = self.script.pop(0) if self.script else CaptureError("Cannot reach the camera.")
        if isinstance(step, Exception):
            raise step
        return step


def test_a_camera_that_comes_back_continues_the_same_stream_with_the_gap_in_its_timestamps():
    first, second = FakeCamera(10), FakeCamera(10, size=(32, 24))  # it comes back at another size
    opener = Opener(first, CaptureError("not yet"), CaptureError("not yet"), second)
    source = ReconnectingSource(opener, give_up_after_s=10, backoff_s=0.05)
    frames = []
    with pytest.raises(StopIteration):
        it = iter(source)
        while True:
            frames.append(next(it))
            if len(frames) == 20:
                source.stop()  # the teacher stops once the second camera has been read out
                next(it)
    assert len(frames) == 20 and first.closed
    pts = [f.pts for f in frames]
    assert pts == sorted(set(pts)), "timestamps must strictly increase across the reconnect"
    assert all(f.image.shape == (48, 64, 3) for f in frames), "a returning camera is scaled to the recording's size"
    assert source.health.reconnects == 1 and len(source.health.gaps) == 1
    gap = source.health.gaps[0]
    assert gap.ended_at is not None and gap.seconds >= 0.05 + 0.1  # two failed reopens with backoff
    jump = (pts[10] - pts[9]) * source.info.time_base
    assert jump >= Fraction(gap.seconds) * Fraction(9, 10), "the video's clock shows the time the camera was away"
    assert source.health.stopped_because is None


def test_a_camera_that_never_returns_ends_the_recording_cleanly_after_the_configured_time():
    source = ReconnectingSource(Opener(FakeCamera(5)), give_up_after_s=0.5, backoff_s=0.05)
    started = time.monotonic()
    frames = list(source)
    waited = time.monotonic() - started
    assert len(frames) == 5
    assert 0.5 <= waited < 3
    assert source.health.reconnects == 0 and source.health.gaps[0].ended_at is None
    assert "did not come back within 0.5 s" in source.health.stopped_because


def test_stopping_while_waiting_for_the_camera_ends_at_once():
    source = ReconnectingSource(Opener(FakeCamera(3)), give_up_after_s=60, backoff_s=0.05)
    threading.Timer(0.3, source.stop).start()
    started = time.monotonic()
    assert len(list(source)) == 3
    assert time.monotonic() - started < 2
    assert source.health.stopped_because is None  # stopped by the teacher, not given up


def test_a_camera_that_cannot_be_opened_at_all_is_reported_not_retried():
    opener = Opener(CaptureError("Camera /dev/video3 (usb:046d:0825) is not an approved school camera."))
    with pytest.raises(CaptureError, match="not an approved school camera"):
        ReconnectingSource(opener, give_up_after_s=60)
    assert opener.calls == 1
