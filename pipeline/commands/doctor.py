"""`classcap doctor`: check this station (models, camera, storage, clock, speed) and say how to fix it."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict

from pipeline import settings
from pipeline.commands.common import config_option, print_result
from pipeline.config import ConfigError
from pipeline.doctor import (Check, check_camera, check_config, check_models, check_no_local_dir, check_speed, run_check,
                             storage_checks)
from pipeline.station import load_station


def add_parser(commands) -> None:
    doc = commands.add_parser("doctor", help="check this station: models, camera, storage, clock, speed")
    config_option(doc)
    doc.add_argument("--bucket", help="bucket to check (default: $CLASSCAP_BUCKET or the station's)")
    doc.add_argument("--json", action="store_true", help="the checks as one JSON list on the last stdout line")
    doc.add_argument("--skip-speed", action="store_true", help="leave out the short self-benchmark")
    doc.set_defaults(run=doctor)


def doctor(args) -> int:
    path = args.config or os.environ.get("CLASSCAP_STATION_CONFIG")
    checks: list[Check] = [run_check("models", check_models, "Run `make setup`.")]
    try:
        station = load_station(path)
    except ConfigError as err:
        checks.append(Check("station config", False, str(err), "Fix station.toml as the sentence says."))
        station = None
    if station is not None:
        checks.append(run_check("station config", lambda: check_config(station), "Fix station.toml."))
        checks.append(run_check("camera", lambda: check_camera(station),
                           "Attach the approved camera (`classcap cameras list`), or approve this one."))
        bucket = settings.bucket_or_none(station, args.bucket)
        checks.extend(storage_checks(station, bucket))
        checks.append(run_check("no local recording directory", lambda: check_no_local_dir(station), "Remove it."))
    if not args.skip_speed:
        checks.append(run_check("speed", check_speed, "See `classcap bench`."))
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "PASS" if c.ok else "FAIL"
        line = f"{mark}  {c.name:<{width}}  {c.detail}"
        print(line if c.ok else f"{line}\n      {'':<{width}}  fix: {c.fix}", file=sys.stdout if not args.json else sys.stderr)
    failed = [c for c in checks if not c.ok]
    summary = f"{len(checks) - len(failed)} of {len(checks)} checks passed"
    print(summary, file=sys.stdout if not args.json else sys.stderr)
    if args.json:
        print_result([asdict(c) for c in checks])
    return 1 if failed else 0
