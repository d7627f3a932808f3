"""What a technician does to a bucket: set it up, recover interrupted uploads, verify, keep, delete.

Nothing here ever writes video to local disk: objects are streamed from storage and decoded in
memory when frames need counting or checksums need checking.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import av
from botocore.exceptions import BotoCoreError, ClientError

from classcap.clock import utc_stamp
from upload.errors import UploadError
from upload.manifest import Manifest, Recovery, VideoRecord, find_manifest, get_manifest, put_manifest
from upload.storage import StorageSettings, explain

log = logging.getLogger(__name__)

RETENTION_DAYS = 730


# -- reading objects back, in memory


class _Stream:
    """A forward-only file object over an S3 body that hashes and counts what passes through."""

    def __init__(self, body):
        self._body = body
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._body.read(n if n and n > 0 else None)
        self.sha256.update(data)
        self.size += len(data)
        return data


@dataclass(frozen=True)
class VideoCheck:
    frames: int
    size: int
    sha256: str
    seconds: float
    error: str | None  # None: the whole object decoded cleanly


def inspect_video(client, settings: StorageSettings, bucket: str, key: str) -> VideoCheck:
    """Streams the object once: its frame count, size, SHA-256, and whether it plays to the end."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, f"read {key}") from err
    stream = _Stream(body)
    frames, last, error = 0, 0.0, None
    try:
        with av.open(stream, mode="r", format="mp4") as container:
            container.streams.video[0].thread_type = "AUTO"
            for frame in container.decode(video=0):
                frames += 1
                last = frame.time or last
    except av.FFmpegError as err:
        error = f"the video stops decoding after {frames} frames ({err})"
    while stream.read(1 << 20):  # whatever the demuxer did not need still counts for the checksum
        pass
    return VideoCheck(frames, stream.size, stream.sha256.hexdigest(), round(last, 3), error)


# -- recordings by id


@dataclass(frozen=True)
class RecordingKeys:
    recording_id: str
    folder: str

    @property
    def video(self) -> str:
        return f"{self.folder}/video.mp4"

    @property
    def manifest(self) -> str:
        return f"{self.folder}/manifest.json"

    @property
    def tracks_index(self) -> str:
        return f"{self.folder}/tracks.json.gz"


def find_recording(client, settings: StorageSettings, bucket: str, recording_id: str, prefix: str = "recordings/") -> RecordingKeys:
    """The folder of `recording_id` (its manifest, its video, or an interrupted upload of it)."""
    if "/" in recording_id or not recording_id.strip():
        raise UploadError(f"{recording_id!r} is not a recording id; ids look like 20261128T153000Z-1a2b3c4d.")
    suffixes = (f"/{recording_id}/manifest.json", f"/{recording_id}/video.mp4")
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                for suffix in suffixes:
                    if obj["Key"].endswith(suffix):
                        return RecordingKeys(recording_id, obj["Key"][: -len(suffix) + len(recording_id) + 1])
        for upload in _uploads(client, bucket, prefix):
            if upload["Key"].endswith(suffixes[1]):
                return RecordingKeys(recording_id, upload["Key"][: -len("/video.mp4")])
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "look for the recording") from err
    raise UploadError(f"There is no recording {recording_id} in bucket {bucket}.")


def _uploads(client, bucket: str, prefix: str) -> list[dict]:
    uploads = []
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        uploads.extend(page.get("Uploads", []))
    return uploads


def retention_tags(started: datetime, days: int = RETENTION_DAYS) -> dict[str, str]:
    """The tags every object of a recording carries: the day it may be deleted, and keep=false
    (the bucket's lifecycle rule expires what is not kept; `storage keep` flips it)."""
    return {"retention-until": (started + timedelta(days=days)).strftime("%Y-%m-%d"), "keep": "false"}


def _retention_tags(manifest: Manifest | None, started: datetime | None = None) -> dict[str, str]:
    if manifest and manifest.retention_until:
        return {"retention-until": manifest.retention_until, "keep": "false"}
    return retention_tags(started or datetime.now(timezone.utc))


# -- recover


def recover(client, settings: StorageSettings, bucket: str, prefix: str, progress=None) -> list[dict]:
    """Completes every interrupted video upload under `prefix` from the parts that arrived.

    Parts end on fragment boundaries and are sent in order, so the parts that arrived (up to the
    first missing one) form a video that plays to a clean end. Its manifest is marked
    `recovered` with the frames the recovered video holds.
    """
    results = []
    try:
        uploads = [u for u in _uploads(client, bucket, prefix) if u["Key"].endswith("/video.mp4")]
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "list interrupted uploads") from err
    for upload in uploads:
        key, upload_id = upload["Key"], upload["UploadId"]
        if progress:
            progress(f"recovering {key}...")
        try:
            results.append(_recover_one(client, settings, bucket, key, upload_id))
        except (ClientError, BotoCoreError) as err:
            raise explain(err, settings, bucket, f"recover {key}") from err
    return results


