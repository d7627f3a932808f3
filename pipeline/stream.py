"""The four stages a recording streams through, each a small object that a `Supervisor` runs
on its own thread:

    read (source → raw) → redact (privacy engine, raw → redacted) → encode (x264 into
    fragmented-MP4 parts) → send (parts → the multipart upload)

A stage knows only its queues, the one `Counters` it adds to, and what it is handed; none calls
another. The recording (`pipeline.recording`) builds them and wires them together. A stage that
must end the recording early (the encoder, when a live camera's upload buffer is full) asks the
supervisor to finish, and the supervisor tells the source to stop: the frames already captured
still flow through every stage and are kept.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from capture.source import Source
from capture.types import AudioChunk, Frame
from pipeline.stages import END, Backpressure, BoundedQueue, Supervisor
from upload.encoder import EncoderSettings, FragmentedMP4Encoder
from upload.fragments import FragmentBuffer

log = logging.getLogger(__name__)


@dataclass
class Counters:
    frames_in: int = 0
    frames_out: int = 0
    dropped_frames: int = 0
    dropped_audio_chunks: int = 0
    faces_detected: int = 0
    faces_redacted: int = 0
    fail_closed_frames: int = 0
    upload_retries: int = 0
    parts: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=20_000), repr=False)
    queue_high_water: dict = field(default_factory=dict)
    part_buffer_peak_bytes: int = 0
    # where the time goes: seconds each stage spent working (not waiting on its queues), and
    # the span from the first frame captured to the last one encoded (sustained rate)
    privacy_busy_s: float = 0.0
    encode_busy_s: float = 0.0
    first_captured_at: float | None = None
    last_encoded_at: float | None = None

    @property
    def sustained_fps(self) -> float | None:
        if self.first_captured_at is None or self.last_encoded_at is None or self.frames_out < 2:
            return None
        return round(self.frames_out / max(self.last_encoded_at - self.first_captured_at, 1e-9), 2)

    def figures(self) -> dict:
        values = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        values["sustained_fps"] = self.sustained_fps
        if self.frames_out:
            values["privacy_ms_per_frame"] = round(self.privacy_busy_s * 1000 / self.frames_out, 1)
            values["encode_ms_per_frame"] = round(self.encode_busy_s * 1000 / self.frames_out, 1)
        if self.latencies_ms:
            ordered = sorted(self.latencies_ms)
            values["latency_p50_ms"] = round(ordered[len(ordered) // 2], 1)
            values["latency_p99_ms"] = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1)
        return values


class ReadStage:
    """Hands the source's frames (and its sound, if kept) to the raw queue, then END. A live
    source's oldest raw frame is dropped when the privacy stage is behind; a file waits."""

    def __init__(self, source: Source, out: BoundedQueue, counters: Counters, keep_audio: bool):
        self.source, self.out, self.counters, self.keep_audio = source, out, counters, keep_audio

    def __call__(self) -> None:
        backpressure = Backpressure.DROP_OLDEST if self.source.info.live else Backpressure.WAIT
        for item in self.source:  # a stopped source ends after what it holds
            if isinstance(item, Frame):
                self.counters.frames_in += 1
            elif not self.keep_audio:
                continue
            self.out.put(item, backpressure)
        self.out.put(END)


