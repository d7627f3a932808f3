"""`classcap station serve`: the teacher's station page on loopback."""

from __future__ import annotations

import time

from pipeline.commands.common import Progress, config_option, print_result, say
from pipeline.run import sigterm_as_interrupt
from pipeline.station import load_station
from pipeline.station_page import PageServer, StationController


def add_parser(commands) -> None:
    station_page = commands.add_parser("station", help="the teacher's station page")
    station_cmds = station_page.add_subparsers(dest="station_command", required=True, metavar="ACTION")
    page = station_cmds.add_parser("serve", help="serve the station page on loopback: start, stop, blurred preview")
    config_option(page)
    page.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free port)")
    page.add_argument("--source", help="what to record (default: the station's)")
    page.add_argument("--bucket", help="bucket (default: $CLASSCAP_BUCKET or the station's)")
    page.set_defaults(run=station_serve)


def station_serve(args) -> int:
    station = load_station(args.config)
    controller = StationController(station, source_uri=args.source, bucket=args.bucket, say=say, progress=Progress)
    server = PageServer(controller, args.port)
    url = f"http://127.0.0.1:{server.server_port}/"
    say(f"station page on {url} (Ctrl-C to stop)")
    print_result({"url": url})
    try:
        with sigterm_as_interrupt():  # SIGTERM stops the page as Ctrl-C does
            while True:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping: finishing any recording's upload...")
        server.close()
    return 0