def _recover_one(client, settings: StorageSettings, bucket: str, key: str, upload_id: str) -> dict:
    parts = []
    for page in client.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id):
        parts.extend(page.get("Parts", []))
    parts.sort(key=lambda p: p["PartNumber"])
    usable = []
    for expected, part in enumerate(parts, start=1):
        if part["PartNumber"] != expected:
            break  # a later part without the one before it cannot be played on from
        usable.append(part)
    folder = key[: -len("/video.mp4")]
    manifest_key = f"{folder}/manifest.json"
    manifest = find_manifest(client, bucket, manifest_key)
    recording_id = folder.rsplit("/", 1)[-1]
    if not usable:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        status = "failed"
        check = None
        error = "The station stopped before any video reached storage; nothing could be recovered."
    else:
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in usable]},
        )
        check = inspect_video(client, settings, bucket, key)
        status, error = "recovered", check.error
    updated = (manifest or Manifest(recording_id=recording_id, status=status)).changed(
        status=status,
        error=error if status == "failed" else (manifest.error if manifest else None),
        recovered_at=utc_stamp(),
        frames_out=check.frames if check else 0,
        recovery=Recovery(
            parts_found=len(parts),
            parts_used=len(usable),
            frames=check.frames if check else 0,
            seconds=check.seconds if check else 0,
            decode_error=check.error if check else None,
        ),
        video=VideoRecord(
            key=key,
            parts=len(usable),
            bytes=check.size if check else 0,
            sha256=check.sha256 if check else None,
        ),
    )
    put_manifest(client, settings, bucket, manifest_key, updated, _retention_tags(manifest))
    return {
        "recording_id": recording_id,
        "video_key": key,
        "manifest_key": manifest_key,
        "status": status,
        "frames": check.frames if check else 0,
        "seconds": check.seconds if check else 0,
        "parts_used": len(usable),
        "parts_found": len(parts),
    }


# -- verify, keep, delete


def verify(client, settings: StorageSettings, bucket: str, keys: RecordingKeys) -> dict:
    """Checks the video against its manifest: size, SHA-256 and frame count."""
    try:
        manifest = find_manifest(client, bucket, keys.manifest)
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "read the manifest") from err
    if manifest is None:
        raise UploadError(f"Recording {keys.recording_id} has no manifest; its video cannot be verified.")
    video = manifest.video
    if not video.sha256:
        raise UploadError(
            f"Recording {keys.recording_id} is {manifest.status} and has no checksum to verify; "
            "`classcap storage recover` completes interrupted recordings."
        )
    check = inspect_video(client, settings, bucket, keys.video)
    problems = []
    if check.size != video.bytes:
        problems.append(f"size {check.size} bytes, manifest says {video.bytes}")
    if check.sha256 != video.sha256:
        problems.append("SHA-256 differs from the manifest's")
    if check.frames != manifest.frames_out:
        problems.append(f"{check.frames} frames, manifest says {manifest.frames_out}")
    if check.error:
        problems.append(check.error)
    return {
        "recording_id": keys.recording_id,
        "ok": not problems,
        "problems": problems,
        "frames": check.frames,
        "bytes": check.size,
        "sha256": check.sha256,
    }


def set_keep(client, settings: StorageSettings, bucket: str, keys: RecordingKeys, keep: bool = True) -> list[str]:
    """Tags the recording's objects `keep=true` (an exemplar: the lifecycle rule passes it by)."""
    tagged = []
    for key in (keys.video, keys.manifest, keys.tracks_index):
        try:
            current = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                continue
            raise explain(err, settings, bucket, f"read the tags of {key}") from err
        tags = {t["Key"]: t["Value"] for t in current}
        tags["keep"] = "true" if keep else "false"
        try:
            client.put_object_tagging(
                Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
            )
        except (ClientError, BotoCoreError) as err:
            raise explain(err, settings, bucket, f"tag {key}") from err
        tagged.append(key)
    if not tagged:
        raise UploadError(f"Recording {keys.recording_id} has no objects to keep.")
    return tagged


