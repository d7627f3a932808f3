"""The composition root of one recording: source → privacy → encoder → part buffer → S3.

Each stage (`pipeline.stream`) is a thread owned by a Supervisor and joined by bounded queues;
this module is the only place that knows about all of them, and writes the manifest and the
track index (`pipeline/track_index.py`) beside the video.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from blur.engine import PrivacyEngine
from capture.source import Source
from capture.types import SourceInfo
from classcap.clock import utc_stamp
from pipeline.config import Placement, PipelineConfig
from pipeline.stages import Supervisor
from pipeline.stream import Counters, EncodeStage, ReadStage, RedactStage, SendStage
from pipeline.track_index import SCHEMA as INDEX_SCHEMA
from pipeline.track_index import TrackIndex, key_beside
from upload.admin import retention_tags
from upload.encoder import EncoderSettings
from upload.errors import UploadError
from upload.manifest import IndexRecord, Manifest, VideoRecord, put_document, put_manifest
from upload.multipart import MultipartUpload
from upload.retry import Retrier
from upload.storage import S3Location, StorageSettings

log = logging.getLogger(__name__)


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
        source: Source,
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
        self.index_key = key_beside(self.video_key)
        self.index = TrackIndex(self.recording_id, self.info.width, self.info.height, self.info.time_base,
                                max_bytes=config.track_index_bytes)
        self.index_record: IndexRecord | None = None
        self.tags = retention_tags(self.started, config.retention_days)
        # Storage outages are waited out (parts queue in memory meanwhile); see upload/retry.py.
        self.retrier = Retrier(give_up_after_s=config.outage_give_up_s)
        self.stopped_because: str | None = None
        self._queues: dict = {}  # name → BoundedQueue while the recording runs (for metrics)
        self._supervisor: Supervisor | None = None

    def dropped_frames(self) -> int:
        raw = self._queues.get("raw")
        if raw is None:
            return self.counters.dropped_frames
        return raw.dropped_by_kind["Frame"] + self.source.health.skipped

    def upload_buffer_bytes(self) -> int:
        parts = self._queues.get("parts")
        return parts.qsize() * self.config.part_size if parts is not None else 0

    def finish(self) -> None:
        """End the recording cleanly (stop button, SIGINT, SIGTERM, duration): everything already
        captured is blurred, encoded and uploaded, and the manifest is completed."""
        self._finish.set()
        if self._supervisor is not None:
            self._supervisor.finish()  # it stops the source, which ends after what it holds
        else:
            self.source.stop()

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
            self._write_index()
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
        keep_audio = cfg.audio == "keep" and self.info.audio_rate is not None

        def why_full() -> str:
            return (f"Storage was unreachable for {self.retrier.outages.unreachable_for:.0f} s and the station's upload "
                    f"buffer ({parts.maxsize * cfg.part_size // 2**20} MiB) filled, so the recording was stopped; "
                    "everything captured before that was kept.")

        encode = EncodeStage(redacted, parts, self._encoder_settings(keep_audio), cfg.part_size, c, sup,
                             live=self.info.live, why_full=why_full, on_redacted=self.on_redacted,
                             on_progress=self.on_progress)
        sup.on_finish(self.source.stop)
        self._supervisor = sup
        if self._finish.is_set():  # stopped before it began
            sup.finish()
        sup.spawn("source", ReadStage(self.source, raw, c, keep_audio))
        sup.spawn("privacy", RedactStage(self.engine, raw, redacted, c, index=self.index))
        sup.spawn("encode", encode)
        sup.spawn("upload", SendStage(parts, upload, c))
        try:
            sup.join()
        finally:
            self.stopped_because = self.stopped_because or encode.stopped_because
            # frames a live source could not hand over in time count as captured and dropped
            c.frames_in += self.source.health.skipped
            c.dropped_frames = self.dropped_frames()
            c.dropped_audio_chunks = raw.dropped_by_kind["AudioChunk"]
            c.queue_high_water = {q.name: q.high_water for q in (raw, redacted, parts)}
            c.upload_retries = self.retrier.outages.retries

    def _write_index(self) -> None:
        """The track index beside the finished video. The video is what matters: if storage
        refuses the index, the recording stays complete without one (a re-blur then does a full
        pass and writes it), and the technician hears why."""
        if self.index.failed is not None:
            log.error("the recording is complete without its track index: %s", self.index.failed)
            return
        body = self.index.to_bytes()
        try:
            put_document(self.client, self.storage, self.location.bucket, self.index_key, body, "application/gzip",
                         self.tags, "write the track index", self.retrier)
        except UploadError as err:
            log.error("the recording is complete but its track index could not be written: %s", err)
            return
        self.index_record = IndexRecord(self.index_key, len(body), hashlib.sha256(body).hexdigest(), INDEX_SCHEMA)

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
        c, health = self.counters, self.source.health
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
            source_state=health.state.value,
            reconnects=health.reconnects,
            gaps=tuple(asdict(gap) for gap in health.gaps),
            stopped_because=self.stopped_because or health.stopped_because,
            storage_outages=tuple(self.retrier.outages.log),
            upload_buffer_peak_parts=c.queue_high_water.get("parts", 0),
            audio_error=health.audio_error,
            microphone_dropped_chunks=health.dropped_audio_chunks,
            upload_retries=c.upload_retries,
            status=status,
            error=error,
            video=VideoRecord(
                key=self.video_key,
                parts=c.parts,
                bytes=upload.bytes_sent if upload else 0,
                sha256=upload.sha256 if upload and status == "complete" else None,
            ),
            tracks_index=self.index_record,
            encoding=self._encoder_settings(False).record(),
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


def sentence(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if text.endswith(".") else text + "."
