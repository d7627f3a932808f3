"""`classcap bench --reblur`: the index-driven re-blur against the full pass, on one recording, in one run.

The lesson is a camera over the wall of 43 real faces (`fixtures.photowall`), recorded under
`exclude` with only the teacher enrolled. A student sits in view for the last `share` of it (the
wall is seen again, with his card in the middle) and nowhere before. He is then enrolled as
excluded, from the one photograph of him the recording never shows, and the same stored
recording (two copies of it) is re-blurred twice: from its track index, and by the full pass.
Both are timed in this run, so their ratio is a figure these noisy machines can give; the
independent check (`fixtures.measure.face_left`, against the clip's ground truth) counts the
frames in which he is still recognisable after each.

Nothing goes to local disk: the clip is encoded into memory, the storage is an embedded
SeaweedFS, and the frames compared are decoded one at a time.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

STUDENT = "john_schneider"  # one of the wall's card people, with an enrolment photograph of his own
TEACHER_PHOTO = "obama.jpg"


class _Lesson:
    """The wall without the student, then the wall with him in the middle, as one clip of
    continuous frame numbers (what `fixtures.classroom.write_mp4` reads)."""

    def __init__(self, seconds: float, share: float):
        from fixtures.photowall import PEOPLE, PhotoWall, WallSpec

        with_him = max(2.0, round(seconds * share, 1))
        others = tuple(p for p in PEOPLE if p != STUDENT)
        self.parts = [
            PhotoWall(WallSpec(seed=64, duration_s=seconds - with_him, shots=3, walkers=0, portraits=others)),
            PhotoWall(WallSpec(seed=65, duration_s=with_him, shots=1, walkers=0, present=(STUDENT,))),
        ]
        self.spec = self.parts[0].spec

    def frames(self):
        from fixtures.classroom import SyntheticFrame

        offset = 0
        for part in self.parts:
            for frame in part.frames():
                index = offset + frame.index
                yield SyntheticFrame(index, index / self.spec.fps, frame.image, frame.faces)
            offset += part.spec.n_frames

    def truth(self) -> list:
        return [faces for part in self.parts for faces in part.ground_truth()]


def reblur_bench(seconds: float, share: float = 0.1, say: Callable[[str], None] = log.info) -> dict:
    """Figures of both re-blurs of one `seconds`-long recording (the student in view `share` of it)."""
    from fixtures.classroom import write_mp4
    from fixtures.faces import JOHNS, _john_file, default_cache_dir, load_faces

    from blur.identity import GalleryEntry, entry_bytes
    from capture.file import FileSource
    from pipeline.enrolment import embed_enrolment
    from pipeline.config import Placement, PipelineConfig
    from pipeline.reblur import ReblurTask, reblur_one
    from pipeline.run import run_recording
    from upload.gallery_store import put_person
    from upload.seaweed import SeaweedServer
    from upload.storage import S3Location, StorageSettings, make_client

    import numpy as np

    say(f"drawing a {seconds:g} s lesson of the 43-face wall, {STUDENT} in view for the last {share:.0%}...")
    lesson = _Lesson(seconds, share)
    buffer = io.BytesIO()
    write_mp4(lesson, buffer, with_audio=False)
    clip = buffer.getvalue()
    truth = lesson.truth()
    in_view = sum(1 for faces in truth if any(f.identity == STUDENT and f.visible_fraction > 0 for f in faces))

    load_faces()
    cache = default_cache_dir()
    student_photo = cache / _john_file(next(path for who, path, _, _ in JOHNS if who == STUDENT))

    def enrol(client, storage, person_id: str, role: str, photo: Path) -> None:
        pairs = embed_enrolment([photo])
        entry = GalleryEntry(person_id, role, np.stack([d for d, _ in pairs]), np.stack([s for _, s in pairs]))
        put_person(client, storage, "classcap-bench", person_id, entry_bytes(entry))

    with SeaweedServer() as server:
        storage = StorageSettings(endpoint_url=server.endpoint, access_key=server.access_key, secret_key=server.secret_key)
        client = make_client(storage)
        client.create_bucket(Bucket="classcap-bench")
        enrol(client, storage, "t-1", "staff", cache / TEACHER_PHOTO)
        say("recording it under exclude, only the teacher enrolled...")
        made = run_recording(FileSource(io.BytesIO(clip), name="lesson.mp4"), S3Location("classcap-bench", "recordings"),
                             Placement(site="bench", room="bench", station="bench"), PipelineConfig(policy="exclude"),
                             storage, say=say)
        first = made["manifest_key"]
        second = _copy_recording(client, storage, "classcap-bench", first)
        stored = client.get_object(Bucket="classcap-bench", Key=made["video_key"])["Body"].read()
        enrol(client, storage, "s-1", "excluded", student_photo)
        say("re-blurring it from its track index...")
        by_index = reblur_one(ReblurTask(storage, "classcap-bench", first, say=say))
        say("re-blurring the copy by the full pass...")
        full = reblur_one(ReblurTask(storage, "classcap-bench", second, full=True, say=say))
        for row in (by_index, full):
            if row.get("status") != "reblurred":
                raise RuntimeError(f"the {row.get('mode', 'full')} re-blur did not re-blur: {row.get('reason', row.get('status'))}")
        outputs = {}
        for name, key in (("index", first), ("full", second)):
            from upload.manifest import get_manifest

            video_key = get_manifest(client, "classcap-bench", key).video.key
            outputs[name] = client.get_object(Bucket="classcap-bench", Key=video_key)["Body"].read()
    say("counting the frames in which he is still recognisable...")
    left = {name: _frames_left(clip, data, truth) for name, data in outputs.items()}
    frames = len(truth)
    return {
        "clip": f"{seconds:g} s of the 43-face wall at 1280x720, {STUDENT} in view in {in_view} of {frames} frames",
        "frames": frames,
        "student_frames": in_view,
        "student_share": round(in_view / frames, 3),
        "index_seconds": by_index["seconds"],
        "full_seconds": full["seconds"],
        "index_vs_full": round(full["seconds"] / max(by_index["seconds"], 1e-9), 2),
        "index_judge_seconds": by_index.get("judge_seconds"),
        "tracks": by_index.get("tracks"),
        "tracks_judged": by_index.get("tracks_judged"),
        "tracks_looked_again": by_index.get("tracks_looked_again"),
        "tracks_hidden": by_index.get("tracks_hidden"),
        "views_decoded": by_index.get("views_decoded"),
        "fragments": by_index.get("fragments"),
        "fragments_changed": by_index.get("fragments_changed"),
        "frames_reencoded": by_index.get("frames"),
        "fragments_differing": _fragments_differing(stored, outputs["index"]),
        "student_left_index": left["index"],
        "student_left_full": left["full"],
        "full_fps": round(frames / max(full["seconds"], 1e-9), 1),
        "index_fps": round(frames / max(by_index["seconds"], 1e-9), 1),
    }


def _copy_recording(client, storage, bucket: str, manifest_key: str) -> str:
    """A second recording with the same video and index (server-side copies, tags kept), whose
    manifest points at its own copies; returns its manifest key."""
    from dataclasses import replace

    from upload.manifest import get_manifest, put_manifest

    manifest = get_manifest(client, bucket, manifest_key)
    folder = manifest_key.rsplit("/", 1)[0]
    twin = folder + "-full"

    def copy(key: str) -> str:
        target = twin + key[len(folder):]
        client.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": key}, ServerSideEncryption="AES256")
        return target

    video = replace(manifest.video, key=copy(manifest.video.key))
    index = replace(manifest.tracks_index, key=copy(manifest.tracks_index.key))
    tags = {"retention-until": manifest.retention_until or "", "keep": "false"}
    put_manifest(client, storage, bucket, twin + "/manifest.json", manifest.changed(video=video, tracks_index=index), tags)
    return twin + "/manifest.json"


def _frames_left(clip: bytes, output: bytes, truth: list) -> int:
    """Frames in which the student is still recognisable in `output`, decoded beside the clip one frame at a time."""
    import av

    from fixtures.measure import MIN_VISIBLE, face_left

    left = 0
    with av.open(io.BytesIO(clip)) as a, av.open(io.BytesIO(output)) as b:
        for i, (before, after) in enumerate(zip(a.decode(video=0), b.decode(video=0))):
            faces = [f for f in truth[i] if f.identity == STUDENT and f.visible_fraction >= MIN_VISIBLE]
            if faces:
                x, y = before.to_ndarray(format="rgb24"), after.to_ndarray(format="rgb24")
                left += any(face_left(x, y, f) for f in faces)
    return left


def _fragments_differing(stored: bytes, output: bytes) -> int | None:
    """How many fragments of `output` differ from the stored ones byte for byte (None where the
    two do not have the same fragments): a re-blur that re-encoded N fragments and copied the rest
    differs in N."""
    from upload.splice import read_layout

    old, new = read_layout(io.BytesIO(stored)), read_layout(io.BytesIO(output))
    if [f.frames for f in old.fragments] != [f.frames for f in new.fragments]:
        return None
    return sum(stored[a.offset:a.offset + a.size] != output[b.offset:b.offset + b.size]
               for a, b in zip(old.fragments, new.fragments))
