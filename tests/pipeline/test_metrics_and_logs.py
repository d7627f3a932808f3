"""While recording: Prometheus metrics on loopback, and JSON-line logs naming station and recording."""

import json
import signal
import subprocess
import time

from conftest import CLASSCAP, metric, metrics_url, read_metrics, storage_env
from fixtures.camera_servers import MjpegServer


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
            camera.stop()
            time.sleep(3)
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
