"""The two commands that need no set-up: `classcap demo` and `classcap storage serve`."""

import json
import signal
import subprocess

import boto3

from conftest import CLASSCAP


def test_demo_records_a_generated_classroom_into_embedded_storage(classcap):
    run = classcap("demo", "--duration", "2")
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["frames_in"] == result["frames_out"] == 60
    assert result["faces_redacted"] > 0 and result["fail_closed_frames"] == 0
    assert result["video_key"].startswith("recordings/demo-school/room-1/")
    assert "uploaded to s3://classcap-demo/" in run.stdout


def test_storage_serve_runs_seaweedfs_until_stopped(tmp_path):
    server = subprocess.Popen([*CLASSCAP, "storage", "serve", "--bucket", "lessons"], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in server.stdout:  # it prints where it listens, then a JSON line, then waits
            lines.append(line)
            if line.startswith("{"):
                break
        info = json.loads(lines[-1])
        env = dict(l.split(" ", 1)[1].strip().split("=", 1) for l in lines if l.startswith("export "))
        assert info["endpoint"] == env["AWS_ENDPOINT_URL"] and info["endpoint"].startswith("http://127.0.0.1:")
        s3 = boto3.client(
            "s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"],
        )
        s3.put_object(Bucket="lessons", Key="probe", Body=b"ok")
        assert s3.get_object(Bucket="lessons", Key="probe")["Body"].read() == b"ok"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0


