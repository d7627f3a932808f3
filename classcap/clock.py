"""The one way classcap writes a moment: UTC, to the microsecond, with a Z (manifests, camera
gaps, recoveries, re-blurs, the notice given to the class)."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_stamp(moment: datetime | None = None) -> str:
    """A moment (default now) as the manifests write it: 2026-12-02T13:36:29.123456Z."""
    return (moment or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
