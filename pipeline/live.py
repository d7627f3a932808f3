"""A live recording, built one way whoever starts it: `classcap record` or the station page.

The station's settings, overridden by what the person starting the recording asked for, make a
`LivePlan` (checked before anyone is asked to confirm the notice); `run_live` opens the camera,
adds the station's microphone where a camera's sound is kept, and records with the outage buffer
and the metrics server the station asks for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from capture.alsa import AlsaMicrophone, WithMicrophone
from capture.paced import PacedSource
from capture.reconnect import ReconnectingSource
from capture.registry import ApprovedCameras
from pipeline.config import ConfigError, Placement, PipelineConfig
from pipeline import settings
from pipeline.run import run_recording
from pipeline.station import StationConfig
from upload.storage import S3Location, StorageSettings

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class LiveRequest:
    """What the person starting a recording asked for; None takes the station's setting."""

    policy: str | None = None
    audio: str | None = None
    crf: int | None = None
    buffer_mb: int | None = None
    source: str | None = None
    audio_device: str | None = None
    metrics_port: int | None = None  # -1: no metrics
    site: str | None = None
    room: str | None = None
    station_id: str | None = None
    bucket: str | None = None
    staff_id: str | None = None  # who is teaching (the recording's owner in the library)


@dataclass(frozen=True)
class LivePlan:
    """Everything a live recording needs but the camera and the notice's confirmation."""

    station: StationConfig
    config: PipelineConfig
    placement: Placement  # notice_confirmed_at is set by run_live
    storage: StorageSettings
    location: S3Location
    source: str
    audio_device: str | None
    metrics_port: int | None  # None: no metrics server


def plan_live(station: StationConfig, request: LiveRequest = LiveRequest()) -> LivePlan:
    """The recording the station and the request describe; one sentence (ConfigError) if it cannot be made."""
    site, room = request.site or station.site, request.room or station.room
    if not site or not room:
        raise ConfigError("This station has no site and room; set [station] site and room in station.toml before recording.")
    bucket = settings.bucket(station, request.bucket)
    crf = request.crf if request.crf is not None else (station.crf if station.crf is not None else 23)
    config = PipelineConfig(
        policy=request.policy or station.policy or "all",
        audio=request.audio or station.audio or "keep",
        crf=crf,
        parts_in_flight=_buffer_parts(request.buffer_mb or station.buffer_mb),
        raw_queue=3,  # live: a short queue is a short delay; the oldest frame is dropped instead
        redacted_queue=3,
    )
    port = request.metrics_port if request.metrics_port is not None else station.metrics_port
    return LivePlan(
        station=station,
        config=config,
        placement=Placement(site=site, room=room, station=request.station_id or station.station_id or os.uname().nodename,
                            staff_id=request.staff_id),
        storage=settings.storage(station),
        location=S3Location(bucket, "recordings"),
        source=request.source or station.source or DEFAULT_SOURCE,
        audio_device=request.audio_device or station.audio_device,
        metrics_port=None if port == -1 else port,
    )


def open_live_source(plan: LivePlan):
    """The plan's camera, with the station's microphone when its sound is kept: a camera's sound
    comes from the microphone; a test source keeps its own unless a microphone is named."""
    source = open_source(plan.source, plan.station)
    if plan.config.audio == "keep" and (plan.audio_device or isinstance(source, ReconnectingSource)):
        try:
            source = WithMicrophone(source, AlsaMicrophone(plan.audio_device or "default"))
        except BaseException:
            source.close()
            raise
    return source


def run_live(plan: LivePlan, notice_confirmed_at: str, live_control, on_redacted=None, progress=None,
             say: Callable[[str], None] = log.warning) -> dict:
    """Record the plan until `live_control` finishes it; returns the recording's JSON summary.
    `progress` and `say` are `run_recording`'s."""
    source = open_live_source(plan)
    placement = replace(plan.placement, notice_confirmed_at=notice_confirmed_at)
    return run_recording(
        source, plan.location, placement, plan.config, plan.storage, live_control=live_control,
        metrics_port=plan.metrics_port, on_redacted=on_redacted, progress=progress, say=say,
    )
