"""Moments are written one way, by one function: UTC, microseconds, a Z."""

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from classcap.clock import utc_stamp

ROOT = Path(__file__).resolve().parent.parent


def test_a_moment_in_any_zone_is_written_in_utc_with_microseconds_and_a_z():
    paris = timezone(timedelta(hours=1))
    assert utc_stamp(datetime(2026, 12, 2, 14, 36, 29, 123456, tzinfo=paris)) == "2026-12-02T13:36:29.123456Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc_stamp())
    assert abs(datetime.strptime(utc_stamp(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
               - datetime.now(timezone.utc)) < timedelta(seconds=5)


def test_no_other_module_writes_the_stamp_format_itself():
    writers = [str(path.relative_to(ROOT)) for package in ("capture", "blur", "upload", "pipeline", "classcap")
               for path in (ROOT / package).rglob("*.py") if "%H:%M:%S.%f" in path.read_text()]
    assert writers == ["classcap/clock.py"]
