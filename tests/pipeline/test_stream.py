"""Each stage of a recording works alone, on its own queues: the privacy stage keeps sound in
order with the frames the engine holds back and hands on the frames the engine returns; the
encoder, when a live camera's upload buffer is full, ends the recording through the supervisor
and loses nothing; the supervisor finishes once."""

import threading
import time
from fractions import Fraction

import numpy as np

from capture.types import AudioChunk, Frame
from fixtures.classroom import Classroom, ClassroomSpec
from pipeline.config import PipelineConfig
from pipeline.engine_factory import build_engine
from pipeline.stages import END, Supervisor
from pipeline.stream import Counters, EncodeStage, RedactStage
from upload.encoder import EncoderSettings
from upload.fragments import MIN_PART_SIZE

TB = Fraction(1, 30)


def drain(queue):
    items = []
    while (item := queue.get()) is not END:
        items.append(item)
    return items


def test_the_privacy_stage_keeps_sound_behind_the_frames_it_came_after_and_hands_on_redacted_frames():
    classroom = Classroom(ClassroomSpec(seed=3, duration_s=1.0))
    engine, _ = build_engine(PipelineConfig(policy="all"))
    sup = Supervisor()
    raw, redacted = sup.queue("raw", 64), sup.queue("redacted", 64)
    originals = {}
    for synthetic in classroom.frames():
        frame = Frame(synthetic.index, TB, synthetic.image.copy(), "test", time.monotonic())
        originals[frame.pts] = synthetic.image
        raw.put(frame)
        raw.put(AudioChunk(synthetic.index, TB, np.zeros((2, 1600), np.float32), 48000, "stereo"))
    raw.put(END)
    counters = Counters()
    sup.spawn("privacy", RedactStage(engine, raw, redacted, counters))
    out = []
    sup.spawn("collect", lambda: out.extend(drain(redacted)))
    sup.join()
    engine.close()

    frames = [item for item in out if isinstance(item, Frame)]
    assert [f.pts for f in frames] == sorted(originals)
    # every chunk comes out after the frame it followed in, never before it
    seen = set()
    for item in out:
        if isinstance(item, Frame):
            seen.add(item.pts)
        else:
            assert item.pts in seen, f"sound of frame {item.pts} came out before its frame"
    assert counters.faces_detected > 0 and counters.faces_redacted > 0
    changed = sum(not np.array_equal(f.image, originals[f.pts]) for f in frames)
    assert changed == len(frames), "under `all` every frame with faces goes on redacted"


def test_a_track_index_that_fails_stops_but_the_frames_go_on():
    # given a privacy stage whose track index breaks at its third frame (a fault injected)
    from pipeline.track_index import TrackIndex

    class Breaks(TrackIndex):
        def add(self, pts, report):
            if self.frames == 2:
                raise OverflowError("a box past what the index can hold")
            super().add(pts, report)

    classroom = Classroom(ClassroomSpec(seed=3, duration_s=0.5))
    engine, _ = build_engine(PipelineConfig(policy="all"))
    sup = Supervisor()
    raw, redacted = sup.queue("raw", 64), sup.queue("redacted", 64)
    for synthetic in classroom.frames():
        raw.put(Frame(synthetic.index, TB, synthetic.image.copy(), "test", time.monotonic()))
    raw.put(END)
    index = Breaks("r", 1280, 720, TB)
    sup.spawn("privacy", RedactStage(engine, raw, redacted, Counters(), index=index))
    out = []
    sup.spawn("collect", lambda: out.extend(drain(redacted)))
    sup.join()
    engine.close()
    # then every frame still goes on to the encoder, and the index says why it stopped
    assert len(out) == len(list(classroom.frames())) > 3
    assert index.frames == 2 and "OverflowError" in index.failed


def encode_noise(live: bool, frames: int = 60):
    """Runs the encode stage alone on noise (large parts quickly) into a part queue of one,
    read by nobody until the stage has either asked to finish or handed on everything."""
    sup = Supervisor()
    redacted, parts = sup.queue("redacted", frames + 1), sup.queue("parts", 1)
    rng = np.random.default_rng(0)
    for i in range(frames):
        redacted.put(Frame(i, TB, rng.integers(0, 256, (360, 640, 3), np.uint8), "test", time.monotonic()))
    redacted.put(END)
    stops = []
    sup.on_finish(lambda: stops.append(time.monotonic()))
    counters = Counters()
    settings = EncoderSettings(640, 360, TB, crf=0, preset="ultrafast", keyframe_seconds=0.1, threads=1)
    stage = EncodeStage(redacted, parts, settings, MIN_PART_SIZE, counters, sup, live=live,
                        why_full=lambda: "The upload buffer filled.")
    sup.spawn("encode", stage)
    deadline = time.monotonic() + 60
    while live and not sup.finishing.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not live:
        time.sleep(1.0)  # a file's encoder simply waits for room
    assert not sup.finishing.is_set() or live
    received = []
    sup.spawn("upload", lambda: received.extend(drain(parts)))
    sup.join()
    return stage, counters, stops, received


def test_a_live_encoder_with_a_full_upload_buffer_finishes_the_recording_through_the_supervisor_and_keeps_all():
    stage, counters, stops, received = encode_noise(live=True)
    assert len(stops) == 1, "the source was told to stop, once"
    assert stage.stopped_because == "The upload buffer filled."
    assert counters.frames_out == 60 and len(received) >= 2, "what was captured before the stop is all encoded and sent"


def test_a_file_encoder_waits_for_room_and_never_ends_the_recording():
    stage, counters, stops, received = encode_noise(live=False)
    assert stops == [] and stage.stopped_because is None
    assert counters.frames_out == 60 and len(received) >= 2


def test_the_supervisor_finishes_once_whoever_asks():
    sup = Supervisor()
    calls = []
    sup.on_finish(lambda: calls.append(1))
    threads = [threading.Thread(target=sup.finish) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and sup.finishing.is_set() and not sup.stop.is_set()
