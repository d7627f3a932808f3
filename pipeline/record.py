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
from datetime import datetime, timezone

from pipeline.config import ConfigError
from pipeline.live import LiveRequest, plan_live, run_live
from pipeline.station import NOTICE, load_station


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
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stop_cleanly(duration: float | None):
    """While a recording runs: duration, Ctrl-C and SIGTERM all *finish* it (upload completed,
    manifest written) instead of aborting it."""

    @contextlib.contextmanager
    def control(recording):
        def finish(signum, frame):
            print("\nstopping: finishing the upload of what was recorded...", file=sys.stderr, flush=True)
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


def record(args) -> dict:
    station = load_station(args.config)
    plan = plan_live(station, LiveRequest(
        policy=args.policy, audio=args.audio, crf=args.crf, buffer_mb=args.buffer_mb, source=args.source,
        audio_device=args.audio_device, metrics_port=args.metrics_port, site=args.site, room=args.room,
        station_id=args.station, bucket=args.bucket,
    ))
    notice_at = confirm_notice(args.notice_confirmed)
    return run_live(plan, notice_at, live_control=stop_cleanly(args.duration))
