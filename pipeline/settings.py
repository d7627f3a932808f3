"""Where a command's bucket and storage come from, decided once, as DESIGN.md states it.

- Storage (endpoint, keys, region): the station config's `[storage]` where it sets them, else
  the AWS variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
  `AWS_REGION`), else the AWS chain.
- The bucket: the command's own (`s3://` argument, `--bucket`), else `CLASSCAP_BUCKET`, else the
  station config's `[storage] bucket`.

The station config is the one `--config` names, else `$CLASSCAP_STATION_CONFIG`, else none.
"""

from __future__ import annotations

import os

from pipeline.config import ConfigError
from pipeline.station import StationConfig, load_station
from upload.storage import StorageSettings

NO_BUCKET = "No bucket given; pass --bucket, set CLASSCAP_BUCKET, or set [storage] bucket in station.toml."


def station_of(args) -> StationConfig:
    """The station config a command's `--config` (or the environment) names; empty without one."""
    return load_station(getattr(args, "config", None))


def bucket_or_none(station: StationConfig, asked: str | None = None) -> str | None:
    """The bucket: the one asked for, else CLASSCAP_BUCKET, else the station's (None: none anywhere)."""
    return asked or os.environ.get("CLASSCAP_BUCKET") or station.bucket


def bucket(station: StationConfig, asked: str | None = None) -> str:
    """The bucket, as `bucket_or_none`; one sentence (ConfigError) when none is set anywhere."""
    chosen = bucket_or_none(station, asked)
    if not chosen:
        raise ConfigError(NO_BUCKET)
    return chosen


def storage(station: StationConfig) -> StorageSettings:
    """Where and as whom to reach storage."""
    return station.storage_settings()


def library_database(asked: str | None = None) -> str:
    """The library's database URL: the one asked for (`--db`), else `CLASSCAP_LIBRARY_DB`, else a
    SQLite file in the user's data folder (`$XDG_DATA_HOME/classcap/library.db`). It holds
    accounts, shares, comments and the audit; never a video, frame or face."""
    chosen = asked or os.environ.get("CLASSCAP_LIBRARY_DB")
    if chosen:
        return chosen
    from pathlib import Path

    folder = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "classcap"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'library.db'}"
