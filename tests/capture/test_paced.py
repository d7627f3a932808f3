"""A clip played as a camera: real-time pacing, marked live, drop-oldest under backpressure."""

import threading
import time
from fractions import Fraction

import numpy as np

from capture.iterable import IterableSource
from capture.paced import PacedSource
from capture.types import Frame, SourceInfo
from pipeline.stages import Backpressure, BoundedQueue


def clip(n, fps=30):
    info = SourceInfo("test:clip", 64, 48, Fraction(1, fps), Fraction(fps), n, None, None, live=False)
    frames = (Frame(i, Fraction(1, fps), np.zeros((48, 64, 3), np.uint8), "test:clip", 0.0) for i in range(n))
    return IterableSource(info, frames)


def test_frames_arrive_no_faster_than_their_timestamps():
    source = PacedSource(clip(15))
    assert source.info.live
    started = time.monotonic()
    arrivals = [f.captured_at - started for f in source]
    assert len(arrivals) == 15
    assert arrivals[-1] >= 14 / 30 - 0.01  # half a second of video takes half a second
    assert all(b >= a for a, b in zip(arrivals, arrivals[1:]))


def test_a_full_queue_drops_the_oldest_frame_and_counts_it():
    queue = BoundedQueue("raw", 2, threading.Event())
    for i in range(5):
        queue.put(i, Backpressure.DROP_OLDEST)
    assert queue.dropped == 3
    assert [queue.get(), queue.get()] == [3, 4]  # the newest survive; nothing unredacted is involved


def test_a_source_slower_than_real_time_skips_late_frames_so_timestamps_follow_the_clock():
    def slow_frames():
        for i in range(30):
            time.sleep(0.1)  # a generator that makes 10 frames a second of a 30 fps clip
            yield Frame(i, Fraction(1, 30), np.zeros((48, 64, 3), np.uint8), "test:slow", 0.0)

    info = SourceInfo("test:slow", 64, 48, Fraction(1, 30), Fraction(30), 30, None, None, live=False)
    source = PacedSource(IterableSource(info, slow_frames()))
    started = time.monotonic()
    frames = list(source)
    assert source.health.skipped > 10 and len(frames) + source.health.skipped == 30
    for f in frames:  # each frame's time in the video is within a frame or two of when it was captured
        assert abs(float(f.pts * f.time_base) - (f.captured_at - started)) < 0.2
