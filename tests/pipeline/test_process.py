"""`classcap process`: a clip goes in, a blurred fragmented MP4 and its manifest land in S3."""

import hashlib
import io
import json

import av
import pytest

from fixtures.measure import face_left
from pipeline.track_index import from_bytes


def decode(data_or_path):
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    with av.open(source) as container:
        streams = [s.codec_context.name for s in container.streams]
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return streams, frames


def test_process_uploads_a_blurred_copy_with_every_frame_and_no_face_left(classcap, classroom_clip, s3, bucket):
    # when a technician processes the clip into a bucket
    run = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}/recordings", "--site", "north", "--room", "r12")
    assert run.returncode == 0, run.stderr
    result = run.result
    # then the video sits where DESIGN.md says, beside its manifest
    assert result["video_key"].startswith("recordings/north/r12/")
    assert result["video_key"].endswith(f"/{result['recording_id']}/video.mp4")
    assert result["manifest_key"] == result["video_key"].replace("video.mp4", "manifest.json")
    data = s3.get_object(Bucket=bucket, Key=result["video_key"])["Body"].read()
    # and it has the input's frames, size, timestamps and audio
    in_streams, inputs = decode(classroom_clip.path)
    out_streams, outputs = decode(data)
    assert out_streams == ["h264", "aac"] and in_streams == ["h264", "aac"]
    assert len(outputs) == len(inputs) == result["frames_in"] == result["frames_out"] == 90
    assert outputs[0][1].shape == inputs[0][1].shape == (720, 1280, 3)
    assert [t for t, _ in outputs] == pytest.approx([t for t, _ in inputs], abs=1e-3)
    # and no ground-truth face is left recognisable in any frame
    truth = classroom_clip.truth
    left = [
        (i, face.identity, face.box)
        for i, ((_, original), (_, output)) in enumerate(zip(inputs, outputs))
        for face in truth[i]
        if face_left(original, output, face)
    ]
    assert sum(len(faces) for faces in truth) > 500
    assert left == []
    # and the manifest tells the audit trail
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=result["manifest_key"])["Body"].read())
    assert manifest["status"] == "complete"
    assert (manifest["site"], manifest["room"], manifest["policy"], manifest["audio"]) == ("north", "r12", "all", "keep")
    assert manifest["frames_in"] == manifest["frames_out"] == 90
    assert manifest["video"]["bytes"] == len(data)
    assert manifest["video"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert set(manifest["models"]) == {"face_detection_full_range_sparse.tflite", "centerface.onnx"}
    # and every object carries encryption and its retention date
    head = s3.head_object(Bucket=bucket, Key=result["video_key"])
    assert head["ServerSideEncryption"] == "AES256"
    tags = s3.get_object_tagging(Bucket=bucket, Key=result["video_key"])["TagSet"]
    assert sorted(tags, key=lambda t: t["Key"]) == [{"Key": "keep", "Value": "false"}, {"Key": "retention-until", "Value": manifest["retention_until"]}]
    # and beside the video lies its track index, stored like it and named in the manifest:
    # every frame, every face redacted there with its box (boxes and numbers, no pixels)
    index_key = result["video_key"].replace("video.mp4", "tracks.json.gz")
    index = s3.get_object(Bucket=bucket, Key=index_key)["Body"].read()
    assert manifest["tracks_index"] == {"key": index_key, "bytes": len(index), "sha256": hashlib.sha256(index).hexdigest(),
                                        "schema": "classcap.tracks/1"}
    assert s3.head_object(Bucket=bucket, Key=index_key)["ServerSideEncryption"] == "AES256"
    index_tags = s3.get_object_tagging(Bucket=bucket, Key=index_key)["TagSet"]
    assert sorted(index_tags, key=lambda t: t["Key"]) == sorted(tags, key=lambda t: t["Key"])
    stored = from_bytes(index)
    assert stored.recording_id == result["recording_id"] and len(stored.pts) == 90 and (stored.width, stored.height) == (1280, 720)
    assert stored.tracks and all(t.decision == "hidden" and set(t.why) == {"all"} for t in stored.tracks)
    for i in (10, 45, 80):  # each ground-truth face lies inside a box the index has for that frame
        boxes = [b for t in stored.tracks for f, b in zip(t.frames, t.boxes) if f == i]
        for face in truth[i]:
            if face.visible_fraction > 0.5:
                cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
                assert any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in boxes), (i, face.identity)


def test_the_measure_tells_an_intact_face_from_a_redacted_one(classroom_clip):
    # The check above is only worth something if it fails on an unblurred video.
    import cv2

    _, inputs = decode(classroom_clip.path)
    original = inputs[10][1]
    encoded = cv2.GaussianBlur(original, (0, 0), 0.6)  # roughly what a lossy re-encode does
    pixelated = original.copy()
    for face in classroom_clip.truth[10]:
        x0, y0, x1, y1 = face.box
        small = cv2.resize(pixelated[y0:y1, x0:x1], (4, 4), interpolation=cv2.INTER_AREA)
        pixelated[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    faces = [f for f in classroom_clip.truth[10] if f.visible_fraction > 0.5]
    assert faces
    assert all(face_left(original, encoded, f) for f in faces)
    assert not any(face_left(original, pixelated, f) for f in faces)


def test_audio_drop_uploads_video_only(classcap, classroom_clip, s3, bucket):
    run = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", "--audio", "drop")
    assert run.returncode == 0, run.stderr
    data = s3.get_object(Bucket=bucket, Key=run.result["video_key"])["Body"].read()
    streams, frames = decode(data)
    assert streams == ["h264"] and len(frames) == 90
    assert run.result["video_key"].startswith("recordings/")  # the default prefix
