"""`classcap record`: a live recording at a classroom station.

It refuses to start without a site and room, or before the teacher has confirmed that the class
was told it is being recorded; it stops on --duration, Ctrl-C or SIGTERM and always finishes the
upload and the manifest with what was captured.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

from classcap.clock import utc_stamp
from pipeline.commands.common import Progress, config_option, print_result, say
from pipeline.config import ConfigError
from pipeline.live import LiveRequest, plan_live, run_live
from pipeline.station import NOTICE, load_station


def add_parser(commands) -> None:
    rec = commands.add_parser("record", help="record a lesson at this station (live, blurred, straight to storage)")
    config_option(rec)
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
    rec.add_argument("--audio-device", help="ALSA microphone to record with a camera (default: the station's, else default; testtone: a 1 kHz check tone)")
    rec.add_argument("--notice-confirmed", action="store_true", help="the class has been told it is being recorded")
    rec.add_argument("--bucket", help="bucket to record into (default: $CLASSCAP_BUCKET or the station's)")
    rec.add_argument("--site", help="school site (default: the station's)")
    rec.add_argument("--room", help="room (default: the station's)")
    rec.add_argument("--station", help="station id (default: the station's, else the host name)")
    rec.add_argument("--staff", metavar="ID", help="the member of staff teaching: the recording is theirs in the library")
    rec.set_defaults(run=record)


def confirm_notice(confirmed: bool) -> str:
    """The time the teacher confirmed the notice; refuses to go on without it."""
    if not confirmed:
        if not sys.stdin.isatty():
            raise ConfigError(
                f'Recording needs the notice confirmed: tell the class "{NOTICE}", then start again with --notice-confirmed.'
            )
        answer = input(f'Tell the class: "{NOTICE}". Have you told them? [y/N] ')
        if answer.strip().lower() not in ("y", "yes"):
            raise ConfigError("Recording was not started: the class has not been told it is being recorded.")
    return utc_stamp()


def stop_cleanly(duration: float | None):
    """While a recording runs: duration, Ctrl-C and SIGTERM all *finish* it (upload completed,
    manifest written) instead of aborting it."""

    @contextlib.contextmanager
    def control(recording):
        def finish(signum, frame):
            say("\nstopping: finishing the upload of what was recorded...")
            recording.finish()

        previous = {s: signal.signal(s, finish) for s in (signal.SIGINT, signal.SIGTERM)}
        timer = threading.Timer(duration, recording.finish) if duration else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer:
                timer.cancel()
            for s, handler in previous.items():
                signal.signal(s, handler)

    return control


def record(args) -> int:
    summary = record_lesson(args)
    if summary.get("stopped_because"):
        say(f"classcap: {summary['stopped_because']}")
    print(
        f"recorded {summary['frames_out']} frames ({summary['dropped_frames']} dropped) into "
        f"s3://{summary['bucket']}/{summary['video_key']}"
    )
    print_result(summary)
    return 0


def record_lesson(args) -> dict:
    station = load_station(args.config)
    plan = plan_live(station, LiveRequest(
        policy=args.policy, audio=args.audio, crf=args.crf, buffer_mb=args.buffer_mb, source=args.source,
        audio_device=args.audio_device, metrics_port=args.metrics_port, site=args.site, room=args.room,
        station_id=args.station, bucket=args.bucket, staff_id=args.staff,
    ))
    notice_at = confirm_notice(args.notice_confirmed)
    return run_live(plan, notice_at, live_control=stop_cleanly(args.duration), progress=Progress, say=say)
