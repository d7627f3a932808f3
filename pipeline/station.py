"""The station config (`station.toml`): where this station is, what it records, where it uploads.

```toml
[station]
site = "north-campus"      # required to record
room = "science-2"         # required to record
id = "station-07"

[recording]
source = "generated:classroom"   # or "testpattern", "file:/path/clip.mp4"
policy = "exclude"
audio = "drop"                   # keep | drop

[storage]
endpoint = "https://s3.school.example"   # else AWS_ENDPOINT_URL
bucket = "school-recordings"             # else --bucket / CLASSCAP_BUCKET
```
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import ConfigError

NOTICE = "This lesson/part of the lesson is being recorded for training purposes"

KNOWN = {
    "station": {"site", "room", "id"},
    "recording": {"source", "policy", "audio"},
    "storage": {"endpoint", "bucket", "region"},
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
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"Station config {path}: {section}.{key} must be a non-empty text value.")
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
    )
