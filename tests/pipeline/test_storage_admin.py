"""The technician's storage commands against a real SeaweedFS: recover after kill -9, verify, keep, delete, init."""

import dataclasses
import io
import json
import math
import signal
import subprocess
import threading
import time
import urllib.request

import av
import pytest

from conftest import CLASSCAP, metric, metrics_url, read_metrics, storage_env
from upload.encoder import EncoderSettings


def upload_parts(s3, bucket):
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if not uploads:
        return 0
    u = uploads[0]
    return len(s3.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))


def decode_times(data: bytes):
    with av.open(io.BytesIO(data)) as container:
        return [f.time for f in container.decode(video=0)]


@pytest.mark.slow
def test_kill_9_mid_recording_then_recover_gives_a_playable_video_missing_at_most_the_unsent_part(seaweed, bucket, s3, classcap):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    station = subprocess.Popen(
        [*CLASSCAP, "record", "--source", "generated:classroom", "--audio", "drop", "--crf", "8",
         "--site", "n", "--room", "r", "--notice-confirmed", "--metrics-port", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = metrics_url(station)
    threading.Thread(target=station.stderr.read, daemon=True).start()  # the rest of its stderr, so it never blocks
    deadline = time.monotonic() + 240
    while upload_parts(s3, bucket) < 2:
        assert time.monotonic() < deadline and station.poll() is None, "the station uploaded no parts"
        time.sleep(0.3)
    captured = read_metrics(url)  # what the station had encoded, and held unsent, just before the cut
    station.send_signal(signal.SIGKILL)  # power cut: no cleanup of any kind
    station.wait(timeout=30)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "the interrupted upload is left in storage"
    manifest_key = next(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"].endswith("manifest.json"))
    assert json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())["status"] == "recording"

    run = classcap("storage", "recover", f"s3://{bucket}/recordings", env=env)
    assert run.returncode == 0, run.stderr
    [recovered] = run.result["recordings"]
    assert recovered["status"] == "recovered" and recovered["parts_used"] == recovered["parts_found"] >= 2
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    data = s3.get_object(Bucket=bucket, Key=recovered["video_key"])["Body"].read()
    times = decode_times(data)  # decodes to the end without error: it ends on a fragment boundary
    m = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert m["status"] == "recovered" and m["frames_out"] == len(times) == recovered["frames"] > 0
    assert m["recovery"]["decode_error"] is None and m["video"]["bytes"] == len(data)
    # what a kill loses is what was not sent: the fragment being muxed (its frames are counted as
    # encoded before it reaches the upload buffer), the part being filled and any waiting in memory
    part_bytes = 5 * 1024 * 1024
    assert len(data) >= recovered["parts_used"] * part_bytes
    encoded, waiting = metric(captured, "classcap_frames_out"), metric(captured, "classcap_upload_buffer_bytes")
    frames_a_part = len(times) / recovered["parts_used"]
    unsent_parts = 1 + math.ceil(waiting / part_bytes)
    # parts differ a little in how many frames they hold (x264's bits vary with the picture): a quarter
    keyframe_s = next(f.default for f in dataclasses.fields(EncoderSettings) if f.name == "keyframe_seconds")
    open_fragment = keyframe_s * (len(times) - 1) / (times[-1] - times[0])  # its seconds, in frames
    assert encoded - len(times) <= unsent_parts * frames_a_part * 1.25 + open_fragment, (encoded, len(times), frames_a_part)
    assert times[0] < 0.1, "what is kept is the start of the lesson, up to the cut"
    print(f"recovered {len(times)} frames ({times[-1]:.1f} s) from {recovered['parts_used']} parts of 5 MiB")

    verified = classcap("storage", "verify", m["recording_id"], env=env)
    assert verified.returncode == 0 and verified.result["ok"], verified.stdout + verified.stderr
    again = classcap("storage", "recover", f"s3://{bucket}/recordings", env=env)
    assert again.returncode == 0 and again.result["recordings"] == [], "recovering twice changes nothing"


@pytest.mark.slow
def test_verify_finds_a_tampered_video_and_keep_and_delete_act_on_one_recording(seaweed, bucket, s3, classcap, classroom_clip):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    made = [classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", env=env) for _ in range(2)]
    assert all(r.returncode == 0 for r in made), made[0].stderr
    first, second = (r.result for r in made)

    ok = classcap("storage", "verify", first["recording_id"], env=env)
    assert ok.returncode == 0 and ok.result["ok"] and ok.result["frames"] == first["frames_out"]

    data = s3.get_object(Bucket=bucket, Key=second["video_key"])["Body"].read()
    s3.put_object(Bucket=bucket, Key=second["video_key"], Body=data[:-1000])  # damage: a cut tail
    bad = classcap("storage", "verify", second["recording_id"], env=env)
    assert bad.returncode == 2 and not bad.result["ok"]
    assert any("size" in p for p in bad.result["problems"]) and any("SHA-256" in p for p in bad.result["problems"])

    kept = classcap("storage", "keep", first["recording_id"], env=env)
    assert kept.returncode == 0, kept.stderr
    for key in (first["video_key"], first["manifest_key"], first["video_key"].replace("video.mp4", "tracks.json.gz")):
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
        assert tags["keep"] == "true" and tags["retention-until"]

    refused = classcap("storage", "delete", second["recording_id"], env=env)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    deleted = classcap("storage", "delete", second["recording_id"], "--yes", env=env)
    assert deleted.returncode == 0, deleted.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not any(second["recording_id"] in k for k in keys)
    assert first["video_key"] in keys and first["manifest_key"] in keys, "only the named recording goes"
    missing = classcap("storage", "delete", second["recording_id"], "--yes", env=env)
    assert missing.returncode == 1 and f"no recording {second['recording_id']}" in missing.stderr


def rule_applies(rule: dict, key: str, tags: dict[str, str]) -> bool:
    """Whether an S3 lifecycle rule's filter selects an object, as S3 defines it: a prefix, a
    tag, or an And of a prefix and tags, every one of which must hold."""
    found = rule.get("Filter", {})
    both = found.get("And", found)
    wanted = both.get("Tags", []) + ([found["Tag"]] if "Tag" in found else [])
    return (rule["Status"] == "Enabled" and key.startswith(both.get("Prefix", ""))
            and all(tags.get(t["Key"]) == t["Value"] for t in wanted))


def test_new_objects_expire_unless_kept_and_init_sets_encryption_and_the_lifecycle(seaweed, bucket, s3, classcap,
                                                                                     classroom_clip):
    env = storage_env(seaweed)
    run = classcap("storage", "init", f"s3://{bucket}", "--apply-policy", env=env)
    assert run.returncode == 0, run.stderr
    assert run.result["steps"]["default encryption"] == "done" and run.result["steps"]["lifecycle"] == "done"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [expire, abort] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert expire["Expiration"]["Days"] == 730

    # A recording's objects are what the rule expires; once kept, the rule no longer selects them.
    made = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", env=env)
    assert made.returncode == 0, made.stderr
    keys = (made.result["video_key"], made.result["manifest_key"])

    def tags(key):
        return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}

    assert all(rule_applies(expire, key, tags(key)) for key in keys)
    # and nothing else expires them: the server stamped no time-to-live of its own on the files
    # (SeaweedFS can turn an expiration rule into a TTL at write time, which `keep` could not undo)
    for key in keys:
        with urllib.request.urlopen(f"{seaweed.filer_url}/buckets/{bucket}/{key}?metadata=true", timeout=10) as answer:
            assert json.loads(answer.read())["TtlSec"] == 0
    kept = classcap("storage", "keep", made.result["recording_id"], env=storage_env(seaweed, CLASSCAP_BUCKET=bucket))
    assert kept.returncode == 0, kept.stderr
    assert not any(rule_applies(expire, key, tags(key)) for key in keys)
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    denied = next(s for s in policy["Statement"] if s["Effect"] == "Deny" and "s3:GetObject" in s["Action"])
    assert denied["Resource"].endswith("/recordings/*") and "classcap-station" in denied["Principal"]["AWS"]
    library = {st["Sid"]: st for st in policy["Statement"] if "classcap-library" in st["Principal"]["AWS"]}
    assert "s3:GetObject" in library["LibraryReadsTagsAndDeletesRecordings"]["Action"], "the library plays recordings"
    assert library["LibraryNeverReadsTheGallery"]["Effect"] == "Deny" and library["LibraryNeverReadsTheGallery"]["Resource"].endswith("/gallery/*")
    unknown = classcap("storage", "init", "s3://no-such-bucket-here", env=env)
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr
