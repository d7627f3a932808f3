"""What each `classcap` command does: reads configuration, builds stages, runs, reports."""

from __future__ import annotations

import signal
import sys
import time

from blur.models import provision
from blur.policy import parse_policy
from capture.file import FileSource
from pipeline.cli import Progress, cpu_seconds, peak_rss_mb, print_result
from pipeline.config import ConfigError, Placement, PipelineConfig
from pipeline.engine_factory import ENGINE_MODELS, build_engine, load_gallery
from pipeline.recording import Recording, RecordingResult
from upload.storage import S3Location, StorageSettings, check_bucket, make_client, parse_s3_url

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


def run_recording(
    source, location: S3Location, placement: Placement, config: PipelineConfig, storage: StorageSettings, live_control=None,
    metrics_port: int | None = None,
    on_redacted=None,
) -> dict:
    """Check storage, then stream the source into it; returns the command's JSON summary."""
    client = make_client(storage)
    try:
        check_bucket(client, storage, location.bucket)
        gallery = load_gallery(client, storage, location.bucket)
        if parse_policy(config.policy)[0] in ("exclude", "allow") and not gallery.entries:
            print(f"classcap: warning: the gallery of bucket {location.bucket} is empty.", file=sys.stderr)
        engine, hashes = build_engine(config, gallery, wait_for_identity=not source.info.live)
    except BaseException:
        source.close()
        raise
    recording = Recording(
        source, engine, client, storage, location, placement, config, hashes,
        gallery_version=gallery.version, on_progress=Progress(source.info.frames), on_redacted=on_redacted,
    )
    started, cpu_before = time.monotonic(), cpu_seconds()
    if live_control is not None:  # a live recording: stop means finish and keep, not abort
        from pipeline.metrics import MetricsServer

        metrics = None
        if metrics_port is not None:
            try:
                metrics = MetricsServer(recording, metrics_port)
            except OSError as err:  # the lesson matters more than its metrics
                print(f"classcap: warning: no metrics: port {metrics_port} on 127.0.0.1 is not free ({err.strerror}).",
                      file=sys.stderr, flush=True)
        if metrics:
            print(f"metrics on http://127.0.0.1:{metrics.port}/metrics", file=sys.stderr, flush=True)
        try:
            with live_control(recording):
                result: RecordingResult = recording.run()
        finally:
            if metrics:
                metrics.close()
    else:
        with _sigterm_as_interrupt():
            result = recording.run()
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
    m = result.manifest
    figures = recording.counters.figures()
    return {
        "recording_id": result.recording_id,
        "bucket": result.bucket,
        "video_key": result.video_key,
        "manifest_key": result.manifest_key,
        "frames_in": m["frames_in"],
        "frames_out": m["frames_out"],
        "dropped_frames": m["dropped_frames"],
        "faces_detected": m["faces_detected"],
        "faces_redacted": m["faces_redacted"],
        "fail_closed_frames": m["fail_closed_frames"],
        "video_bytes": m["video"]["bytes"],
        "seconds": round(seconds, 2),
        "fps": round(m["frames_out"] / max(seconds, 1e-9), 2),
        "cpu_seconds": round(cpu, 2),  # over the same span as seconds, all threads and the identity worker
        "peak_rss_mb": peak_rss_mb(),
        "queue_high_water": recording.counters.queue_high_water,
        "latency_p50_ms": figures.get("latency_p50_ms"),
        "latency_p99_ms": figures.get("latency_p99_ms"),
        "sustained_fps": figures.get("sustained_fps"),
        "privacy_ms_per_frame": figures.get("privacy_ms_per_frame"),
        "encode_ms_per_frame": figures.get("encode_ms_per_frame"),
        "stopped_because": m.get("stopped_because"),
        "reconnects": m.get("reconnects"),
    }


def process(args) -> int:
    config = pipeline_config(args)
    location = parse_s3_url(args.to)
    if not location.prefix:
        location = S3Location(location.bucket, "recordings")
    placement = Placement(site=args.site, room=args.room, station=args.station)
    source = FileSource(args.input, with_audio=config.audio == "keep")
    summary = run_recording(source, location, placement, config, StorageSettings.from_env())
    print(f"blurred {summary['frames_out']} frames of {args.input} into s3://{summary['bucket']}/{summary['video_key']}")
    print_result(summary)
    return 0


