"""The station config (`station.toml`): where this station is, what it records, where it uploads.

```toml
[station]
site = "north-campus"      # required to record
room = "science-2"         # required to record
id = "station-07"
metrics_port = 9464        # Prometheus metrics on 127.0.0.1 while recording; -1 turns them off

[recording]
source = "usb:046d:0825:A1B2C3"  # a USB camera by id (or /dev/video0), rtsp://HOST/..., http://HOST/...,
                                 # or a test source: generated:classroom, testpattern, file:/path/clip.mp4
policy = "exclude"
audio = "drop"                   # keep | drop
audio_device = "default"         # the ALSA microphone used with a camera when audio is kept (`arecord -L`; "testtone": a check tone)
crf = 23                         # video quality: lower is sharper and needs more bandwidth
camera_give_up_s = 120           # a camera away longer than this ends the recording (finished, kept)

[cameras]
approved = ["usb:046d:0825:A1B2C3", "ip:10.20.0.15@00:1a:2b:3c:4d:5e"]   # `classcap cameras approve`

[storage]
endpoint = "https://s3.school.example"   # else AWS_ENDPOINT_URL
bucket = "school-recordings"             # else --bucket / CLASSCAP_BUCKET
buffer_mb = 160                          # video held in memory while storage is unreachable
# access_key / secret_key: the station's write-only keys (without them: the AWS chain, i.e. environment,
# ~/.aws/credentials, instance role); keep the file readable by the station's user only
```
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import ConfigError

NOTICE = "This lesson/part of the lesson is being recorded for training purposes"

KNOWN = {
    "station": {"site": str, "room": str, "id": str, "metrics_port": int},
    "recording": {"source": str, "policy": str, "audio": str, "audio_device": str, "camera_give_up_s": float, "crf": int},
    "storage": {"endpoint": str, "bucket": str, "region": str, "buffer_mb": int, "access_key": str, "secret_key": str},
    "cameras": {"approved": list},
}


@dataclass(frozen=True)
class StationConfig:
    site: str | None = None
    room: str | None = None
    station_id: str | None = None
    source: str | None = None
    policy: str | None = None
    audio: str | None = None
    endpoint: str | None = None
    bucket: str | None = None
    region: str | None = None
    audio_device: str | None = None
    camera_give_up_s: float = 120.0
    crf: int | None = None
    metrics_port: int = 9464
    buffer_mb: int | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)

    def storage_settings(self):
        """Where and as whom to reach storage: the station config's settings, the AWS chain otherwise."""
        from upload.storage import StorageSettings

        return StorageSettings.from_env(
            endpoint_url=self.endpoint, region=self.region, access_key=self.access_key, secret_key=self.secret_key
        )
    approved_cameras: tuple[str, ...] = ()
    path: Path | None = None


def load_station(path: str | Path | None) -> StationConfig:
    """The station config at `path` (or $CLASSCAP_STATION_CONFIG); empty when there is none."""
    path = path or os.environ.get("CLASSCAP_STATION_CONFIG")
    if not path:
        return StationConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Station config {path} does not exist.")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"Station config {path} is not valid TOML ({err}).") from err
    for section, values in data.items():
        if section not in KNOWN or not isinstance(values, dict):
            raise ConfigError(f"Station config {path} has an unknown section [{section}]; expected {', '.join(KNOWN)}.")
        for key, value in values.items():
            if key not in KNOWN[section]:
                raise ConfigError(f"Station config {path} has an unknown setting {section}.{key}.")
            _check_value(path, f"{section}.{key}", value, KNOWN[section][key])
    if "secret_key" in data.get("storage", {}) and path.stat().st_mode & 0o077:
        raise ConfigError(f"Station config {path} holds a secret key but others can read it; run `chmod 600 {path}`.")
    station, recording, storage = data.get("station", {}), data.get("recording", {}), data.get("storage", {})
    return StationConfig(
        site=station.get("site"),
        room=station.get("room"),
        station_id=station.get("id"),
        source=recording.get("source"),
        policy=recording.get("policy"),
        audio=recording.get("audio"),
        endpoint=storage.get("endpoint"),
        bucket=storage.get("bucket"),
        region=storage.get("region"),
        audio_device=recording.get("audio_device"),
        crf=recording.get("crf"),
        metrics_port=station.get("metrics_port", 9464),
        buffer_mb=storage.get("buffer_mb"),
        access_key=storage.get("access_key"),
        secret_key=storage.get("secret_key"),
        camera_give_up_s=float(recording.get("camera_give_up_s", 120.0)),
        approved_cameras=tuple(data.get("cameras", {}).get("approved", ())),
        path=path,
    )


def _check_value(path: Path, name: str, value, kind) -> None:
    if kind is str and not (isinstance(value, str) and value.strip()):
        raise ConfigError(f"Station config {path}: {name} must be a non-empty text value.")
    if kind is float and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        raise ConfigError(f"Station config {path}: {name} must be a positive number of seconds.")
    if kind is int and name == "station.metrics_port":
        if not (isinstance(value, int) and not isinstance(value, bool) and -1 <= value <= 65535):
            raise ConfigError(f"Station config {path}: {name} must be a port number (0: any free port, -1: no metrics).")
    elif kind is int and name == "storage.buffer_mb":
        if not (isinstance(value, int) and not isinstance(value, bool) and 5 <= value <= 4096):
            raise ConfigError(f"Station config {path}: {name} must be a whole number of MiB from 5 to 4096.")
    elif kind is int and not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 51):
        raise ConfigError(f"Station config {path}: {name} must be a whole number from 0 to 51.")
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f'Station config {path}: {name} must be a list of camera ids, like ["usb:046d:0825:A1B2C3"].')
        from capture.registry import parse_camera_id
        from capture.errors import CaptureError

        for v in value:
            try:
                parse_camera_id(v)
            except CaptureError as err:
                raise ConfigError(f"Station config {path}: {name} has a bad entry: {err}") from err


def save_approved_cameras(path: Path, ids: list[str]) -> None:
    """Rewrites only the `[cameras]` section of the station config, keeping everything else
    (comments included) as the technician wrote it."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept, skipping = [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == "[cameras]"
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    listed = ", ".join(f'"{i}"' for i in ids)
    text = "\n".join([*kept, "", "[cameras]", f"approved = [{listed}]", ""]).lstrip("\n")
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    try:
        load_station(tmp)  # never leave a config the station cannot read
    except ConfigError:
        tmp.unlink()
        raise
    tmp.replace(path)
