"""`classcap record`: a live recording at a classroom station.

It refuses to start without a site and room, or before the teacher has confirmed that the class
was told it is being recorded; it stops on --duration, Ctrl-C or SIGTERM and always finishes the
upload and the manifest with what was captured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from datetime import datetime, timezone

from capture.alsa import AlsaMicrophone, WithMicrophone
from capture.paced import PacedSource
from capture.reconnect import ReconnectingSource
from capture.registry import ApprovedCameras
from pipeline.config import ConfigError, Placement, PipelineConfig
from pipeline.station import NOTICE, StationConfig, load_station
from upload.storage import S3Location

DEFAULT_SOURCE = "generated:classroom"
SYSFS_ROOT = os.environ.get("CLASSCAP_SYSFS", "/sys")  # another root only for tests on recorded sysfs trees


def open_source(uri: str, station: StationConfig | None = None):
    """A live source from its address: an approved USB or IP camera (reopened when it drops
    out), or a test source played in real time as a camera would deliver it."""
    station = station or StationConfig()
    approved = ApprovedCameras(station.approved_cameras)
    if uri == "testpattern":
        from capture.testpattern import TestPattern

        return PacedSource(TestPattern())
    if uri.startswith("generated:classroom"):
        from fixtures.classroom import Classroom, ClassroomSpec
        from pipeline.demo_source import classroom_source

        seed = int(uri.partition("seed=")[2] or 1)
        return PacedSource(classroom_source(Classroom(ClassroomSpec(seed=seed, duration_s=3600))))
    if uri.startswith("file:"):
        from capture.file import FileSource

        return PacedSource(FileSource(uri[len("file:") :]))
    if uri.startswith("usb:") or uri.startswith("/dev/video"):
        from capture.usb import UsbSource, find_usb_camera

        camera = find_usb_camera(uri, sysfs=SYSFS_ROOT)
        approved.check_usb(camera.device, camera.vendor, camera.product, camera.serial)
        # reopened by id, not path: a camera plugged back in may come back as another /dev/video*
        return ReconnectingSource(
            lambda: UsbSource(find_usb_camera(camera.camera_id, sysfs=SYSFS_ROOT)), give_up_after_s=station.camera_give_up_s
        )
    if uri.split("://")[0] in ("rtsp", "http", "https"):
        from capture.ipcam import IpCameraSource

        def open_ip_camera():
            camera = IpCameraSource(uri)
            try:
                approved.check_host(camera.host)  # after connecting, so the ARP table knows its MAC
            except BaseException:
                camera.close()
                raise
            return camera

        return ReconnectingSource(open_ip_camera, give_up_after_s=station.camera_give_up_s)
    raise ConfigError(
        f"Source {uri!r} is not one this station can open; use a camera (usb:VID:PID[:SERIAL], /dev/videoN, rtsp://, "
        "http://) or a test source (testpattern, generated:classroom, file:PATH)."
    )


def _buffer_parts(buffer_mb: int | None) -> int:
    """The outage buffer in parts (5 MiB each); default 32, about 160 MiB."""
    from upload.fragments import MIN_PART_SIZE

    if buffer_mb is None:
        return PipelineConfig.parts_in_flight
    return max(1, buffer_mb * 2**20 // MIN_PART_SIZE)


def confirm_notice(confirmed: bool) -> str:
    """The time the teacher confirmed the notice; refuses to go on without it."""
    if not confirmed:
        if not sys.stdin.isatty():
            raise ConfigError(
                f'Recording needs the notice confirmed: tell the class "{NOTICE}", then start again with --notice-confirmed.'
            )
        answer = input(f'Tell the class: "{NOTICE}". Have you told them? [y/N] ')
        if answer.strip().lower() not in ("y", "yes"):
            raise ConfigError("Recording was not started: the class has not been told it is being recorded.")
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stop_cleanly(duration: float | None):
    """While a recording runs: duration, Ctrl-C and SIGTERM all *finish* it (upload completed,
    manifest written) instead of aborting it."""

    @contextlib.contextmanager
    def control(recording):
        def finish(signum, frame):
            print("\nstopping: finishing the upload of what was recorded...", file=sys.stderr, flush=True)
            recording.finish()

        previous = {s: signal.signal(s, finish) for s in (signal.SIGINT, signal.SIGTERM)}
        timer = threading.Timer(duration, recording.finish) if duration else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer:
                timer.cancel()
            for s, handler in previous.items():
                signal.signal(s, handler)

    return control


def record(args) -> dict:
    from pipeline.commands import run_recording

    station = load_station(args.config)
    site, room = args.site or station.site, args.room or station.room
    if not site or not room:
        raise ConfigError("This station has no site and room; set [station] site and room in station.toml before recording.")
    placement_id = args.station or station.station_id or os.uname().nodename
    bucket = args.bucket or os.environ.get("CLASSCAP_BUCKET") or station.bucket
    if not bucket:
        raise ConfigError("No bucket given; set [storage] bucket in station.toml, CLASSCAP_BUCKET, or --bucket.")
    config = PipelineConfig(
        policy=args.policy or station.policy or "all",
        audio=args.audio or station.audio or "keep",
        crf=args.crf if args.crf is not None else (station.crf if station.crf is not None else 23),
        parts_in_flight=_buffer_parts(args.buffer_mb or station.buffer_mb),
        raw_queue=3,  # live: a short queue is a short delay; the oldest frame is dropped instead
        redacted_queue=3,
    )
    storage = station.storage_settings()
    notice_at = confirm_notice(args.notice_confirmed)
    placement = Placement(site=site, room=room, station=placement_id, notice_confirmed_at=notice_at)
    source = open_source(args.source or station.source or DEFAULT_SOURCE, station)
    audio_device = args.audio_device or station.audio_device
    if config.audio == "keep" and (audio_device or isinstance(source, ReconnectingSource)):
        # a camera's sound comes from the station's microphone; a test source keeps its own
        # unless a microphone is named
        try:
            source = WithMicrophone(source, AlsaMicrophone(audio_device or "default"))
        except BaseException:
            source.close()
            raise
    location = S3Location(bucket, "recordings")
    port = args.metrics_port if args.metrics_port is not None else station.metrics_port
    return run_recording(
        source, location, placement, config, storage, live_control=stop_cleanly(args.duration),
        metrics_port=None if port == -1 else port,
    )
