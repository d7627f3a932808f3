"""While recording: Prometheus metrics on loopback, and JSON-line logs naming station and recording."""

import json
import re
import signal
import subprocess
import time

import pytest

from conftest import CLASSCAP, metric, metrics_url, read_metrics, storage_env
from fixtures.camera_servers import MjpegServer

STATE = 'classcap_source_state{classcap_source_state="%s"}'  # the camera's state, one series a state


@pytest.mark.slow
def test_metrics_are_served_on_loopback_and_logs_are_json_lines_without_student_data(seaweed, bucket, s3, tmp_path):
    with MjpegServer() as camera:
        config = tmp_path / "station.toml"
        config.write_text(
            f'[station]\nsite = "north"\nroom = "s2"\nid = "st-4"\nmetrics_port = 0\n\n[recording]\nsource = "{camera.url}"\n'
            f'audio = "drop"\n\n[storage]\nbucket = "{bucket}"\n\n[cameras]\napproved = ["ip:127.0.0.1"]\n'
        )
        station = subprocess.Popen(
            [*CLASSCAP, "--log-json", "record", "--config", str(config), "--notice-confirmed"],
            env=storage_env(seaweed), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            url = metrics_url(station)
            assert url.startswith("http://127.0.0.1:")
            time.sleep(6)
            first = read_metrics(url)
            assert metric(first, "classcap_frames_in") > 0 and metric(first, "classcap_fps_in") >= 0
            for name in ("classcap_frames_out", "classcap_dropped_frames", "classcap_faces_detected", "classcap_faces_redacted",
                         "classcap_fail_closed_frames", "classcap_identity_backlog", "classcap_upload_buffer_bytes",
                         "classcap_upload_retries", "classcap_last_successful_upload_timestamp_seconds"):
                metric(first, name)
            time.sleep(3)
            second = read_metrics(url)
            assert metric(second, "classcap_frames_out") > metric(first, "classcap_frames_out")
            assert metric(second, "classcap_fps_out") > 5
            assert metric(second, STATE % "running") == 1 and metric(second, STATE % "reconnecting") == 0
            camera.stop()
            time.sleep(3)
            away = read_metrics(url)
            assert metric(away, STATE % "reconnecting") == 1 and metric(away, STATE % "running") == 0
            camera.start()
            time.sleep(4)
            station.send_signal(signal.SIGTERM)
            out, err = station.communicate(timeout=120)
        finally:
            if station.poll() is None:
                station.kill()
    assert station.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    lost = [e for e in logs if "lost" in e["event"]]
    assert lost, "the camera's drop-out was logged"
    for entry in logs:
        assert entry["station"] == "st-4" and entry["recording_id"] == result["recording_id"]
        assert {"time", "level", "logger", "event"} <= set(entry)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=result["manifest_key"])["Body"].read())
    assert manifest["source_state"] == "ended" and manifest["gaps"], "the camera ended, after its drop-out"


@pytest.mark.slow
def test_verbose_logs_say_what_our_stages_did_and_name_no_student(classcap, seaweed, classroom_clip, bucket):
    from fixtures.faces import default_cache_dir, load_faces

    load_faces()
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    enrolled = classcap("gallery", "add", "--id", "s-0099", "--role", "excluded", default_cache_dir() / "biden.jpg", env=env)
    assert enrolled.returncode == 0, enrolled.stderr
    # the most a technician can ask for: every debug line, as JSON, of a recording under exclude
    run = classcap("-v", "--log-json", "process", classroom_clip.path, "--to", f"s3://{bucket}", "--policy", "exclude", env=env)
    assert run.returncode == 0, run.stderr
    logs = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    events = [e["event"] for e in logs]
    # what the stages did: the recording's start and end, each part uploaded
    assert any(e.startswith(f"recording {run.result['recording_id']}: file:") for e in events), events
    assert any("finished: 90 frames in, 90 out" in e for e in events), events
    assert any(e.startswith("part 1 of ") for e in events), events
    for entry in logs:
        assert set(entry) <= {"time", "level", "logger", "event", "station", "recording_id", "error"}, entry
        # not the libraries' own debug, which writes out every request to storage in full
        assert entry["logger"].split(".")[0] in ("capture", "blur", "upload", "pipeline", "fixtures"), entry
    # and nothing of the student: not the gallery's id, not an embedding or a list of face boxes
    assert "s-0099" not in run.stderr + run.stdout
    assert not re.search(r"(-?\d+(\.\d+)?[,\s]+){16,}", run.stderr)
