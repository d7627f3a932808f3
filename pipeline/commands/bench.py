"""`classcap bench`: speed and memory figures, live-paced and batch, of one clip."""

from __future__ import annotations

from blur.models import provision
from pipeline.bench import bench as measure
from pipeline.commands.common import Progress, print_result, say
from pipeline.engine_factory import ENGINE_MODELS


def add_parser(commands) -> None:
    bench = commands.add_parser("bench", help="speed and memory figures: live-paced and batch runs of one clip")
    bench.add_argument("--input", help="clip to play (default: a generated 1280×720 classroom)")
    bench.add_argument("--seconds", type=float, default=10.0, help="length of the generated clip (default 10)")
    bench.add_argument("--policy", default="all", help="blur policy to measure (default all)")
    bench.add_argument("--reblur", action="store_true",
                       help="instead: time the re-blur from the track index against the full pass, on one recording of "
                            "`--seconds` of the 43-face wall in which a newly excluded student is in view for the last tenth")
    bench.set_defaults(run=bench_command)


def bench_command(args) -> int:
    provision(ENGINE_MODELS, log=say)
    if args.reblur:
        from pipeline.bench_reblur import reblur_bench

        figures = reblur_bench(args.seconds, say=say)
        print(
            f"{figures['clip']}: re-blur from the index {figures['index_seconds']} s "
            f"({figures['fragments_changed']} of {figures['fragments']} fragments re-encoded), full pass "
            f"{figures['full_seconds']} s: {figures['index_vs_full']}x; still recognisable in "
            f"{figures['student_left_index']} frames (index) and {figures['student_left_full']} (full)"
        )
        print_result(figures)
        return 0
    figures = measure(args.input, args.seconds, args.policy, say=say, progress=Progress)
    print(
        f"live {figures['live_fps']} fps ({figures['dropped_frames']} dropped, latency p50 {figures['latency_p50_ms']} ms, "
        f"p99 {figures['latency_p99_ms']} ms); batch {figures['batch_fps']} fps; deface {figures['deface_fps']} fps; "
        f"peak RSS {figures['peak_rss_mb']} MB"
    )
    print_result(figures)
    return 0
