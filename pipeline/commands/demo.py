"""`classcap demo`: record a generated classroom clip into an embedded SeaweedFS."""

from __future__ import annotations

from blur.models import provision
from pipeline.commands.common import Progress, print_result, say
from pipeline.config import Placement, PipelineConfig
from pipeline.engine_factory import ENGINE_MODELS
from pipeline.run import run_recording
from upload.storage import S3Location, StorageSettings, make_client


def add_parser(commands) -> None:
    parser = commands.add_parser("demo", help="record a generated classroom clip into an embedded SeaweedFS")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of generated classroom (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated classroom")
    parser.add_argument("--policy", default="all", help="blur policy (default all)")
    parser.set_defaults(run=demo)


def demo(args) -> int:
    from fixtures.classroom import Classroom, ClassroomSpec
    from pipeline.demo_source import classroom_source
    from upload.seaweed import SeaweedServer

    config = PipelineConfig(policy=args.policy)
    provision(ENGINE_MODELS, log=say)
    classroom = Classroom(ClassroomSpec(seed=args.seed, duration_s=args.duration))
    say("starting embedded SeaweedFS on loopback...")
    with SeaweedServer() as server:
        storage = StorageSettings(endpoint_url=server.endpoint, access_key=server.access_key, secret_key=server.secret_key)
        bucket = "classcap-demo"
        make_client(storage).create_bucket(Bucket=bucket)
        location = S3Location(bucket, "recordings")
        placement = Placement(site="demo-school", room="room-1", station="demo-station")
        source = classroom_source(classroom)
        say(f"recording {args.duration:g} s of a generated classroom, blurring every face...")
        summary = run_recording(source, location, placement, config, storage, progress=Progress, say=say)
        client = make_client(storage)
        size = client.head_object(Bucket=bucket, Key=summary["video_key"])["ContentLength"]
        print(f"recording {summary['recording_id']} uploaded to s3://{bucket}/{summary['video_key']} ({size} bytes)")
        print(f"manifest at s3://{bucket}/{summary['manifest_key']}")
        print(
            f"{summary['frames_out']} frames, {summary['faces_redacted']} faces blurred, "
            f"{summary['fail_closed_frames']} fail-closed frames, {summary['fps']} frames/s, peak RSS {summary['peak_rss_mb']} MB"
        )
    print_result(summary)
    return 0
