"""The station never writes a local file while it records: every open is traced with strace."""

import json
import re
import shutil
import subprocess
import sys

import pytest

WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
OPEN_CALL = re.compile(r'^\d+\s+(?P<call>openat2?|open|creat)\((?:AT_FDCWD|\d+), "(?P<path>[^"]*)"(?P<rest>.*)$|^\d+\s+(?P<call2>open|creat)\("(?P<path2>[^"]*)"(?P<rest2>.*)$')
ALLOWED_ROOTS = ("/dev/", "/proc/", "/sys/")


def write_opens(trace: str) -> list[str]:
    """Lines of an `strace -f` log that open a path outside /dev, /proc, /sys for writing."""
    found = []
    for line in trace.splitlines():
        m = OPEN_CALL.match(line)
        if not m:
            continue
        call = m.group("call") or m.group("call2")
        path = m.group("path") or m.group("path2")
        rest = m.group("rest") or m.group("rest2")
        if path.startswith(ALLOWED_ROOTS):
            continue
        if call == "creat" or WRITE_FLAGS.search(rest.split(")")[0] if call != "openat2" else rest):
            found.append(line)
    return found


def strace(*command, env=None, tmp_path):
    assert shutil.which("strace"), "strace is missing: .ci/run installs it (apt-get install strace)"
    log = tmp_path / "strace.log"  # written by strace itself, which is not traced
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,creat", "-o", str(log), *command],
        env=env, capture_output=True, text=True, timeout=600,
    )
    return done, log.read_text()


def test_the_trace_check_catches_a_write(tmp_path):
    # A check that cannot fail proves nothing: a plain Python write must be caught.
    target = tmp_path / "leak.bin"
    done, trace = strace(sys.executable, "-c", f"open({str(target)!r}, 'wb').write(b'x')", tmp_path=tmp_path)
    assert done.returncode == 0
    assert [line for line in write_opens(trace) if str(target) in line]


@pytest.mark.slow
def test_process_opens_no_local_file_for_writing(seaweed, classcap, classroom_clip, bucket, tmp_path):
    from conftest import CLASSCAP, storage_env
    from fixtures.faces import default_cache_dir, load_faces

    # every stage that could write runs: detectors, the identity worker process, segmentation
    load_faces()
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    enrol = classcap("gallery", "add", "--id", "s-1", "--role", "excluded", default_cache_dir() / "biden.jpg", env=env)
    assert enrol.returncode == 0, enrol.stderr
    done, trace = strace(
        *CLASSCAP, "process", classroom_clip.path, "--to", f"s3://{bucket}/recordings", "--policy", "exclude,background",
        env=env, tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert '"' + str(classroom_clip.path) + '"' in trace  # the trace did see the run
    assert write_opens(trace) == []


@pytest.mark.slow
def test_a_live_recording_through_a_storage_outage_opens_no_local_file_for_writing(seaweed, bucket, s3, tmp_path):
    """While storage is down the video waits in memory, never on disk."""
    import threading
    import time

    from conftest import CLASSCAP, storage_env
    from faultproxy import FaultProxy
    from test_outage import parts_uploaded

    with FaultProxy(seaweed.port) as proxy:
        env = storage_env(seaweed, AWS_ENDPOINT_URL=proxy.endpoint, CLASSCAP_BUCKET=bucket)
        outage = {}

        def cut_storage_once_parts_flow():
            deadline = time.monotonic() + 240
            while parts_uploaded(s3, bucket) < 1 and time.monotonic() < deadline:
                time.sleep(0.3)
            proxy.down()
            outage["parts_before"] = parts_uploaded(s3, bucket)
            time.sleep(15)
            proxy.up()
            outage["done"] = True

        cutter = threading.Thread(target=cut_storage_once_parts_flow, daemon=True)
        cutter.start()
        done, trace = strace(
            *CLASSCAP, "record", "--source", "generated:classroom", "--audio", "drop", "--crf", "8", "--duration", "45",
            "--site", "n", "--room", "r", "--notice-confirmed", env=env, tmp_path=tmp_path,
        )
        cutter.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert outage.get("done"), "the outage happened during the recording"
    manifest = json.loads(done.stdout.strip().splitlines()[-1])
    m = json.loads(s3.get_object(Bucket=bucket, Key=manifest["manifest_key"])["Body"].read())
    assert m["status"] == "complete" and m["storage_outages"], "the station noticed the outage"
    assert write_opens(trace) == []


@pytest.mark.slow
def test_reblur_opens_no_local_file_for_writing(seaweed, classcap, classroom_clip, bucket, tmp_path):
    """Re-blurring streams the stored video from storage and back, through worker processes."""
    from conftest import CLASSCAP, storage_env
    from fixtures.faces import default_cache_dir, load_faces

    load_faces()
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    made = classcap("process", classroom_clip.path, "--to", f"s3://{bucket}/recordings", "--policy", "exclude", env=env)
    assert made.returncode == 0, made.stderr
    assert classcap("gallery", "add", "--id", "s-1", "--role", "excluded", default_cache_dir() / "biden.jpg", env=env).returncode == 0
    done, trace = strace(*CLASSCAP, "reblur", f"s3://{bucket}/recordings", "--workers", "1", env=env, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["reblurred"] == 1
    assert write_opens(trace) == []
