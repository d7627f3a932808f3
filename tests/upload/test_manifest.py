"""The manifest is one typed, versioned record: what is written is what is read back."""

import json

import pytest

from upload.errors import UploadError
from upload.manifest import SCHEMA, EarlierVideo, Manifest, Recovery, VideoRecord

# DESIGN.md's list of what the manifest records, by the names the document uses.
DESIGN_FIELDS = {
    "recording_id", "site", "room", "station", "camera_id", "staff_id", "started_at", "ended_at",
    "notice_confirmed_at", "policy", "audio", "gallery_version", "models", "frames_in", "frames_out",
    "dropped_frames", "faces_detected", "faces_redacted", "fail_closed_frames", "reconnects",
    "upload_retries", "status",
}


def finished() -> Manifest:
    return Manifest(
        recording_id="20261202T080000Z-0a1b2c3d", status="complete", site="north", room="r12", station="s1",
        camera_id="usb:046d:0825", staff_id="t-17", started_at="2026-12-02T08:00:00.000000Z",
        ended_at="2026-12-02T08:50:00.000000Z", policy="exclude", audio="keep", gallery_version="ab" * 32,
        models={"centerface.onnx": "cd" * 32}, width=1280, height=720, frames_in=90_000, frames_out=89_990,
        dropped_frames=10, faces_detected=1_200_000, faces_redacted=40_000, fail_closed_frames=3, reconnects=1,
        gaps=({"started_at": "2026-12-02T08:10:00Z", "ended_at": "2026-12-02T08:10:04Z", "seconds": 4.0,
               "reason": "camera unplugged"},),
        upload_retries=2, video=VideoRecord("recordings/a/video.mp4", 12, 9_000_000, "ef" * 32),
        retention_until="2028-12-02",
    )


def test_a_manifest_reads_back_as_it_was_written():
    written = finished()
    doc = json.loads(written.to_json())
    assert doc["schema"] == SCHEMA
    assert DESIGN_FIELDS <= set(doc)
    assert doc["video"] == {"key": "recordings/a/video.mp4", "parts": 12, "bytes": 9_000_000, "sha256": "ef" * 32}
    # what only a recovered or re-blurred recording has is not in the document of one that is neither
    assert not {"recovered_at", "recovery", "reblurred_from"} & set(doc)
    assert Manifest.from_json(written.to_json()) == written


def test_a_recovered_and_reblurred_manifest_keeps_its_history():
    written = finished().changed(
        status="recovered", recovered_at="2026-12-03T07:00:00.000000Z",
        recovery=Recovery(parts_found=13, parts_used=12, frames=89_990, seconds=2999.7),
        reblurred_from=(EarlierVideo("2026-12-04T07:00:00Z", "01" * 32, 9_100_000, "99" * 32, {"centerface.onnx": "cd" * 32}),),
    )
    read = Manifest.from_json(written.to_json())
    assert read == written
    assert read.recovery.parts_used == 12 and read.reblurred_from[0].sha256 == "01" * 32


def test_a_manifest_of_another_schema_or_with_unknown_fields_is_refused_in_one_sentence():
    doc = finished().to_dict()
    with pytest.raises(UploadError, match="classcap.manifest/2"):
        Manifest.from_dict({**doc, "schema": "classcap.manifest/2"})
    with pytest.raises(UploadError, match="does not know \\(owner\\)"):
        Manifest.from_dict({**doc, "owner": "t-17"})
    with pytest.raises(UploadError, match="not JSON"):
        Manifest.from_json(b"{truncated")
    with pytest.raises(UploadError, match="can read"):
        Manifest.from_dict({**doc, "status": "paused"})


def test_a_manifest_takes_only_the_statuses_design_names():
    with pytest.raises(ValueError, match="status"):
        Manifest(recording_id="r", status="done")
