"""`classcap demo`: record a generated classroom clip into an embedded SeaweedFS."""

from __future__ import annotations

from blur.models import provision
from pipeline.commands.common import Progress, print_result, say
from pipeline.config import Placement, PipelineConfig
from pipeline.engine_factory import ENGINE_MODELS
from pipeline.run import run_recording
from upload.storage import S3Location, StorageSettings, make_client

DEMO_TEACHER = "demo-teacher"  # the demo recording's owner, and the library account made for it


def add_parser(commands) -> None:
    parser = commands.add_parser("demo", help="record a generated classroom clip into an embedded SeaweedFS")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of generated classroom (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated classroom")
    parser.add_argument("--policy", default="all", help="blur policy (default all)")
    parser.add_argument("--library", action="store_true",
                        help="then open the teachers' library on the recording, on loopback, until Ctrl-C")
    parser.add_argument("--port", type=int, default=8080, help="the library's port with --library (default 8080)")
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
        placement = Placement(site="demo-school", room="room-1", station="demo-station", staff_id=DEMO_TEACHER)
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
        if not args.library:
            print("to watch it in the teachers' library: .venv/bin/classcap demo --library (then open http://127.0.0.1:8080/)")
            print_result(summary)
            return 0
        print_result(summary)
        _open_library(storage, bucket, args.port)
    return 0


def _open_library(storage, bucket: str, port: int) -> None:
    """The library over the demo bucket, with one account (the demo recording's teacher) whose
    password is made now and printed; its database lives in a temporary folder, gone at the end."""
    import secrets
    import tempfile

    import uvicorn

    from library.accounts import add_user
    from library.app import STORAGE_CONNECTIONS, create_app
    from library.db import make_engine, migrate, sessions

    client = make_client(storage, connections=STORAGE_CONNECTIONS)

    password = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="classcap-demo-library-") as folder:
        engine = make_engine(f"sqlite:///{folder}/library.db")
        migrate(engine)
        with sessions(engine).begin() as s:
            add_user(s, DEMO_TEACHER, "Demo Teacher", "demo-teacher@demo-school.example", "teacher", password)
        say(f"the library is on http://127.0.0.1:{port}/ : sign in as {DEMO_TEACHER} with the password {password} "
            "(Ctrl-C stops it, and the demo storage with it)")
        uvicorn.run(create_app(engine, client, storage, bucket), host="127.0.0.1", port=port, log_level="warning")
