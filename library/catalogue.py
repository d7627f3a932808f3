"""What the bucket holds, as the library lists it: one `Recording` row per manifest.

`sync` reads the manifests under `recordings/` (only those whose ETag changed since the last
time) and keeps the rows in step: a new manifest adds a row, a changed one (a re-blur, an
assigned owner) updates it, a vanished one removes it with its shares and comments. The video
is never read here.
"""

from __future__ import annotations

from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import select

from library.db import Recording
from upload.admin import RecordingKeys
from upload.errors import UploadError
from upload.manifest import Manifest

PREFIX = "recordings/"
MANIFEST = "/manifest.json"


def sync(client, bucket: str, session) -> dict[str, int]:
    """Brings the catalogue in step with the bucket; counts of rows added, updated, removed."""
    seen: dict[str, tuple[str, str]] = {}  # manifest key -> (etag, folder)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(MANIFEST):
                seen[obj["Key"]] = (obj["ETag"], obj["Key"][: -len(MANIFEST)])
    rows = {row.folder: row for row in session.scalars(select(Recording))}
    counts = {"added": 0, "updated": 0, "removed": 0, "unreadable": 0}
    for key, (etag, folder) in seen.items():
        row = rows.pop(folder, None)
        if row is not None and row.manifest_etag == etag:
            continue
        try:
            manifest = Manifest.from_json(client.get_object(Bucket=bucket, Key=key)["Body"].read(), f"the manifest {key}")
        except (UploadError, ClientError, BotoCoreError):
            counts["unreadable"] += 1  # listed again next time; one bad manifest hides no other recording
            continue
        if manifest.recording_id != folder.rsplit("/", 1)[-1]:
            counts["unreadable"] += 1
            continue
        if row is None:
            row = session.get(Recording, manifest.recording_id) or Recording(id=manifest.recording_id, exemplar=_kept(client, bucket, key))
            session.add(row)
            counts["added"] += 1
        else:
            counts["updated"] += 1
        _describe(row, manifest, folder, etag)
    for row in rows.values():
        session.delete(row)
        counts["removed"] += 1
    session.flush()
    return counts


def keys(row: Recording) -> RecordingKeys:
    return RecordingKeys(row.id, row.folder)


def _describe(row: Recording, manifest: Manifest, folder: str, etag: str) -> None:
    row.folder, row.manifest_etag = folder, etag
    row.owner_id = manifest.staff_id
    row.site, row.room, row.policy, row.status = manifest.site, manifest.room, manifest.policy, manifest.status
    row.started_at, row.retention_until = manifest.started_at, manifest.retention_until
    row.seconds = _seconds(manifest)
    video = manifest.video
    row.video_key = video.key if video and video.key.startswith(folder + "/") else None
    row.video_bytes = video.bytes if row.video_key else None


def _seconds(manifest: Manifest) -> float | None:
    """The video's length: its frames at its frame rate (a live recording's wall time includes
    gaps the video does not hold; a file's processing time is not its length)."""
    enc = manifest.encoding
    if enc is not None and manifest.frames_out and enc.frame_rate[0] > 0:
        return round(manifest.frames_out * enc.frame_rate[1] / enc.frame_rate[0], 2)
    try:
        return round((datetime.fromisoformat(manifest.ended_at) - datetime.fromisoformat(manifest.started_at)).total_seconds(), 1)
    except (TypeError, ValueError):
        return None


def _kept(client, bucket: str, key: str) -> bool:
    try:
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    except (ClientError, BotoCoreError):
        return False
    return any(t["Key"] == "keep" and t["Value"] == "true" for t in tags)
