"""`classcap process FILE --to s3://BUCKET/PREFIX`: blur a video file into storage."""

from __future__ import annotations

from capture.file import FileSource
from pipeline.commands.common import Progress, pipeline_config, print_result, recording_options, say
from pipeline.config import Placement
from pipeline.run import run_recording
from upload.storage import S3Location, StorageSettings, parse_s3_url


def add_parser(commands) -> None:
    process = commands.add_parser("process", help="blur a video file into storage")
    process.add_argument("input", help="video file to process")
    process.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX", help="where the recording goes")
    recording_options(process)
    process.set_defaults(run=process_file)


def process_file(args) -> int:
    config = pipeline_config(args)
    location = parse_s3_url(args.to)
    if not location.prefix:
        location = S3Location(location.bucket, "recordings")
    placement = Placement(site=args.site, room=args.room, station=args.station, staff_id=args.staff)
    source = FileSource(args.input, with_audio=config.audio == "keep")
    summary = run_recording(source, location, placement, config, StorageSettings.from_env(), progress=Progress, say=say)
    print(f"blurred {summary['frames_out']} frames of {args.input} into s3://{summary['bucket']}/{summary['video_key']}")
    print_result(summary)
    return 0
