"""`classcap`: the command line. Errors are one sentence on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time

from blur.errors import PrivacyError
from capture.errors import CaptureError
from pipeline.config import ConfigError
from upload.errors import UploadError

EXPECTED_ERRORS = (CaptureError, PrivacyError, UploadError, ConfigError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    if args.log_json:
        from pipeline.metrics import JsonLines

        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[handler])
    try:
        return args.run(args) or 0
    except EXPECTED_ERRORS as err:
        print(f"classcap: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("classcap: interrupted; the upload was aborted and nothing partial was left in storage.", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="classcap", description="Classroom capture with in-memory face blurring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")
    parser.add_argument("--log-json", action="store_true", help="logs as JSON lines (station, recording id, event)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from pipeline import commands as cmd  # the heavy imports wait until a command runs

    demo = commands.add_parser("demo", help="record a generated classroom clip into an embedded SeaweedFS")
    demo.add_argument("--duration", type=float, default=10.0, help="seconds of generated classroom (default 10)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the generated classroom")
    demo.add_argument("--policy", default="all", help="blur policy (default all)")
    demo.set_defaults(run=cmd.demo)

    process = commands.add_parser("process", help="blur a video file into storage")
    process.add_argument("input", help="video file to process")
    process.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX", help="where the recording goes")
    _recording_options(process)
    process.set_defaults(run=cmd.process)

    rec = commands.add_parser("record", help="record a lesson at this station (live, blurred, straight to storage)")
    rec.add_argument("--config", help="station config (default: $CLASSCAP_STATION_CONFIG)")
    rec.add_argument(
        "--source",
        help="what to record: an approved camera (usb:VID:PID[:SERIAL], /dev/videoN, rtsp://..., http://...) "
        "or a test source (testpattern, generated:classroom, file:PATH); default: the station's",
    )
    rec.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")
    rec.add_argument("--policy", help="blur policy (default: the station's, else all)")
    rec.add_argument("--audio", choices=("keep", "drop"), help="keep or drop sound (default: the station's)")
    rec.add_argument("--metrics-port", type=int, help="Prometheus metrics on 127.0.0.1:PORT (default: the station's, else 9464; 0: any free port; -1: none)")
    rec.add_argument("--buffer-mb", type=int, help="video held in memory while storage is unreachable (default: the station's, else 160)")
    rec.add_argument("--crf", type=int, help="video quality, 0–51: lower is sharper and bigger (default: the station's, else 23)")
    rec.add_argument("--audio-device", help="ALSA microphone to record with a camera (default: the station's, else default)")
    rec.add_argument("--notice-confirmed", action="store_true", help="the class has been told it is being recorded")
    rec.add_argument("--bucket", help="bucket to record into (default: $CLASSCAP_BUCKET or the station's)")
    rec.add_argument("--site", help="school site (default: the station's)")
    rec.add_argument("--room", help="room (default: the station's)")
    rec.add_argument("--station", help="station id (default: the station's, else the host name)")
    rec.set_defaults(run=cmd.record)

    from pipeline.reblur import reblur_command

    reblur = commands.add_parser("reblur", help="re-blur retained recordings with the current exclusion gallery")
    reblur.add_argument("prefix_url", metavar="s3://BUCKET/PREFIX")
    reblur.add_argument("--engine", choices=("local", "ray"), default="local", help="local process pool (default) or a Ray cluster")
    reblur.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    reblur.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    reblur.add_argument("--force", action="store_true", help="re-blur recordings already blurred with the current gallery")
    reblur.add_argument("--retries", type=int, default=1, help="times a failed clip is tried again (default 1)")
    reblur.add_argument("--config", help="station config (default: $CLASSCAP_STATION_CONFIG)")
    reblur.set_defaults(run=reblur_command)

    from pipeline.doctor import doctor

    doc = commands.add_parser("doctor", help="check this station: models, camera, storage, clock, speed")
    doc.add_argument("--config", help="station config (default: $CLASSCAP_STATION_CONFIG)")
    doc.add_argument("--json", action="store_true", help="the checks as one JSON list on the last stdout line")
    doc.add_argument("--skip-speed", action="store_true", help="leave out the short self-benchmark")
    doc.set_defaults(run=doctor)

    from pipeline.station_page import station_serve

    station_page = commands.add_parser("station", help="the teacher's station page")
    station_cmds = station_page.add_subparsers(dest="station_command", required=True, metavar="ACTION")
    page = station_cmds.add_parser("serve", help="serve the station page on loopback: start, stop, blurred preview")
    page.add_argument("--config", help="station config (default: $CLASSCAP_STATION_CONFIG)")
    page.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free port)")
    page.add_argument("--source", help="what to record (default: the station's)")
    page.add_argument("--bucket", help="bucket (default: $CLASSCAP_BUCKET or the station's)")
    page.set_defaults(run=station_serve)

    from pipeline import cameras_cmd

    cameras = commands.add_parser("cameras", help="which cameras are attached and which are approved school cameras")
    cameras_cmds = cameras.add_subparsers(dest="cameras_command", required=True, metavar="ACTION")
    cam_list = cameras_cmds.add_parser("list", help="attached USB cameras and the approved registry")
    cam_list.set_defaults(run=cameras_cmd.cameras_list)
    approve = cameras_cmds.add_parser("approve", help="approve a school-issued camera")
    approve.set_defaults(run=cameras_cmd.cameras_approve)
    revoke = cameras_cmds.add_parser("revoke", help="withdraw a camera's approval")
    revoke.set_defaults(run=cameras_cmd.cameras_revoke)
    for sub in (approve, revoke):
        sub.add_argument("camera", help="usb:VID:PID[:SERIAL], /dev/videoN, or ip:HOST[@MAC]")
    for sub in (cam_list, approve, revoke):
        sub.add_argument("--config", help="station config (default: $CLASSCAP_STATION_CONFIG)")

    storage = commands.add_parser("storage", help="storage set-up and recovery")
    storage_cmds = storage.add_subparsers(dest="storage_command", required=True, metavar="ACTION")
    serve = storage_cmds.add_parser("serve", help="run an embedded SeaweedFS S3 server on loopback")
    serve.add_argument("--dir", help="data directory (default: a temporary one, removed on exit)")
    serve.add_argument("--port", type=int, help="S3 port (default: a free one)")
    serve.add_argument("--bucket", action="append", default=[], help="bucket to create at start (repeatable)")
    serve.set_defaults(run=cmd.storage_serve)
    from pipeline import storage_cmd

    storage_cmd.add_parsers(storage_cmds)

    from pipeline import gallery_cmd

    gallery = commands.add_parser("gallery", help="the exclusion gallery (embeddings under pseudonymous ids)")
    gallery_cmds = gallery.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")
    add = gallery_cmds.add_parser("add", help="enrol a person from one or more photos (the photos are not kept)")
    add.add_argument("--id", required=True, help="pseudonymous id (never a name)")
    add.add_argument("--role", required=True, choices=("excluded", "staff"))
    add.add_argument("images", nargs="+", metavar="IMAGE")
    add.set_defaults(run=gallery_cmd.gallery_add)
    listing = gallery_cmds.add_parser("list", help="who is in the gallery")
    listing.set_defaults(run=gallery_cmd.gallery_list)
    remove = gallery_cmds.add_parser("remove", help="take a person out of the gallery")
    remove.add_argument("--id", required=True)
    remove.set_defaults(run=gallery_cmd.gallery_remove)
    for sub in (add, listing, remove):
        sub.add_argument("--bucket", help="bucket whose gallery to use (default: $CLASSCAP_BUCKET)")

    evaluation = commands.add_parser("eval", help="privacy figures on generated clips with exact ground truth")
    evaluation.add_argument("--suite", default="synthetic", help="synthetic (the generated classrooms), all (and the real photographs), or one suite: easy, classroom, crowded, hard, real")
    evaluation.add_argument("--policy", action="append", help="policy to evaluate (repeatable; default all, exclude, allow)")
    evaluation.add_argument("--max-frames", type=int, help="only the first N frames of each clip (a quick look)")
    evaluation.set_defaults(run=cmd.evaluate)

    bench = commands.add_parser("bench", help="speed and memory figures: live-paced and batch runs of one clip")
    bench.add_argument("--input", help="clip to play (default: a generated 1280×720 classroom)")
    bench.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip (default 10)")
    bench.add_argument("--policy", default="all", help="blur policy to measure (default all)")
    bench.set_defaults(run=cmd.bench)

    models = commands.add_parser("models", help="provision the pinned detection models into the user cache")
    models.set_defaults(run=cmd.models)
    return parser


def _recording_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", default="all",
        help="who is blurred: all, exclude (students in the exclusion gallery), allow (everyone but enrolled staff); add ',background' to blur the room too",
    )
    parser.add_argument("--style", choices=("pixelate", "gaussian", "solid"), default="pixelate", help="how faces are hidden")
    parser.add_argument("--audio", choices=("keep", "drop"), default="keep", help="keep or drop the input's audio")
    parser.add_argument("--site", default=os.environ.get("CLASSCAP_SITE", "unassigned-site"), help="school site")
    parser.add_argument("--room", default=os.environ.get("CLASSCAP_ROOM", "unassigned-room"), help="room")
    parser.add_argument("--station", default=os.environ.get("CLASSCAP_STATION", os.uname().nodename), help="station id")
    parser.add_argument("--crf", type=int, default=23, help="video quality, 0–51: lower is sharper and bigger (default 23)")
    parser.add_argument("--queue-frames", type=int, default=8, help="frames each in-memory queue may hold")
    parser.add_argument("--part-size-mb", type=float, default=5.0, help="multipart part size in MiB (at least 5)")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    """CPU used so far by this process and the children it has reaped (the identity worker,
    once a recording closes it; not a storage server still running)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def print_result(summary: dict) -> None:
    """The contract: the last stdout line is one JSON object."""
    print(json.dumps(summary, sort_keys=True), flush=True)


class Progress:
    """Shows progress on stderr every couple of seconds, so long work is never silent."""

    def __init__(self, total: int | None, every_s: float = 2.0):
        self.total, self.every_s = total, every_s
        self.started = self._last = time.monotonic()

    def __call__(self, counters) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        done = counters.frames_out
        fps = done / max(now - self.started, 1e-9)
        of = f"/{self.total}" if self.total else ""
        print(f"  {done}{of} frames blurred and encoded ({fps:.1f} frames/s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