class RedactStage:
    """Runs each frame through the privacy engine and hands on the frames it returns, redacted.

    The engine may hold a few frames until a later anchor frame has been searched; sound waits
    with them, each chunk until the frame it came after has gone on, so the two streams stay in
    the order the source gave them.
    """

    def __init__(self, engine, inbox: BoundedQueue, out: BoundedQueue, counters: Counters, index=None):
        self.engine, self.inbox, self.out, self.counters = engine, inbox, out, counters
        self.index = index  # pipeline.track_index.TrackIndex: each released frame's faces, in output order
        self._held_audio: deque[tuple[int, AudioChunk]] = deque()  # (frames that came before it, chunk)
        self._frames_in = self._frames_out = 0

    def __call__(self) -> None:
        c = self.counters
        while (item := self.inbox.get()) is not END:
            if isinstance(item, Frame):
                if c.first_captured_at is None:
                    c.first_captured_at = item.captured_at
                self._frames_in += 1
                began = time.monotonic()
                ready = self.engine.push(item.image, item)
                c.privacy_busy_s += time.monotonic() - began
                self._hand_on(ready)
            elif self._frames_in == self._frames_out:  # no frame held: the sound goes on at once
                self.out.put(item)
            else:
                self._held_audio.append((self._frames_in, item))
        self._hand_on(self.engine.flush())
        for _, chunk in self._held_audio:
            self.out.put(chunk)
        self.out.put(END)

    def _hand_on(self, ready) -> None:
        c = self.counters
        for image, frame, report in ready:
            c.faces_detected += report.faces_detected
            c.faces_redacted += report.faces_redacted
            c.fail_closed_frames += report.fail_closed
            if self.index is not None and self.index.failed is None:
                try:
                    self.index.add(frame.pts, report)
                except Exception as err:  # noqa: BLE001 - the index describes the video; it must never cost it
                    self.index.failed = f"{type(err).__name__}: {err}"
                    log.error("the track index stops at frame %d (%s); the recording goes on without it",
                              self.index.frames, self.index.failed)
            self.out.put(replace(frame, image=image))  # the engine's output is what goes on
            self._frames_out += 1
            while self._held_audio and self._held_audio[0][0] <= self._frames_out:
                self.out.put(self._held_audio.popleft()[1])


class EncodeStage:
    """Encodes redacted frames and sound into fragmented MP4 and hands the parts on, then END.

    A live camera cannot wait: when storage is away long enough that the part queue is full, the
    stage asks the supervisor to finish the recording (`stopped_because` says why) and keeps
    everything captured up to then.
    """

    def __init__(self, inbox: BoundedQueue, parts: BoundedQueue, settings: EncoderSettings, part_size: int,
                 counters: Counters, supervisor: Supervisor, live: bool, why_full: Callable[[], str],
                 on_redacted=None, on_progress=None):
        self.inbox, self.parts, self.settings, self.part_size = inbox, parts, settings, part_size
        self.counters, self.supervisor, self.live, self.why_full = counters, supervisor, live, why_full
        self.on_redacted, self.on_progress = on_redacted, on_progress
        self.stopped_because: str | None = None

    def _hand_part(self, part) -> None:
        if self.live and self.parts.qsize() >= self.parts.maxsize and not self.supervisor.finishing.is_set():
            self.stopped_because = self.why_full()
            log.error(self.stopped_because)
            self.supervisor.finish()
        self.parts.put(part)

    def __call__(self) -> None:
        c = self.counters
        buffer = FragmentBuffer(self._hand_part, self.part_size)
        encoder = FragmentedMP4Encoder(buffer, self.settings)
        try:
            while (item := self.inbox.get()) is not END:
                if isinstance(item, AudioChunk):
                    encoder.encode_audio(item.samples, item.pts, item.time_base, item.sample_rate, item.layout)
                    continue
                if self.on_redacted:
                    self.on_redacted(item)
                began = time.monotonic()
                encoder.encode_video(item.image, item.pts)  # zerolatency: its packet is in the part buffer now
                c.last_encoded_at = time.monotonic()
                c.encode_busy_s += c.last_encoded_at - began
                c.latencies_ms.append((c.last_encoded_at - item.captured_at) * 1000)
                c.frames_out = encoder.frames_encoded
                if self.on_progress:
                    self.on_progress(c)
            encoder.close()  # hands the last part to the queue
        except BaseException:
            encoder.abort()
            raise
        finally:
            c.part_buffer_peak_bytes = buffer.peak_bytes
        self.parts.put(END)


class SendStage:
    """Uploads each part as it comes; the upload itself waits out storage outages."""

    def __init__(self, inbox: BoundedQueue, upload, counters: Counters):
        self.inbox, self.upload, self.counters = inbox, upload, counters

    def __call__(self) -> None:
        while (part := self.inbox.get()) is not END:
            self.upload.put(part)
            self.counters.parts += 1