def demo(args) -> int:
    from fixtures.classroom import Classroom, ClassroomSpec
    from pipeline.demo_source import classroom_source
    from upload.seaweed import SeaweedServer

    config = PipelineConfig(policy=args.policy)
    provision(ENGINE_MODELS, log=lambda line: print(line, file=sys.stderr))
    classroom = Classroom(ClassroomSpec(seed=args.seed, duration_s=args.duration))
    print("starting embedded SeaweedFS on loopback...", file=sys.stderr)
    with SeaweedServer() as server:
        storage = StorageSettings(endpoint_url=server.endpoint, access_key=server.access_key, secret_key=server.secret_key)
        bucket = "classcap-demo"
        make_client(storage).create_bucket(Bucket=bucket)
        location = S3Location(bucket, "recordings")
        placement = Placement(site="demo-school", room="room-1", station="demo-station")
        source = classroom_source(classroom)
        print(f"recording {args.duration:g} s of a generated classroom, blurring every face...", file=sys.stderr)
        summary = run_recording(source, location, placement, config, storage)
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


def storage_serve(args) -> int:
    from upload.seaweed import SeaweedServer

    with SeaweedServer(data_dir=args.dir, port=args.port) as server:
        client = server.client()
        for bucket in args.bucket:
            client.create_bucket(Bucket=bucket)
        print("SeaweedFS S3 is listening on loopback; stop it with Ctrl-C. Point classcap at it with:")
        for name, value in server.env().items():
            print(f"export {name}={value}")
        print_result({"endpoint": server.endpoint, "access_key": server.access_key, "buckets": args.bucket})
        try:
            with _sigterm_as_interrupt():
                while server.running():
                    time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def evaluate(args) -> int:
    from fixtures.suites import REAL_SUITES, SUITES
    from pipeline.evaluate import POLICIES, SETTLE_S, evaluate as run_eval

    named = {**SUITES, **REAL_SUITES}
    if args.suite == "synthetic":
        suites = SUITES
    elif args.suite == "all":
        suites = named
    elif args.suite in named:
        suites = {args.suite: named[args.suite]}
    else:
        raise ConfigError(f"There is no evaluation suite {args.suite!r}; choose synthetic, all, {', '.join(named)}.")
    policies = tuple(args.policy or POLICIES)
    for policy in policies:
        PipelineConfig(policy=policy)  # refuses unknown policies with one sentence
    provision(ENGINE_MODELS, log=lambda line: print(line, file=sys.stderr))
    started = time.monotonic()
    results = run_eval(suites, policies, max_frames=args.max_frames, progress=lambda line: print(line, file=sys.stderr, flush=True))
    for suite, by_policy in results.items():
        for policy, f in by_policy.items():
            print(
                f"{suite:<10} {policy:<10} leak frames {f['leak_frames']:>4}  leak rate {f['leak_rate']:.4f}  "
                f"visible {f['visible_rate']} (after {SETTLE_S:g} s: {f['settled_visible_rate']}, first shown after "
                f"{f['seconds_to_visible_p50']}/{f['seconds_to_visible_max']} s median/max, never {f['never_visible']})  "
                f"staff visible {f['staff_visible_rate']}  fail-closed {f['fail_closed_frames']}  {f['fps']} fps"
            )
    print_result({"suite": args.suite, "seconds": round(time.monotonic() - started, 1), "results": results})
    return 0


def record(args) -> int:
    from pipeline.record import record as run_record

    summary = run_record(args)
    if summary.get("stopped_because"):
        print(f"classcap: {summary['stopped_because']}", file=sys.stderr)
    print(
        f"recorded {summary['frames_out']} frames ({summary['dropped_frames']} dropped) into "
        f"s3://{summary['bucket']}/{summary['video_key']}"
    )
    print_result(summary)
    return 0


def bench(args) -> int:
    from pipeline.bench import bench as run_bench

    provision(ENGINE_MODELS, log=lambda line: print(line, file=sys.stderr))
    figures = run_bench(args)
    print(
        f"live {figures['live_fps']} fps ({figures['dropped_frames']} dropped, latency p50 {figures['latency_p50_ms']} ms, "
        f"p99 {figures['latency_p99_ms']} ms); batch {figures['batch_fps']} fps; deface {figures['deface_fps']} fps; "
        f"peak RSS {figures['peak_rss_mb']} MB"
    )
    print_result(figures)
    return 0


def models(args) -> int:
    paths = provision(log=lambda line: print(line, file=sys.stderr))
    print_result({"models": {name: str(path) for name, path in paths.items()}})
    return 0


class _sigterm_as_interrupt:
    """SIGTERM (systemd, a technician's kill) ends a run the way Ctrl-C does: cleanly."""

    def __enter__(self):
        def raise_interrupt(signum, frame):
            raise KeyboardInterrupt

        try:
            self._previous = signal.signal(signal.SIGTERM, raise_interrupt)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


