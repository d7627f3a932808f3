"""What every command shares: the JSON result line, progress and notes on stderr, and the
options of the commands that record a file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pipeline.config import PipelineConfig


def print_result(summary) -> None:
    """The contract: the last stdout line is one JSON object."""
    print(json.dumps(summary, sort_keys=True), flush=True)


def say(line: str) -> None:
    """A note for the person at the terminal, on stderr (stdout is the result's)."""
    print(line, file=sys.stderr, flush=True)


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
        say(f"  {done}{of} frames blurred and encoded ({fps:.1f} frames/s)")


def recording_options(parser: argparse.ArgumentParser) -> None:
    """The options of a recording made from a file (`process`)."""
    parser.add_argument(
        "--policy", default="all",
        help="who is blurred: all, exclude (students in the exclusion gallery), allow (everyone but enrolled staff); add ',background' to blur the room too",
    )
    parser.add_argument("--style", choices=("pixelate", "gaussian", "solid"), default="pixelate", help="how faces are hidden")
    parser.add_argument("--audio", choices=("keep", "drop"), default="keep", help="keep or drop the input's audio")
    parser.add_argument("--site", default=os.environ.get("CLASSCAP_SITE", "unassigned-site"), help="school site")
    parser.add_argument("--room", default=os.environ.get("CLASSCAP_ROOM", "unassigned-room"), help="room")
    parser.add_argument("--station", default=os.environ.get("CLASSCAP_STATION", os.uname().nodename), help="station id")
    parser.add_argument("--staff", metavar="ID", help="the member of staff who taught it: it is theirs in the library (default: nobody's until the data lead assigns it)")
    parser.add_argument("--crf", type=int, default=23, help="video quality, 0–51: lower is sharper and bigger (default 23)")
    parser.add_argument("--queue-frames", type=int, default=8, help="frames each in-memory queue may hold")
    parser.add_argument("--part-size-mb", type=float, default=5.0, help="multipart part size in MiB (at least 5)")


def pipeline_config(args) -> PipelineConfig:
    return PipelineConfig(
        raw_queue=args.queue_frames,
        redacted_queue=args.queue_frames,
        part_size=int(args.part_size_mb * 1024 * 1024),
        policy=args.policy,
        audio=args.audio,
        style=args.style,
        crf=args.crf,
    )


def config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="station config (default: $CLASSCAP_STATION_CONFIG)")
