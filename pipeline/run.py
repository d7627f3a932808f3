"""One recording from a source into storage, as every command that records makes it.

`run_recording` checks the bucket, loads the gallery, builds the engine, streams the source
through `Recording` and returns the summary that commands print as their JSON line. It never
prints: what the person running it should hear goes to `say` (a warning about an empty gallery,
the metrics address), and progress to the callback `progress` builds.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import time
from collections.abc import Callable

from blur.policy import parse_policy
from pipeline.config import Placement, PipelineConfig
from pipeline.engine_factory import build_engine, load_gallery
from pipeline.recording import Recording, RecordingResult
from upload.storage import S3Location, StorageSettings, check_bucket, make_client

log = logging.getLogger(__name__)


def run_recording(
    source, location: S3Location, placement: Placement, config: PipelineConfig, storage: StorageSettings,
    live_control=None,
    metrics_port: int | None = None,
    on_redacted=None,
    progress: Callable[[int | None], Callable] | None = None,  # total frames (None: live) → on_progress(counters)
    say: Callable[[str], None] = log.warning,
) -> dict:
    """Check storage, then stream the source into it; returns the command's JSON summary."""
    client = make_client(storage)
    try:
        check_bucket(client, storage, location.bucket)
        gallery = load_gallery(client, storage, location.bucket)
        if parse_policy(config.policy)[0] in ("exclude", "allow") and not gallery.entries:
            say(f"classcap: warning: the gallery of bucket {location.bucket} is empty.")
        engine, hashes = build_engine(config, gallery, wait_for_identity=not source.info.live)
    except BaseException:
        source.close()
        raise
    recording = Recording(
        source, engine, client, storage, location, placement, config, hashes,
        gallery_version=gallery.version, on_progress=progress(source.info.frames) if progress else None,
        on_redacted=on_redacted,
    )
    started, cpu_before = time.monotonic(), cpu_seconds()
    if live_control is not None:  # a live recording: stop means finish and keep, not abort
        from pipeline.metrics import MetricsServer

        metrics = None
        if metrics_port is not None:
            try:
                metrics = MetricsServer(recording, metrics_port)
            except OSError as err:  # the lesson matters more than its metrics
                say(f"classcap: warning: no metrics: port {metrics_port} on 127.0.0.1 is not free ({err.strerror}).")
        if metrics:
            say(f"metrics on http://127.0.0.1:{metrics.port}/metrics")
        try:
            with live_control(recording):
                result: RecordingResult = recording.run()
        finally:
            if metrics:
                metrics.close()
    else:
        with sigterm_as_interrupt():
            result = recording.run()
    return summary(recording, result, time.monotonic() - started, cpu_seconds() - cpu_before)


def summary(recording: Recording, result: RecordingResult, seconds: float, cpu: float) -> dict:
    """The JSON line of a finished recording."""
    m = result.manifest
    figures = recording.counters.figures()
    return {
        "recording_id": result.recording_id,
        "bucket": result.bucket,
        "video_key": result.video_key,
        "manifest_key": result.manifest_key,
        "frames_in": m.frames_in,
        "frames_out": m.frames_out,
        "dropped_frames": m.dropped_frames,
        "faces_detected": m.faces_detected,
        "faces_redacted": m.faces_redacted,
        "fail_closed_frames": m.fail_closed_frames,
        "video_bytes": m.video.bytes,
        "seconds": round(seconds, 2),
        "fps": round(m.frames_out / max(seconds, 1e-9), 2),
        "cpu_seconds": round(cpu, 2),  # over the same span as seconds, all threads and the identity worker
        "peak_rss_mb": peak_rss_mb(),
        "queue_high_water": recording.counters.queue_high_water,
        "latency_p50_ms": figures.get("latency_p50_ms"),
        "latency_p99_ms": figures.get("latency_p99_ms"),
        "sustained_fps": figures.get("sustained_fps"),
        "privacy_ms_per_frame": figures.get("privacy_ms_per_frame"),
        "encode_ms_per_frame": figures.get("encode_ms_per_frame"),
        "stopped_because": m.stopped_because,
        "reconnects": m.reconnects,
    }


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    """CPU used so far by this process and the children it has reaped (the identity worker,
    once a recording closes it; not a storage server still running)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class sigterm_as_interrupt:
    """SIGTERM (systemd, a technician's kill) ends a run the way Ctrl-C does: cleanly."""

    def __enter__(self):
        def raise_interrupt(signum, frame):
            raise KeyboardInterrupt

        try:
            self._previous = signal.signal(signal.SIGTERM, raise_interrupt)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
