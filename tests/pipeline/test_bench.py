"""`classcap bench` reports the figures DESIGN.md names (their values are for the note, not asserted)."""

KEYS = {"live_fps", "dropped_frames", "latency_p50_ms", "latency_p99_ms", "batch_fps", "peak_rss_mb", "width", "height", "policy"}


def test_bench_prints_one_json_line_of_figures(classcap):
    run = classcap("bench", "--seconds", "2", timeout=600)
    assert run.returncode == 0, run.stderr
    figures = run.result
    assert KEYS <= set(figures)
    assert (figures["width"], figures["height"], figures["frames"], figures["policy"]) == (1280, 720, 60, "all")
    assert figures["live_fps"] > 0 and figures["batch_fps"] > 0
    assert figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    assert 0 <= figures["dropped_frames"] < 60