def assign_owner(client, settings: StorageSettings, bucket: str, keys: RecordingKeys, staff_id: str) -> Manifest:
    """Writes `staff_id` into the manifest of a recording that has no owner, keeping the
    manifest's tags (its retention date and keep flag); returns the manifest written."""
    manifest = get_manifest(client, bucket, keys.manifest)
    if manifest.staff_id is not None:
        raise UploadError(f"Recording {keys.recording_id} already belongs to {manifest.staff_id}.")
    try:
        tags = {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=keys.manifest)["TagSet"]}
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, f"read the tags of {keys.manifest}") from err
    updated = manifest.changed(staff_id=staff_id)
    put_manifest(client, settings, bucket, keys.manifest, updated, tags or _retention_tags(manifest))
    return updated


def delete_recording(client, settings: StorageSettings, bucket: str, keys: RecordingKeys) -> list[str]:
    """Deletes every object of the recording (video, manifest, track index) and any interrupted upload."""
    removed = []
    try:
        for upload in _uploads(client, bucket, keys.folder + "/"):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            removed.append(f"{upload['Key']} (interrupted upload)")
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=keys.folder + "/"):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
                removed.append(obj["Key"])
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, f"delete recording {keys.recording_id}") from err
    return removed


# -- init


def lifecycle_rules(prefix: str = "recordings/", days: int = RETENTION_DAYS) -> dict:
    """Expire recordings `days` after creation, except those tagged keep=true.

    A lifecycle filter cannot say "not tagged keep=true", so every object is written tagged
    keep=false and the rule expires those; `storage keep` turns the tag to true.
    """
    return {
        "Rules": [
            {
                "ID": "classcap-expire-recordings",
                "Status": "Enabled",
                "Filter": {"And": {"Prefix": prefix, "Tags": [{"Key": "keep", "Value": "false"}]}},
                "Expiration": {"Days": days},
            },
            {
                "ID": "classcap-abort-interrupted-uploads",
                "Status": "Enabled",
                "Filter": {"Prefix": prefix},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 30},
            },
        ]
    }


def station_policy(bucket: str, station_principal: str = "arn:aws:iam::ACCOUNT:role/classcap-station",
                   library_principal: str = "arn:aws:iam::ACCOUNT:role/classcap-library") -> dict:
    """Stations may only write recordings (and read the gallery they redact with); the library
    (`classcap library serve`, its own credentials) reads, lists, tags and deletes recordings and
    rewrites a manifest (to assign its owner), and never reads the gallery."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StationsWriteRecordings",
                "Effect": "Allow",
                "Principal": {"AWS": station_principal},
                "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                "Resource": f"arn:aws:s3:::{bucket}/recordings/*",
            },
            {
                "Sid": "StationsReadTheGallery",
                "Effect": "Allow",
                "Principal": {"AWS": station_principal},
                "Action": ["s3:GetObject"],
                "Resource": f"arn:aws:s3:::{bucket}/gallery/*",
            },
            {
                "Sid": "StationsNeverReadListOrDeleteRecordings",
                "Effect": "Deny",
                "Principal": {"AWS": station_principal},
                "Action": ["s3:GetObject", "s3:DeleteObject", "s3:GetObjectTagging"],
                "Resource": f"arn:aws:s3:::{bucket}/recordings/*",
            },
            {
                "Sid": "StationsNeverListRecordings",
                "Effect": "Deny",
                "Principal": {"AWS": station_principal},
                "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": ["recordings/*"]}},
            },
        ],
    }
    policy["Statement"] += [
        {
            "Sid": "LibraryReadsTagsAndDeletesRecordings",
            "Effect": "Allow",
            "Principal": {"AWS": library_principal},
            "Action": ["s3:GetObject", "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObject",
                       "s3:AbortMultipartUpload"],
            "Resource": f"arn:aws:s3:::{bucket}/recordings/*",
        },
        {
            "Sid": "LibraryAssignsOwnersInManifests",
            "Effect": "Allow",
            "Principal": {"AWS": library_principal},
            "Action": ["s3:PutObject"],
            "Resource": f"arn:aws:s3:::{bucket}/recordings/*/manifest.json",
        },
        {
            "Sid": "LibraryListsRecordings",
            "Effect": "Allow",
            "Principal": {"AWS": library_principal},
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": ["recordings/*"]}},
        },
        {
            "Sid": "LibraryNeverReadsTheGallery",
            "Effect": "Deny",
            "Principal": {"AWS": library_principal},
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"arn:aws:s3:::{bucket}/gallery/*",
        },
    ]
    return policy
