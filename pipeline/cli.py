"""`classcap`: the command line. Errors are one sentence on stderr and a non-zero exit.

Each command lives in its own module under `pipeline/commands/`, which adds its own parser;
this module builds the parser from them, sets up logging, runs the command and turns the
errors a user can act on into one sentence.
"""

from __future__ import annotations

import argparse
import logging
import sys

from classcap.errors import ClasscapError
from pipeline.commands import (bench, cameras, demo, doctor, evaluation, gallery, library, models, process, reblur,
                               record, station, storage)
OUR_PACKAGES = ("capture", "blur", "upload", "pipeline", "library", "fixtures")

# in the order `classcap --help` lists them
COMMANDS = (demo, process, record, reblur, library, doctor, station, cameras, storage, gallery, evaluation, bench, models)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    if args.log_json:
        from pipeline.metrics import JsonLines

        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    if args.verbose:  # what our stages do; the libraries' own debug (every S3 request in full) stays out
        for package in OUR_PACKAGES:
            logging.getLogger(package).setLevel(logging.DEBUG)
    try:
        return args.run(args) or 0
    except ClasscapError as err:  # what a user can act on: capture, privacy, upload, config
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
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
