"""`classcap eval`: the privacy figures on clips with exact ground truth."""

from __future__ import annotations

import time

from blur.models import provision
from pipeline.commands.common import print_result, say
from pipeline.config import ConfigError, PipelineConfig
from pipeline.engine_factory import ENGINE_MODELS


def add_parser(commands) -> None:
    evaluation = commands.add_parser("eval", help="privacy figures on generated clips with exact ground truth")
    evaluation.add_argument("--suite", default="synthetic", help="synthetic (the generated classrooms), all (and the real photographs), or one suite: easy, classroom, crowded, hard, real")
    evaluation.add_argument("--policy", action="append", help="policy to evaluate (repeatable; default all, exclude, allow)")
    evaluation.add_argument("--max-frames", type=int, help="only the first N frames of each clip (a quick look)")
    evaluation.set_defaults(run=evaluate)


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
    provision(ENGINE_MODELS, log=say)
    started = time.monotonic()
    results = run_eval(suites, policies, max_frames=args.max_frames, progress=say)
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
