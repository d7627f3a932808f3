"""The exclusion gallery from the command line, and `exclude` redacting exactly the excluded student."""

import io
import json

import av
import cv2
import numpy as np
import pytest

from conftest import storage_env
from fixtures.faces import default_cache_dir, load_faces
from fixtures.measure import MIN_VISIBLE, face_left


def photo(name):
    load_faces()  # makes sure the registry photos are in the cache
    return default_cache_dir() / name


def manifest_of(s3, bucket, run):
    return json.loads(s3.get_object(Bucket=bucket, Key=run.result["manifest_key"])["Body"].read())


@pytest.mark.slow
def test_add_list_remove_and_refusals(classcap, seaweed, bucket, s3, tmp_path):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    add = classcap("gallery", "add", "--id", "s-0042", "--role", "excluded", photo("biden.jpg"), env=env)
    assert add.returncode == 0, add.stderr
    assert add.result["embeddings"] == 1 and add.result["sface_embeddings"] == 1  # both models' embeddings
    # only embeddings, encrypted, under the pseudonymous id: never the photo
    [obj] = s3.list_objects_v2(Bucket=bucket, Prefix="gallery/")["Contents"]
    assert obj["Key"] == "gallery/people/s-0042.json"
    assert s3.head_object(Bucket=bucket, Key=obj["Key"])["ServerSideEncryption"] == "AES256"
    stored = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    assert len(stored) < 20_000 and b"JFIF" not in stored and b"biden" not in stored
    listing = classcap("gallery", "list", env=env)
    assert listing.result["people"] == [{"person_id": "s-0042", "role": "excluded", "embeddings": 1, "sface_embeddings": 1}]
    assert "second model" not in listing.stderr
    # a photo with several faces, one with none, and a file that is no image are refused
    group = classcap("gallery", "add", "--id", "s-0043", "--role", "excluded", photo("t1.jpg"), env=env)
    assert group.returncode != 0 and "6 faces" in group.stderr
    wall = tmp_path / "wall.png"
    wall.write_bytes(cv2.imencode(".png", np.full((400, 600, 3), 200, np.uint8))[1].tobytes())
    empty = classcap("gallery", "add", "--id", "s-0043", "--role", "excluded", wall, env=env)
    assert empty.returncode != 0 and "no face" in empty.stderr
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")
    bad = classcap("gallery", "add", "--id", "s-0043", "--role", "excluded", notes, env=env)
    assert bad.returncode != 0 and "not an image" in bad.stderr
    named = classcap("gallery", "add", "--id", "Jane Smith", "--role", "excluded", photo("biden.jpg"), env=env)
    assert named.returncode != 0 and "pseudonymous" in named.stderr
    # removing changes the version; removing again says so
    removed = classcap("gallery", "remove", "--id", "s-0042", env=env)
    assert removed.returncode == 0 and removed.result["gallery_version"] != add.result["gallery_version"]
    again = classcap("gallery", "remove", "--id", "s-0042", env=env)
    assert again.returncode != 0 and "not in the gallery" in again.stderr


@pytest.mark.slow
def test_a_person_enrolled_by_an_earlier_release_is_named_until_added_again(classcap, seaweed, bucket, s3):
    # given an entry as releases before SFace wrote it: schema /1, dlib's embeddings only
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    first = classcap("gallery", "add", "--id", "s-0050", "--role", "excluded", photo("biden.jpg"), env=env)
    assert first.returncode == 0, first.stderr
    key = "gallery/people/s-0050.json"
    doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    old = {"schema": "classcap.gallery-entry/1", **{k: doc[k] for k in ("person_id", "role", "embeddings")}}
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(old).encode(), ServerSideEncryption="AES256")
    # then it is still read, and the technician is told what it costs and how to fix it
    listing = classcap("gallery", "list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert listing.result["people"] == [{"person_id": "s-0050", "role": "excluded", "embeddings": 1, "sface_embeddings": 0}]
    assert "s-0050 enrolled before" in listing.stderr and "gallery add" in listing.stderr
    # and adding a photo again gives the entry SFace embeddings, keeping the old ones
    again = classcap("gallery", "add", "--id", "s-0050", "--role", "excluded", photo("biden.jpg"), env=env)
    assert again.returncode == 0, again.stderr
    assert (again.result["embeddings"], again.result["sface_embeddings"]) == (2, 1)
    assert "second model" not in classcap("gallery", "list", env=env).stderr


@pytest.mark.slow
def test_a_gallery_change_changes_the_manifests_gallery_version(classcap, seaweed, classroom_clip, bucket, s3):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    before = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", env=env)
    assert classcap("gallery", "add", "--id", "s-1", "--role", "excluded", photo("biden.jpg"), env=env).returncode == 0
    after = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", env=env)
    v0, v1 = manifest_of(s3, bucket, before)["gallery_version"], manifest_of(s3, bucket, after)["gallery_version"]
    assert v0 and v1 and v0 != v1
    assert v1 == classcap("gallery", "list", env=env).result["gallery_version"]


def test_exclude_hides_the_excluded_student_and_shows_everyone_else(classcap, seaweed, classroom_clip, bucket, s3):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    assert classcap("gallery", "add", "--id", "s-1", "--role", "excluded", photo("biden.jpg"), env=env).returncode == 0
    run = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", "--policy", "exclude", env=env)
    assert run.returncode == 0, run.stderr
    data = s3.get_object(Bucket=bucket, Key=run.result["video_key"])["Body"].read()
    with av.open(io.BytesIO(data)) as c:
        outputs = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(classroom_clip.path)) as c:
        inputs = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    shown, total, leaks = 0, 0, []
    for i, faces in enumerate(classroom_clip.truth):
        for face in faces:
            if face.visible_fraction < MIN_VISIBLE:
                continue
            left = face_left(inputs[i], outputs[i], face)
            if face.identity == "biden":
                leaks += [i] if left else []
            else:
                total += 1
                shown += left
    assert any(f.identity == "biden" for faces in classroom_clip.truth for f in faces)
    assert leaks == []
    assert shown / total >= 0.9, (shown, total)
    assert manifest_of(s3, bucket, run)["policy"] == "exclude"


def test_background_blurs_the_room_and_keeps_the_people_sharp(classcap, seaweed, classroom_clip, bucket, s3):
    run = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}", "--policy", "background", "--audio", "drop")
    assert run.returncode == 0, run.stderr
    data = s3.get_object(Bucket=bucket, Key=run.result["video_key"])["Body"].read()
    with av.open(io.BytesIO(data)) as c:
        output = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")
    with av.open(str(classroom_clip.path)) as c:
        original = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")

    def detail(image, y0, y1, x0, x1):
        patch = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
        return cv2.Laplacian(patch, cv2.CV_64F).var()

    # the chalkboard's writing (top middle of the generated room) is blurred away ...
    assert detail(output, 50, 190, 340, 940) < 0.2 * detail(original, 50, 190, 340, 940)
    # ... while the teacher's body below their face keeps its edges
    teacher = [f for f in classroom_clip.truth[0] if f.role == "teacher"][0]
    x0, y0, x1, y1 = teacher.box
    body = (y1 + 10, min(720, y1 + 120), max(0, x0 - 20), min(1280, x1 + 20))
    assert detail(output, *body) > 0.5 * detail(original, *body)
    # and every face is still hidden (background adds to the face policy, never replaces it)
    assert not any(face_left(original, output, f) for f in classroom_clip.truth[0] if f.visible_fraction >= MIN_VISIBLE)
