"""Re-blur retained recordings when the exclusion gallery changes (`classcap reblur` runs it).

Each recording is one task, run the same way by the local process pool and by Ray:

1. its manifest says which gallery it was blurred with; a current one is skipped (`--force`
   re-blurs anyway);
2. the video is read from storage in ranges, decoded, run through the privacy engine with the
   current gallery, re-encoded and uploaded as `video.next.mp4`, all in memory, with its track
   index as `tracks.next.json.gz`;
3. the new object is verified (frames decoded against the original's, SHA-256 against what
   was sent); the manifest then points at it and its index, with a `reblurred_from` entry;
4. they are copied over `video.mp4` and `tracks.json.gz`, the manifest points back there, and
   the `.next` objects go.

At every step the manifest points at a complete, verified video: a crash leaves either the old
recording or the new one, never neither, and a re-run resumes (step 4) or skips (done).
Re-blurring only adds redaction: the stored video was already blurred; raw footage is never kept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from botocore.exceptions import BotoCoreError, ClientError

from classcap.clock import utc_stamp
from pipeline.recording import sentence as _sentence
from pipeline.track_index import key_beside

log = logging.getLogger(__name__)

NEXT = "video.next.mp4"
CURRENT = "video.mp4"


@dataclass(frozen=True)
class ReblurTask:
    """Everything one clip needs, as plain values (it crosses process and cluster boundaries)."""

    storage: object  # upload.storage.StorageSettings
    bucket: str
    manifest_key: str
    force: bool = False
    index: int = 0
    total: int = 1
    say: object = None  # progress lines go to say(line), else to the log; a module-level function (pickled by name)
    full: bool = False  # re-encode the whole video even where its track index would do
    dry_run: bool = False  # judge from the index and say what would change; write nothing


def find_recordings(client, settings, bucket: str, prefix: str) -> list[str]:
    """Manifest keys under `prefix`, oldest first."""
    from upload.storage import explain

    keys = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith("/manifest.json"))
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "list the recordings") from err
    return sorted(keys)


def reblur_one(task: ReblurTask) -> dict:
    """Re-blurs one recording; returns its row of the summary (never raises for a bad clip)."""
    from upload.storage import make_client

    started = time.monotonic()
    client = make_client(task.storage)
    folder = task.manifest_key.rsplit("/", 1)[0]
    row = {"recording_id": folder.rsplit("/", 1)[-1], "manifest_key": task.manifest_key, "frames": 0, "faces_redacted": 0}
    try:
        row.update(_reblur(client, task, folder))
    except Exception as err:  # reported in the summary with its reason; the original is untouched
        log.debug("re-blurring %s failed", task.manifest_key, exc_info=True)
        _abort_next(client, task.bucket, folder)
        row.update(status="failed", reason=_sentence(err))
    row["seconds"] = round(time.monotonic() - started, 2)
    return row


def _reblur(client, task: ReblurTask, folder: str) -> dict:
    from pipeline.engine_factory import build_engine, load_gallery
    from pipeline.config import Placement, PipelineConfig
    from pipeline.recording import Recording
    from capture.file import FileSource
    from upload.admin import inspect_video
    from upload.manifest import EarlierVideo, VideoRecord, get_manifest, put_manifest
    from upload.s3file import S3ObjectReader
    from upload.storage import S3Location

    bucket, settings = task.bucket, task.storage
    manifest = get_manifest(client, bucket, task.manifest_key)
    gallery = load_gallery(client, settings, bucket)
    video = manifest.video
    tags = {"retention-until": manifest.retention_until or "", "keep": "false"}
    if video.key.endswith("/" + NEXT):  # a run stopped between verifying and promoting
        _promote(client, settings, bucket, task.manifest_key, manifest, tags)
        return {"status": "reblurred", "resumed": True, "frames": manifest.frames_out or 0}
    _delete_quietly(client, bucket, f"{folder}/{NEXT}")  # a stray copy of a finished promotion
    _abort_next(client, bucket, folder)  # a run stopped while uploading
    if manifest.status not in ("complete", "recovered"):
        return {"status": "skipped", "reason": f"the recording is {manifest.status}, not finished"}
    if not task.force and manifest.gallery_version == gallery.version:
        return {"status": "skipped", "reason": "already blurred with the current gallery"}

    old_key = video.key or f"{folder}/{CURRENT}"
    reader = S3ObjectReader(client, settings, bucket, old_key)
    label = f"[{task.index + 1}/{task.total}] {row_id(folder)}"
    if not task.full:
        from pipeline.reblur_index import NeedsFullPass

        try:
            return _reblur_by_index(client, task, folder, manifest, gallery, reader, tags)
        except NeedsFullPass as why:
            if task.dry_run:
                return {"status": "would re-encode", "mode": "full", "reason": f"a full pass: {why}",
                        "frames": manifest.frames_out or 0}
            (task.say or log.info)(f"  {label}: re-encoding the whole video, because {why}")
    elif task.dry_run:
        return {"status": "would re-encode", "mode": "full", "reason": "--full", "frames": manifest.frames_out or 0}
    audio = manifest.audio == "keep"
    reader.seek(0)  # the index's plan has read the fragment table
    source = FileSource(reader, with_audio=audio, name=f"{row_id(folder)}.mp4")
    config = PipelineConfig(policy=manifest.policy or "all", audio="keep" if audio else "drop")
    engine, hashes = build_engine(config, gallery, wait_for_identity=True)
    placement = Placement(
        site=manifest.site or "unknown-site", room=manifest.room or "unknown-room",
        station=manifest.station or "unknown-station",
    )
    expected = manifest.frames_out

    def progress(counters, _last=[0.0]):
        now = time.monotonic()
        if now - _last[0] >= 2:
            _last[0] = now
            (task.say or log.info)(f"  {label}: {counters.frames_out}/{expected} frames re-blurred")

    recording = Recording(
        source, engine, client, settings, S3Location(bucket, ""), placement, config, hashes,
        gallery_version=gallery.version, on_progress=progress, into=(row_id(folder), f"{folder}/{NEXT}"),
    )
    recording.tags = tags
    result = recording.run()
    new = result.manifest
    check = inspect_video(client, settings, bucket, f"{folder}/{NEXT}")
    problems = []
    if check.frames != new.frames_out or (expected is not None and check.frames != expected):
        problems.append(f"the new video has {check.frames} frames, the original {expected}")
    if check.sha256 != new.video.sha256 or check.error:
        problems.append(check.error or "the new video's checksum differs from what was uploaded")
    if problems:
        _delete_quietly(client, bucket, f"{folder}/{NEXT}")
        raise RuntimeError("; ".join(problems))
    earlier = EarlierVideo(at=utc_stamp(), sha256=video.sha256, bytes=video.bytes,
                           gallery_version=manifest.gallery_version, models=manifest.models)
    updated = manifest.changed(
        gallery_version=gallery.version,
        models=hashes,
        reblurred_from=(*manifest.reblurred_from, earlier),
        frames_out=check.frames,
        faces_detected=new.faces_detected,
        faces_redacted=new.faces_redacted,
        fail_closed_frames=new.fail_closed_frames,
        video=VideoRecord(key=f"{folder}/{NEXT}", parts=new.video.parts, bytes=check.size, sha256=check.sha256),
        tracks_index=new.tracks_index,  # the new video's (beside video.next.mp4 until promoted), or none
    )
    put_manifest(client, settings, bucket, task.manifest_key, updated, tags)
    _promote(client, settings, bucket, task.manifest_key, updated, tags)
    return {
        "status": "reblurred",
        "mode": "full",
        "frames": check.frames,
        "faces_redacted": new.faces_redacted,
        "fail_closed_frames": new.fail_closed_frames,
        "gallery_version": gallery.version,
    }


def _reblur_by_index(client, task: ReblurTask, folder: str, manifest, gallery, reader, tags: dict) -> dict:
    """Judge the shown tracks again from the index and re-encode only the fragments that change
    (`pipeline/reblur_index.py`); raises NeedsFullPass where the index cannot do it."""
    from blur.identity import model_hashes as identity_hashes
    from pipeline.reblur_index import apply, plan
    from upload.manifest import EarlierVideo, put_manifest

    bucket, settings = task.bucket, task.storage
    the_plan = plan(client, settings, bucket, manifest, gallery, reader)
    layout = the_plan.layout
    row = {
        "mode": "index", "tracks": the_plan.tracks, "tracks_judged": the_plan.judged, "tracks_looked_again": the_plan.looked_again,
        "tracks_hidden": len(the_plan.hidden), "fragments": len(layout.fragments),
        "fragments_changed": len(the_plan.fragments), "frames": the_plan.frames_to_encode,
        "views_decoded": the_plan.views_decoded, "judge_seconds": round(the_plan.seconds, 2),
    }
    if task.dry_run:
        return {**row, "status": "would change" if the_plan.fragments else "would not change",
                "expected_seconds": round(_expected_seconds(the_plan, manifest, reader), 1)}
    models = {**manifest.models, **identity_hashes()}
    if gallery.uses_sface:
        from blur.models import model_hashes as file_hashes
        from blur.sface import SFACE

        models |= file_hashes([SFACE])
    if not the_plan.fragments:  # nobody shown is hidden now: the video stays; the manifest says it was judged
        put_manifest(client, settings, bucket, task.manifest_key,
                     manifest.changed(gallery_version=gallery.version, models=models), tags)
        return {**row, "status": "checked", "reason": "no shown face is excluded by the current gallery",
                "gallery_version": gallery.version}
    video, index = apply(client, settings, bucket, f"{folder}/{NEXT}", manifest, the_plan, reader, tags)
    earlier = EarlierVideo(at=utc_stamp(), sha256=manifest.video.sha256, bytes=manifest.video.bytes,
                           gallery_version=manifest.gallery_version, models=manifest.models)
    added = sum(len(boxes) for boxes in the_plan.redactions.values())
    updated = manifest.changed(
        gallery_version=gallery.version, models=models, reblurred_from=(*manifest.reblurred_from, earlier),
        faces_redacted=(manifest.faces_redacted or 0) + added, video=video, tracks_index=index,
    )
    put_manifest(client, settings, bucket, task.manifest_key, updated, tags)
    _promote(client, settings, bucket, task.manifest_key, updated, tags)
    return {**row, "status": "reblurred", "faces_redacted": added, "gallery_version": gallery.version}


def _expected_seconds(the_plan, manifest, reader) -> float:
    """How long the re-blur itself would take: judging as it just took, re-encoding at the pace
    measured on the first fragment to change (encoded in memory, then dropped), and copying the
    rest at the pace the index and frames were just read."""
    from blur.redact import REDACTORS, face_region
    from blur.types import Box
    from upload.encoder import EncoderSettings
    from upload.splice import reencode

    seconds = the_plan.seconds
    if not the_plan.fragments:
        return seconds
    first = the_plan.fragments[0]
    started = time.monotonic()

    def edit(frame, image):
        for box in the_plan.redactions.get(frame, ()):
            REDACTORS["pixelate"](image, face_region(Box(*box), manifest.width, manifest.height))

    reencode(reader, the_plan.layout, first, EncoderSettings.from_record(manifest.encoding, manifest.width, manifest.height), edit)
    per_frame = (time.monotonic() - started) / max(1, the_plan.layout.fragments[first].frames)
    return seconds + per_frame * the_plan.frames_to_encode


def _promote(client, settings, bucket: str, manifest_key: str, manifest, tags: dict) -> None:
    """video.next.mp4 → video.mp4 (a server-side copy), the manifest back to it, the copy gone."""
    from upload.manifest import put_manifest
    from upload.storage import explain

    folder = manifest_key.rsplit("/", 1)[0]
    source, target = f"{folder}/{NEXT}", f"{folder}/{CURRENT}"
    try:
        client.copy_object(
            Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source},
            ServerSideEncryption="AES256", TaggingDirective="COPY", MetadataDirective="COPY",
        )
        size = client.head_object(Bucket=bucket, Key=target)["ContentLength"]
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "replace the original video") from err
    if size != manifest.video.bytes:
        raise RuntimeError(f"the copied video has {size} bytes, not {manifest.video.bytes}")
    index = manifest.tracks_index
    if index is not None and index.key == key_beside(source):  # the new video's index goes beside it too
        try:
            client.copy_object(
                Bucket=bucket, Key=key_beside(target), CopySource={"Bucket": bucket, "Key": index.key},
                ServerSideEncryption="AES256", TaggingDirective="COPY", MetadataDirective="COPY",
            )
        except (ClientError, BotoCoreError) as err:
            raise explain(err, settings, bucket, "replace the track index") from err
        index = replace(index, key=key_beside(target))
    done = manifest.changed(video=replace(manifest.video, key=target), tracks_index=index)
    put_manifest(client, settings, bucket, manifest_key, done, tags)
    _delete_quietly(client, bucket, source)
    _delete_quietly(client, bucket, key_beside(source))


def _abort_next(client, bucket: str, folder: str) -> None:
    try:
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=f"{folder}/{NEXT}").get("Uploads", [])
        for u in uploads:
            client.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    except (ClientError, BotoCoreError) as err:
        log.warning("could not clean up an interrupted re-blur upload in %s: %s", folder, err)


def _delete_quietly(client, bucket: str, key: str) -> None:
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as err:
        log.warning("could not delete %s: %s", key, err)


def _died(task: ReblurTask, err: BaseException) -> dict:
    """The row of a task whose worker process itself died (the task reports its own failures)."""
    return {"recording_id": row_id(task.manifest_key.rsplit("/", 1)[0]), "status": "failed",
            "reason": _sentence(err), "frames": 0, "faces_redacted": 0}


def row_id(folder: str) -> str:
    return folder.rsplit("/", 1)[-1]


# -- engines: the same task function, a local process pool or a Ray cluster


def run_local(tasks: list[ReblurTask], workers: int, retries: int, on_done) -> list[dict]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: the workers start their own threads and identity processes
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:

        def next_done(running):
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            future = next(iter(done))
            try:
                return future, future.result()
            except Exception as err:  # the worker process itself died
                return future, _died(running[future], err)

        return _run_all(tasks, lambda task: pool.submit(reblur_one, task), next_done, retries, on_done)


def run_ray(tasks: list[ReblurTask], address: str | None, retries: int, on_done) -> list[dict]:
    try:
        import ray
    except ImportError as err:
        from pipeline.config import ConfigError

        raise ConfigError("The Ray engine needs Ray: pip install 'classcap[cluster]'.") from err
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=True, include_dashboard=False, configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1)(reblur_one)

        def next_done(running):
            ready, _ = ray.wait(list(running), num_returns=1)
            try:
                return ready[0], ray.get(ready[0])
            except Exception as err:  # the task's worker died
                return ready[0], _died(running[ready[0]], err)

        return _run_all(tasks, remote.remote, next_done, retries, on_done)
    finally:
        if started_here:
            ray.shutdown()


def _run_all(tasks: list[ReblurTask], submit, next_done, retries: int, on_done) -> list[dict]:
    """Every task through an engine, a failed one again up to `retries` times; rows in task order.

    `submit(task)` starts a task and returns its handle; `next_done(running)` waits for one of
    the running handles and returns it with its row.
    """
    results: dict[int, dict] = {}
    attempts = {t.index: 1 for t in tasks}
    running = {submit(t): t for t in tasks}
    while running:
        handle, row = next_done(running)
        task = running.pop(handle)
        if row["status"] == "failed" and attempts[task.index] <= retries:
            log.warning("retrying %s: %s", row["recording_id"], row.get("reason"))
            attempts[task.index] += 1
            running[submit(task)] = task
            continue
        row["attempts"] = attempts[task.index]
        results[task.index] = row
        on_done(row, len(results), len(tasks))
    return [results[t.index] for t in tasks]
