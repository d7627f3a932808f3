"""The recording's manifest: the audit trail, written beside the video at start and at the end.

One typed, versioned record (`Manifest`), written and read here only. The recording builds it,
`storage recover` and `reblur` read it and write a changed copy (`dataclasses.replace`), and the
JSON it becomes is the document DESIGN.md describes. A document of another schema is refused in
one sentence rather than half-read.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from upload.errors import UploadError
from upload.retry import Retrier
from upload.storage import StorageSettings, explain

SCHEMA = "classcap.manifest/1"
STATUSES = ("recording", "complete", "recovered", "failed")


@dataclass(frozen=True)
class VideoRecord:
    """The video object: where it is, in how many parts, how big, and its SHA-256 once whole."""

    key: str = ""
    parts: int = 0
    bytes: int = 0
    sha256: str | None = None


@dataclass(frozen=True)
class IndexRecord:
    """The recording's track index object beside the video (`pipeline/track_index.py` makes it;
    to storage it is opaque bytes): where, how big, its SHA-256 and the schema it is written in."""

    key: str
    bytes: int
    sha256: str
    schema: str


@dataclass(frozen=True)
class EncodingRecord:
    """How the video was encoded (`upload/encoder.py` fills it and reads it back), so that a
    re-blur can encode one fragment again exactly as the rest was encoded."""

    codec: str
    time_base: tuple[int, int]
    frame_rate: tuple[int, int]
    crf: int
    preset: str
    tune: str
    x264_params: str
    keyframe_seconds: float
    threads: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_base", tuple(self.time_base))
        object.__setattr__(self, "frame_rate", tuple(self.frame_rate))


@dataclass(frozen=True)
class Recovery:
    """What `storage recover` found of an interrupted upload and made playable."""

    parts_found: int
    parts_used: int
    frames: int
    seconds: float
    decode_error: str | None = None


@dataclass(frozen=True)
class EarlierVideo:
    """A video a re-blur replaced: its checksum, and the gallery and models it was blurred with."""

    at: str
    sha256: str | None
    bytes: int | None
    gallery_version: str | None
    models: dict[str, str] | None


@dataclass(frozen=True)
class Manifest:
    recording_id: str
    status: str
    site: str | None = None
    room: str | None = None
    station: str | None = None
    camera_id: str | None = None
    staff_id: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    notice_confirmed_at: str | None = None
    policy: str | None = None
    audio: str | None = None  # keep, drop, or none (the source had no sound)
    gallery_version: str | None = None
    models: dict[str, str] = field(default_factory=dict)  # model file -> SHA-256
    width: int | None = None
    height: int | None = None
    # Counts are None where nobody knows them: a recording whose manifest was lost and recovered.
    frames_in: int | None = None
    frames_out: int | None = None
    dropped_frames: int | None = None
    dropped_audio_chunks: int | None = None
    faces_detected: int | None = None
    faces_redacted: int | None = None
    fail_closed_frames: int | None = None
    identity_backlog_events: int | None = None
    identity_timeouts: int | None = None
    # The source's state when this was written: running while recording; at the end ended (the
    # file or camera ended, or was stopped) or failed. None in a recovered manifest.
    source_state: str | None = None
    reconnects: int | None = None
    gaps: tuple[dict, ...] = ()  # the camera's outages: started_at, ended_at, seconds, reason
    stopped_because: str | None = None
    storage_outages: tuple[dict, ...] = ()
    upload_buffer_peak_parts: int | None = None
    audio_error: str | None = None
    microphone_dropped_chunks: int | None = None
    upload_retries: int | None = None
    error: str | None = None
    video: VideoRecord = VideoRecord()
    tracks_index: IndexRecord | None = None  # None: no index (an older recording, or it could not be written)
    encoding: EncodingRecord | None = None  # None: an older recording (a re-blur then re-encodes it whole)
    retention_until: str | None = None
    # Only in a manifest that was recovered, or re-blurred: absent from the document otherwise.
    recovered_at: str | None = None
    recovery: Recovery | None = None
    reblurred_from: tuple[EarlierVideo, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"manifest status must be one of {STATUSES}, not {self.status!r}")
        object.__setattr__(self, "gaps", tuple(self.gaps))
        object.__setattr__(self, "storage_outages", tuple(self.storage_outages))
        object.__setattr__(self, "reblurred_from", tuple(self.reblurred_from))

    def changed(self, **values) -> "Manifest":
        return replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        doc = {"schema": SCHEMA, **asdict(self)}
        doc["gaps"], doc["storage_outages"] = list(doc["gaps"]), list(doc["storage_outages"])
        for name in ("recovered_at", "recovery", "tracks_index", "encoding"):
            if doc[name] is None:
                del doc[name]
        if doc["reblurred_from"]:
            doc["reblurred_from"] = list(doc["reblurred_from"])
        else:
            del doc["reblurred_from"]
        return doc

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "the manifest") -> "Manifest":
        schema = doc.get("schema")
        if schema != SCHEMA:
            raise UploadError(f"{where} is of schema {schema!r}; this classcap reads {SCHEMA!r} only.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known - {"schema"})
        if unknown:
            raise UploadError(f"{where} has fields this classcap does not know ({', '.join(unknown)}).")
        values = {k: v for k, v in doc.items() if k != "schema"}
        try:
            if values.get("video") is not None:
                values["video"] = VideoRecord(**values["video"])
            else:
                values.pop("video", None)
            if values.get("tracks_index") is not None:
                values["tracks_index"] = IndexRecord(**values["tracks_index"])
            if values.get("encoding") is not None:
                values["encoding"] = EncodingRecord(**values["encoding"])
            if values.get("recovery") is not None:
                values["recovery"] = Recovery(**values["recovery"])
            values["reblurred_from"] = tuple(EarlierVideo(**e) for e in values.get("reblurred_from") or ())
            values["models"] = values.get("models") or {}
            values["gaps"] = values.get("gaps") or ()
            values["storage_outages"] = values.get("storage_outages") or ()
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise UploadError(f"{where} is not a manifest this classcap can read: {err}") from err

    @classmethod
    def from_json(cls, data: bytes, where: str = "the manifest") -> "Manifest":
        try:
            doc = json.loads(data)
        except ValueError as err:
            raise UploadError(f"{where} is not JSON: {err}") from err
        if not isinstance(doc, dict):
            raise UploadError(f"{where} is not a JSON object.")
        return cls.from_dict(doc, where)


def put_manifest(
    client, settings: StorageSettings, bucket: str, key: str, manifest: Manifest, tags: dict[str, str], retrier: Retrier | None = None
) -> None:
    put_document(client, settings, bucket, key, manifest.to_json(), "application/json", tags, "write the manifest", retrier)


def put_document(client, settings: StorageSettings, bucket: str, key: str, body: bytes, content_type: str,
                 tags: dict[str, str], what: str, retrier: Retrier | None = None) -> None:
    """One small object beside the video, encrypted and tagged like it (so the lifecycle rule
    expires it with the video and `storage keep` keeps it)."""

    def once():
        try:
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ServerSideEncryption="AES256",
                Tagging="&".join(f"{k}={v}" for k, v in tags.items()),
                ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),  # the server checks it arrived whole
            )
        except (ClientError, BotoCoreError) as err:
            raise explain(err, settings, bucket, what) from err

    (retrier or Retrier(give_up_after_s=0)).call(what, once)


def get_manifest(client, bucket: str, key: str) -> Manifest:
    return Manifest.from_json(client.get_object(Bucket=bucket, Key=key)["Body"].read(), f"The manifest {key}")


def find_manifest(client, bucket: str, key: str) -> Manifest | None:
    """The manifest at `key`, or None where there is none."""
    try:
        return get_manifest(client, bucket, key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
