"""`classcap bench`: speed and memory figures, measured in one run on one clip.

The clip (the generated 1280×720 classroom by default, encoded into memory) is played twice
through the full pipeline into an embedded SeaweedFS on loopback:

- live: paced at its own frame rate like a camera, so the pipeline must keep up or drop the
  oldest raw frames; gives sustained fps, dropped frames, and capture → part-buffer latency;
- batch: as fast as the pipeline goes; gives batch fps, and the CPU it took a frame, so a batch
  rate can be read against its ceiling: the cores this process may use, divided by the CPU a
  frame costs. A rate near its ceiling is bound by CPU, not by a stage waiting on another.

If `deface` (PyPI) is installed, its detector and blur run on the same clip in the same run (in
memory), and the ratio of the two batch speeds is reported: timings on these machines are only
comparable within one run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from capture.file import FileSource
from capture.paced import PacedSource
from pipeline.config import Placement, PipelineConfig
from upload.storage import S3Location, StorageSettings, make_client

log = logging.getLogger(__name__)


def classroom_clip(seconds: float) -> bytes:
    from fixtures.classroom import Classroom, ClassroomSpec, write_mp4

    buffer = io.BytesIO()
    write_mp4(Classroom(ClassroomSpec(seed=1, duration_s=seconds)), buffer)
    return buffer.getvalue()


def deface_fps(clip: bytes, frames: int) -> float | None:
    """deface's throughput on the same clip, with deface's own parts at its defaults.

    `deface IN -o OUT` only reads and writes files, and a benchmark must put no video on disk,
    so this runs its per-frame loop (`deface.deface.video_detect`) in memory: its CenterFace at
    full resolution, threshold 0.2, its ellipse blur at mask scale 1.3, then libx264 at its
    defaults, as deface's ffmpeg writer uses. Decoding and encoding go through PyAV instead of
    imageio's ffmpeg pipes. Model loading counts, as it does in deface's own run.
    """
    try:
        from deface.centerface import CenterFace
        from deface.deface import anonymize_frame
    except ImportError:
        return None
    import av

    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):  # it prints its execution provider; stdout is our JSON line
        centerface = CenterFace()
    with av.open(io.BytesIO(clip)) as source, av.open(io.BytesIO(), "w", format="mp4") as sink:
        video = source.streams.video[0]
        stream = sink.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for frame in source.decode(video):
            image = frame.to_ndarray(format="rgb24")
            found, _ = centerface(image, threshold=0.2)
            anonymize_frame(found, image, mask_scale=1.3, replacewith="blur", ellipse=True, draw_scores=False,
                            replaceimg=None, mosaicsize=20)
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        sink.mux(stream.encode(None))
    return round(frames / (time.monotonic() - started), 2)


def bench(input_path: str | None, seconds: float, policy: str, say: Callable[[str], None] = log.info,
          progress=None) -> dict:
    """The figures of one clip (a file, else `seconds` of the generated classroom) under `policy`."""
    from pipeline.run import peak_rss_mb, run_recording
    from upload.seaweed import SeaweedServer

    clip = Path(input_path).read_bytes() if input_path else classroom_clip(seconds)
    name = Path(input_path).name if input_path else "classroom.mp4"
    config = PipelineConfig(policy=policy)
    placement = Placement(site="bench", room="bench", station="bench")
    with SeaweedServer() as server:
        storage = StorageSettings(endpoint_url=server.endpoint, access_key=server.access_key, secret_key=server.secret_key)
        make_client(storage).create_bucket(Bucket="classcap-bench")
        if config.policy.split(",")[0] in ("exclude", "allow"):
            enrol_eval_gallery(storage, "classcap-bench")
        location = S3Location("classcap-bench", "recordings")
        say("live: playing the clip at its own frame rate...")
        live = run_recording(PacedSource(FileSource(io.BytesIO(clip), name=name)), location, placement, config, storage,
                             progress=progress, say=say)
        say("batch: the same clip as fast as it goes...")
        batch = run_recording(FileSource(io.BytesIO(clip), name=name), location, placement, config, storage,
                              progress=progress, say=say)
    source = FileSource(io.BytesIO(clip), name=name)
    width, height, frames = source.info.width, source.info.height, source.info.frames or batch["frames_out"]
    source.close()
    cores = len(os.sched_getaffinity(0))
    cpu_ms = batch["cpu_seconds"] * 1000 / max(batch["frames_out"], 1)
    ours_rss = peak_rss_mb()  # before deface runs in this process: its memory is not ours
    say("deface: the same clip...")
    theirs = deface_fps(clip, frames)

    return {
        # sustained: first frame captured to last frame encoded (model loading and the identity
        # worker's start are not the camera's frame rate); whole-run rates beside them
        "live_fps": live["sustained_fps"],
        "live_run_fps": live["fps"],
        "batch_run_fps": batch["fps"],
        "privacy_ms_per_frame": batch["privacy_ms_per_frame"],
        "encode_ms_per_frame": batch["encode_ms_per_frame"],
        "dropped_frames": live["dropped_frames"],
        "latency_p50_ms": live["latency_p50_ms"],
        "latency_p99_ms": live["latency_p99_ms"],
        "batch_fps": batch["sustained_fps"],
        "batch_latency_p99_ms": batch["latency_p99_ms"],
        # over the span of batch_run_fps: CPU a frame, cores it kept busy, and the rate that CPU
        # a frame allows on all of this machine's cores
        "batch_cpu_ms_per_frame": round(cpu_ms, 1),
        "batch_cores_used": round(batch["cpu_seconds"] / max(batch["seconds"], 1e-9), 2),
        "batch_fps_ceiling": round(cores * 1000 / max(cpu_ms, 1e-9), 1),
        "cores": cores,
        "peak_rss_mb": ours_rss,
        "width": width,
        "height": height,
        "frames": frames,
        "policy": config.policy,
        "deface_fps": theirs,
        "batch_vs_deface": round(batch["fps"] / theirs, 2) if theirs else None,
    }


def enrol_eval_gallery(storage, bucket: str) -> None:
    """The evaluation's gallery (registry faces), so `exclude` and `allow` do identity work."""
    from blur.identity import entry_bytes
    from pipeline.evaluate import eval_gallery
    from upload.gallery_store import put_person

    client = make_client(storage)
    # both evaluations' people: the generated classrooms' and the real-photograph suite's
    for entry in eval_gallery("easy").entries + eval_gallery("real").entries:
        put_person(client, storage, bucket, entry.person_id, entry_bytes(entry))
