"""The composition root of one recording: source → privacy → encoder → part buffer → S3.

Each stage is a thread owned by a Supervisor and joined by bounded queues; this module is the
only place that knows about all of them.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from blur.engine import PrivacyEngine
from capture.types import AudioChunk, Frame, SourceInfo
from pipeline.config import Placement, PipelineConfig
from pipeline.stages import END, Backpressure, Supervisor
from upload.encoder import EncoderSettings, FragmentedMP4Encoder
from upload.fragments import FragmentBuffer
from upload.manifest import Manifest, VideoRecord, put_manifest
from upload.multipart import MultipartUpload
from upload.retry import Retrier
from upload.storage import S3Location, StorageSettings

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


@dataclass(frozen=True)
class RecordingResult:
    recording_id: str
    bucket: str
    video_key: str
    manifest_key: str
    manifest: Manifest


def new_recording_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


class Recording:
    """Runs one source through the privacy engine into one multipart upload and its manifest."""

    def __init__(
        self,
        source,  # iterable of Frame | AudioChunk with .info: SourceInfo and .close()
        engine: PrivacyEngine,
        client,
        storage: StorageSettings,
        location: S3Location,
        placement: Placement,
        config: PipelineConfig,
        model_hashes: dict[str, str],
        gallery_version: str | None = None,
        on_progress=None,
        into: tuple[str, str] | None = None,
        on_redacted=None,
    ):
        """`into`: (recording id, video key) to write a given object instead of a new recording
        (re-blurring does, and writes the manifest itself); no manifest is written then."""
        self.source = source
        self.info: SourceInfo = source.info
        self.engine = engine
        self.client = client
        self.storage = storage
        self.location = location
        self.placement = placement
        self.config = config
        self.model_hashes = model_hashes
        self.gallery_version = gallery_version
        self.on_progress = on_progress
        self.on_redacted = on_redacted  # sees each frame after redaction (the station page's preview)
        self.counters = Counters()
        self._finish = threading.Event()
        self.started = datetime.now(timezone.utc)
        self.write_manifests = into is None
        if into is None:
            self.recording_id = new_recording_id(self.started)
            folder = location.key(placement.site, placement.room, self.started.strftime("%Y-%m-%d"), self.recording_id)
            self.video_key = f"{folder}/video.mp4"
        else:
            self.recording_id, self.video_key = into
            folder = self.video_key.rsplit("/", 1)[0]
        self.manifest_key = f"{folder}/manifest.json"
        retention = (self.started + timedelta(days=config.retention_days)).strftime("%Y-%m-%d")
        # keep=false: the bucket's lifecycle rule expires the recording; `storage keep` flips it
        self.tags = {"retention-until": retention, "keep": "false"}
        # Storage outages are waited out (parts queue in memory meanwhile); see upload/retry.py.
        self.retrier = Retrier(give_up_after_s=config.outage_give_up_s)
        self.stopped_because: str | None = None
        self._queues: dict = {}  # name → BoundedQueue while the recording runs (for metrics)

    def dropped_frames(self) -> int:
        raw = self._queues.get("raw")
        if raw is None:
            return self.counters.dropped_frames
        return raw.dropped_by_kind["Frame"] + getattr(self.source, "skipped", 0)

    def upload_buffer_bytes(self) -> int:
        parts = self._queues.get("parts")
        return parts.qsize() * self.config.part_size if parts is not None else 0

    def finish(self) -> None:
        """End the recording cleanly (stop button, SIGINT, SIGTERM, duration): everything already
        captured is blurred, encoded and uploaded, and the manifest is completed."""
        self._finish.set()
        stop = getattr(self.source, "stop", None)
        if stop is not None:  # a camera being waited for after a disconnect stops waiting
            stop()

    # -- the run
    def run(self) -> RecordingResult:
        from pipeline.metrics import LOG_CONTEXT

        LOG_CONTEXT.update(station=self.placement.station, recording_id=self.recording_id)
        info = self.source.info
        log.debug("recording %s: %s, %dx%d, into s3://%s/%s, policy %s, gallery %s", self.recording_id, info.source_id,
                  info.width, info.height, self.location.bucket, self.video_key, self.config.policy, self.gallery_version)
        upload = MultipartUpload(self.client, self.storage, self.location.bucket, self.video_key, self.tags, self.retrier)
        try:
            if self.write_manifests:
                try:
                    self._write_manifest("recording")
                except BaseException:
                    self.write_manifests = False  # storage refused it: there is no manifest to mark failed
                    raise
            with upload:
                self._stream(upload)
                upload.complete()
        except BaseException as err:
            self._write_manifest_quietly("failed", error=sentence(err), upload=upload)
            raise
        finally:
            self.source.close()
            self.engine.close()
        manifest = self._write_manifest("complete", upload=upload) if self.write_manifests else self.manifest("complete", upload=upload)
        log.debug("recording %s finished: %d frames in, %d out, %d dropped, %d fail-closed", self.recording_id,
                  manifest.frames_in, manifest.frames_out, manifest.dropped_frames, manifest.fail_closed_frames)
        return RecordingResult(self.recording_id, self.location.bucket, self.video_key, self.manifest_key, manifest)

    def _stream(self, upload: MultipartUpload) -> None:
        cfg, c = self.config, self.counters
        sup = Supervisor()
        self.retrier.stop = sup.stop  # a failing stage or Ctrl-C ends any wait for storage
        raw = sup.queue("raw", cfg.raw_queue)
        redacted = sup.queue("redacted", cfg.redacted_queue)
        parts = sup.queue("parts", cfg.parts_in_flight)
        self._queues = {"raw": raw, "redacted": redacted, "parts": parts}
        backpressure = Backpressure.DROP_OLDEST if self.info.live else Backpressure.WAIT
        keep_audio = cfg.audio == "keep" and self.info.audio_rate is not None

        def read_source() -> None:
            stops_itself = hasattr(self.source, "stop")  # told by finish(); ends after handing out what it holds
            for item in self.source:
                if self._finish.is_set() and not stops_itself:
                    break  # the teacher pressed stop: what was captured is encoded and kept
                if isinstance(item, Frame):
                    c.frames_in += 1
                elif not keep_audio:
                    continue
                raw.put(item, backpressure)
            raw.put(END)

        def redact() -> None:
            # The engine may hold a few frames until a later anchor frame has been searched;
            # audio that arrives meanwhile waits with them so the streams stay in order.
            held_audio: list[AudioChunk] = []

            def hand_on(ready) -> None:
                for _image, frame, report in ready:
                    c.faces_detected += report.faces_detected
                    c.faces_redacted += report.faces_redacted
                    c.fail_closed_frames += report.fail_closed
                    redacted.put(frame)
                if ready:
                    for chunk in held_audio:
                        redacted.put(chunk)
                    held_audio.clear()

            while (item := raw.get()) is not END:
                if isinstance(item, Frame):
                    if c.first_captured_at is None:
                        c.first_captured_at = item.captured_at
                    began = time.monotonic()
                    ready = self.engine.push(item.image, item)
                    c.privacy_busy_s += time.monotonic() - began
                    hand_on(ready)
                else:
                    held_audio.append(item)
            hand_on(self.engine.flush())
            for chunk in held_audio:
                redacted.put(chunk)
            redacted.put(END)

        def hand_part(part) -> None:
            if self.info.live and parts.qsize() >= parts.maxsize and not self._finish.is_set():
                # A camera cannot wait: with the buffer full, stop capturing and keep what is held.
                self.stopped_because = (
                    f"Storage was unreachable for {self.retrier.outages.unreachable_for:.0f} s and the station's upload "
                    f"buffer ({parts.maxsize * cfg.part_size // 2**20} MiB) filled, so the recording was stopped; "
                    "everything captured before that was kept."
                )
                log.error(self.stopped_because)
                self.finish()
            parts.put(part)

        def encode() -> None:
            buffer = FragmentBuffer(hand_part, cfg.part_size)
            encoder = FragmentedMP4Encoder(buffer, self._encoder_settings(keep_audio))
            try:
                while (item := redacted.get()) is not END:
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
            parts.put(END)

        def send() -> None:
            while (part := parts.get()) is not END:
                upload.put(part)
                c.parts += 1

        sup.spawn("source", read_source)
        sup.spawn("privacy", redact)
        sup.spawn("encode", encode)
        sup.spawn("upload", send)
        try:
            sup.join()
        finally:
            # frames a live source could not hand over in time count as captured and dropped
            c.frames_in += getattr(self.source, "skipped", 0)
            c.dropped_frames = self.dropped_frames()
            c.dropped_audio_chunks = raw.dropped_by_kind["AudioChunk"]
            c.queue_high_water = {q.name: q.high_water for q in (raw, redacted, parts)}
            c.upload_retries = self.retrier.outages.retries

    def _encoder_settings(self, with_audio: bool) -> EncoderSettings:
        return EncoderSettings(
            width=self.info.width,
            height=self.info.height,
            time_base=self.info.time_base,
            frame_rate=self.info.frame_rate or 30,
            crf=self.config.crf,
            preset=self.config.preset,
            keyframe_seconds=self.config.keyframe_seconds,
            # One thread, live too: on real40 (1280×720) 7.8 against 8.4 ms of CPU a frame with
            # slices across threads, and the detectors use the other core. Slices would only cut
            # the ~8 ms a frame spends in the encoder, beside a latency of hundreds of ms.
            threads=1,
            audio_rate=self.info.audio_rate if with_audio else None,
            audio_layout=self.info.audio_layout or "stereo",
        )

    # -- the manifest
    def manifest(self, status: str, error: str | None = None, upload: MultipartUpload | None = None) -> Manifest:
        c = self.counters
        ended = datetime.now(timezone.utc) if status != "recording" else None
        return Manifest(
            recording_id=self.recording_id,
            site=self.placement.site,
            room=self.placement.room,
            station=self.placement.station,
            camera_id=self.info.source_id,
            staff_id=self.placement.staff_id,
            started_at=utc_stamp(self.started),
            ended_at=utc_stamp(ended) if ended else None,
            notice_confirmed_at=self.placement.notice_confirmed_at,
            policy=self.config.policy,
            audio=self.config.audio if self.info.audio_rate is not None else "none",
            gallery_version=self.gallery_version,
            models=self.model_hashes,
            width=self.info.width,
            height=self.info.height,
            frames_in=c.frames_in,
            frames_out=c.frames_out,
            dropped_frames=c.dropped_frames,
            dropped_audio_chunks=c.dropped_audio_chunks,
            faces_detected=c.faces_detected,
            faces_redacted=c.faces_redacted,
            fail_closed_frames=c.fail_closed_frames,
            identity_backlog_events=self.engine.policy.backlog_events,
            identity_timeouts=self.engine.policy.timeouts,
            reconnects=getattr(self.source, "reconnects", 0),
            gaps=tuple(asdict(gap) for gap in getattr(self.source, "gaps", [])),
            stopped_because=self.stopped_because or getattr(self.source, "stopped_because", None),
            storage_outages=tuple(self.retrier.outages.log),
            upload_buffer_peak_parts=c.queue_high_water.get("parts", 0),
            audio_error=getattr(self.source, "audio_error", None),
            microphone_dropped_chunks=getattr(self.source, "dropped_audio_chunks", 0),
            upload_retries=c.upload_retries,
            status=status,
            error=error,
            video=VideoRecord(
                key=self.video_key,
                parts=c.parts,
                bytes=upload.bytes_sent if upload else 0,
                sha256=upload.sha256 if upload and status == "complete" else None,
            ),
            retention_until=self.tags["retention-until"],
        )

    def _write_manifest(self, status: str, error: str | None = None, upload: MultipartUpload | None = None) -> Manifest:
        manifest = self.manifest(status, error, upload)
        put_manifest(self.client, self.storage, self.location.bucket, self.manifest_key, manifest, self.tags, self.retrier)
        return manifest

    def _write_manifest_quietly(self, status: str, **kwargs) -> None:
        if not self.write_manifests:
            return
        try:
            self._write_manifest(status, **kwargs)
        except Exception as err:  # the original failure is the one to report
            log.error("could not record the failure in the manifest: %s", err)


def utc_stamp(moment: datetime | None = None) -> str:
    """A moment (default now) as the manifests write it: UTC, microseconds, a Z."""
    return (moment or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sentence(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if text.endswith(".") else text + "."
