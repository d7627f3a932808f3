"""Bad input: one clear sentence on stderr, a non-zero exit, and nothing half-written in storage."""

import socket

import av
import pytest

from conftest import storage_env


def videos_and_uploads(s3, bucket):
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [k for k in keys if k.endswith("video.mp4")], uploads


def assert_one_sentence(run, *words):
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert "Traceback" not in run.stderr, run.stderr
    last = lines[-1]
    assert last.startswith("classcap: ") and last.endswith("."), last
    for word in words:
        assert word.lower() in last.lower(), last


def faststart_copy(source, target):
    """The same clip with its index at the front, so a cut copy still opens and plays part-way."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)


def truncated(source, target, fraction):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def test_missing_file(classcap, bucket, s3, tmp_path):
    run = classcap("process", tmp_path / "nope.mp4", "--to", f"s3://{bucket}")
    assert_one_sentence(run, "does not exist")
    assert len(run.stderr.strip().splitlines()) == 1
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_not_a_video(classcap, bucket, s3, tmp_path):
    notes = tmp_path / "lesson-notes.mp4"
    notes.write_text("Photosynthesis: light, water, carbon dioxide.\n" * 50)
    run = classcap("process", notes, "--to", f"s3://{bucket}")
    assert_one_sentence(run, "not a readable video")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_truncated_mp4_without_its_index(classcap, classroom_clip, bucket, s3, tmp_path):
    cut = truncated(classroom_clip.path, tmp_path / "cut.mp4", 0.5)
    run = classcap("process", cut, "--to", f"s3://{bucket}")
    assert_one_sentence(run, "cut.mp4")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_truncated_mp4_that_fails_mid_stream_leaves_no_video(classcap, classroom_clip, bucket, s3, tmp_path):
    # given a clip that opens and decodes for a while, then ends early
    whole = tmp_path / "faststart.mp4"
    faststart_copy(classroom_clip.path, whole)
    cut = truncated(whole, tmp_path / "cut-late.mp4", 0.6)
    run = classcap("process", cut, "--to", f"s3://{bucket}")
    # then the error names the file and says it is truncated
    assert_one_sentence(run, "cut-late.mp4", "truncated")
    # and the upload was aborted: no video object, no parts left behind; the manifest says failed
    assert videos_and_uploads(s3, bucket) == ([], [])
    [manifest_key] = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    import json

    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert manifest["status"] == "failed" and "truncated" in manifest["error"]


def test_unreachable_storage(classcap, classroom_clip, seaweed):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens here once the socket closes
    env = storage_env(seaweed, AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed_port}")
    run = classcap("process", classroom_clip.path, "--to", "s3://anything/recordings", env=env)
    assert_one_sentence(run, "cannot reach storage", str(closed_port))


def test_missing_bucket(classcap, classroom_clip):
    run = classcap("process", classroom_clip.path, "--to", "s3://no-such-bucket-here/recordings")
    assert_one_sentence(run, "no-such-bucket-here", "does not exist")


def test_wrong_secret(classcap, classroom_clip, seaweed, bucket, s3):
    env = storage_env(seaweed, AWS_SECRET_ACCESS_KEY="not-the-secret")
    run = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", env=env)
    assert_one_sentence(run, "credentials")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("url", ["bucket/recordings", "http://x/y", "s3://"])
def test_a_destination_that_is_not_an_s3_address(classcap, classroom_clip, url):
    run = classcap("process", classroom_clip.path, "--to", url)
    assert_one_sentence(run, "s3://BUCKET/PREFIX")
