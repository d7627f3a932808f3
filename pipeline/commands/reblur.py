"""`classcap reblur s3://BUCKET/PREFIX`: re-blur retained recordings with the current gallery."""

from __future__ import annotations

import os
import time

from pipeline.commands.common import config_option, print_result, say
from pipeline.config import ConfigError
from pipeline.engine_factory import load_gallery
from pipeline.reblur import NEXT, ReblurTask, find_recordings, run_local, run_ray
from pipeline.station import load_station
from upload.manifest import get_manifest
from upload.storage import check_bucket, make_client, parse_s3_url


def add_parser(commands) -> None:
    reblur = commands.add_parser("reblur", help="re-blur retained recordings with the current exclusion gallery")
    reblur.add_argument("prefix_url", metavar="s3://BUCKET/PREFIX")
    reblur.add_argument("--engine", choices=("local", "ray"), default="local", help="local process pool (default) or a Ray cluster")
    reblur.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    reblur.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    reblur.add_argument("--force", action="store_true", help="re-blur recordings already blurred with the current gallery")
    reblur.add_argument("--full", action="store_true",
                        help="re-encode every frame, even of recordings whose track index would let it change only some")
    reblur.add_argument("--dry-run", action="store_true",
                        help="judge each recording from its index and say what would change and how long it would take; write nothing")
    reblur.add_argument("--retries", type=int, default=1, help="times a failed clip is tried again (default 1)")
    config_option(reblur)
    reblur.set_defaults(run=reblur_command)


class ArchiveProgress:
    """How much of the archive's video is done, and how long the rest should take at the rate so far
    (by seconds of video, not clips: an hour-long lesson is not a five-minute one)."""

    def __init__(self, total_seconds: float, clock=time.monotonic):
        self.total, self.done, self.clock = total_seconds, 0.0, clock
        self.started = clock()

    def add(self, seconds: float) -> str:
        self.done += seconds
        hours = f"{self.done / 3600:.2f} of {self.total / 3600:.2f} h of video"
        if not self.done or self.done >= self.total:
            return hours + " done"
        left = (self.clock() - self.started) / self.done * (self.total - self.done)
        return f"{hours} done, about {_duration(left)} left"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def reblur_command(args) -> int:
    location = parse_s3_url(args.prefix_url)
    station = load_station(getattr(args, "config", None))
    settings = station.storage_settings()
    client = make_client(settings)
    check_bucket(client, settings, location.bucket)
    workers = args.workers or os.cpu_count() or 1
    if workers < 1:
        raise ConfigError("--workers must be at least 1.")
    gallery = load_gallery(client, settings, location.bucket)
    prefix = (location.prefix + "/") if location.prefix else ""
    started = time.monotonic()
    keys = find_recordings(client, settings, location.bucket, prefix)
    todo, rows, seconds_of = [], [], {}
    for key in keys:
        manifest = get_manifest(client, location.bucket, key)
        stranded = manifest.video.key.endswith("/" + NEXT)
        if not args.force and not stranded and manifest.gallery_version == gallery.version:
            rows.append({"recording_id": manifest.recording_id, "status": "skipped",
                         "reason": "already blurred with the current gallery", "frames": 0, "faces_redacted": 0})
        else:
            todo.append(key)
            rate = manifest.encoding.frame_rate if manifest.encoding is not None else (30, 1)
            seconds_of[key] = (manifest.frames_out or 0) * rate[1] / rate[0]
    say(f"{len(keys)} recordings under {location}: {len(todo)} to re-blur with gallery {gallery.version}, "
        f"{len(rows)} already current; engine {args.engine}, {workers if args.engine == 'local' else 'cluster'} workers")
    tasks = [ReblurTask(settings, location.bucket, key, args.force, i, len(todo), say, full=args.full, dry_run=args.dry_run)
             for i, key in enumerate(todo)]

    eta = ArchiveProgress(sum(seconds_of.values()))

    def on_done(row, done, total):
        what = row["status"] if row["status"] != "failed" else f"FAILED: {row.get('reason')}"
        say(f"[{done}/{total} clips] {row['recording_id']}: {what}; {eta.add(seconds_of.get(row.get('manifest_key'), 0))}")

    if args.engine == "ray":
        results = run_ray(tasks, args.address or os.environ.get("RAY_ADDRESS"), args.retries, on_done) if tasks else []
    else:
        results = run_local(tasks, min(workers, max(1, len(tasks))), args.retries, on_done) if tasks else []
    rows.extend(results)
    seconds = time.monotonic() - started
    statuses = ("would change", "would not change", "would re-encode") if args.dry_run else ("reblurred", "checked")
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in (*statuses, "skipped", "failed")}
    frames = sum(r.get("frames", 0) for r in rows if r["status"] in ("reblurred", "would change", "would re-encode"))
    print(f"{'RECORDING':<28} {'STATUS':<16} {'MODE':<5} {'FRAGMENTS':>11} {'FRAMES':>7} {'FACES':>7}  REASON")
    for r in rows:
        fragments = f"{r['fragments_changed']}/{r['fragments']}" if "fragments" in r else ""
        print(f"{r['recording_id'] or '?':<28} {r['status']:<16} {r.get('mode', ''):<5} {fragments:>11} {r.get('frames', 0):>7} "
              f"{r.get('faces_redacted', 0):>7}  {r.get('reason', '')}")
    if args.dry_run:
        expected = sum(r.get("expected_seconds", 0) for r in rows)
        print(f"would change {counts['would change']} recordings from their index "
              f"({sum(r.get('fragments_changed', 0) for r in rows)} fragments), re-encode {counts['would re-encode']} whole, "
              f"leave {counts['would not change']}; skipped {counts['skipped']}, failed {counts['failed']}; "
              f"{frames} frames to encode; about {expected:.0f} s of work for the index-driven ones "
              f"(one worker; checked in {seconds:.1f} s)")
    else:
        print(f"re-blurred {counts['reblurred']}, checked {counts['checked']} (nothing to change), skipped {counts['skipped']}, "
              f"failed {counts['failed']}; {frames} frames encoded in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} frames/s)")
    print_result({
        **{k.replace(" ", "_"): v for k, v in counts.items()}, "frames": frames,
        "fps": round(frames / max(seconds, 1e-9), 2), "seconds": round(seconds, 1), "dry_run": args.dry_run,
        "faces_redacted": sum(r.get("faces_redacted", 0) for r in rows), "gallery_version": gallery.version,
        "engine": args.engine, "workers": workers, "recordings": rows,
    })
    return 1 if counts["failed"] else 0
