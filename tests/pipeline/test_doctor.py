"""`classcap doctor`: each check fails for the right reason, with the fix in one sentence."""

import shutil

from blur.models import default_cache_dir
from conftest import storage_env
from sysfs_tree import sysfs  # noqa: F401  (a fixture)


def station(tmp_path, bucket, source="testpattern", approved=()):
    config = tmp_path / "station.toml"
    listed = ", ".join(f'"{a}"' for a in approved)
    config.write_text(
        f'[station]\nsite = "north"\nroom = "s2"\nid = "st-9"\n\n[recording]\nsource = "{source}"\n\n'
        f'[storage]\nbucket = "{bucket}"\n\n[cameras]\napproved = [{listed}]\n'
    )
    return config


def checks(run) -> dict:
    return {c["name"]: c for c in run.result}


def test_doctor_reports_an_unprepared_bucket_and_a_station_that_can_read_recordings(classcap, seaweed, bucket, tmp_path):
    env = storage_env(seaweed)
    config = station(tmp_path, bucket)
    run = classcap("doctor", "--config", config, "--json", "--skip-speed", env=env)
    assert run.returncode == 1
    c = checks(run)
    assert set(c) >= {"models", "station config", "camera", "storage reachable", "bucket encrypted", "retention rule",
                      "station can write", "station cannot read recordings", "clock", "no local recording directory"}
    assert all(set(x) == {"name", "ok", "detail", "fix"} for x in c.values())
    assert c["models"]["ok"] and c["station config"]["ok"] and c["camera"]["ok"] and c["clock"]["ok"]
    assert not c["bucket encrypted"]["ok"] and "no default encryption" in c["bucket encrypted"]["detail"]
    assert "storage init" in c["bucket encrypted"]["fix"]
    assert not c["retention rule"]["ok"]
    # the test server's keys are an administrator's: they read recordings back, which a station must not
    assert c["station can write"]["ok"]
    assert not c["station cannot read recordings"]["ok"] and "can read recordings back" in c["station cannot read recordings"]["detail"]
    assert "write-only" in c["station cannot read recordings"]["fix"]

    assert classcap("storage", "init", f"s3://{bucket}", env=env).returncode == 0
    c = checks(classcap("doctor", "--config", config, "--json", "--skip-speed", env=env))
    assert c["bucket encrypted"]["ok"] and c["retention rule"]["ok"]


def test_doctor_finds_a_model_with_the_wrong_hash(classcap, seaweed, bucket, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(default_cache_dir(), cache / "models")
    victim = sorted((cache / "models").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    env = storage_env(seaweed, CLASSCAP_CACHE=str(cache))
    run = classcap("doctor", "--config", station(tmp_path, bucket), "--json", "--skip-speed", env=env)
    models = checks(run)["models"]
    assert run.returncode == 1 and not models["ok"]
    assert victim.name in models["detail"] and "SHA-256" in models["detail"] and "make setup" in models["fix"]


def test_doctor_finds_the_approved_camera_missing_and_a_station_without_a_room(classcap, seaweed, bucket, sysfs, tmp_path):
    env = storage_env(seaweed, CLASSCAP_SYSFS=str(sysfs))
    config = station(tmp_path, bucket, source="usb:046d:0825:SCHOOL77", approved=["usb:046d:0825:SCHOOL77"])
    camera = checks(classcap("doctor", "--config", config, "--json", "--skip-speed", env=env))["camera"]
    assert not camera["ok"] and "No camera usb:046d:0825:SCHOOL77 is attached" in camera["detail"]
    assert "cameras list" in camera["fix"]
    unapproved = station(tmp_path, bucket, source="/dev/video0", approved=["usb:046d:0825:SCHOOL77"])
    camera = checks(classcap("doctor", "--config", unapproved, "--json", "--skip-speed", env=env))["camera"]
    assert not camera["ok"] and "not an approved school camera" in camera["detail"]
    roomless = tmp_path / "roomless.toml"
    roomless.write_text(f'[station]\nsite = "north"\n\n[storage]\nbucket = "{bucket}"\n')
    config_check = checks(classcap("doctor", "--config", roomless, "--json", "--skip-speed", env=env))["station config"]
    assert not config_check["ok"] and "no room" in config_check["detail"]
