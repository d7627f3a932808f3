"""`classcap cameras` and `record`'s refusal of cameras that are not school-issued (recorded sysfs trees)."""

import os

from conftest import storage_env
from sysfs_tree import sysfs  # noqa: F401  (a fixture)


def test_cameras_list_shows_attached_cameras_and_approve_revoke_edit_only_the_registry(classcap, sysfs, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text('# room S2\n[station]\nsite = "north"  # main building\nroom = "s2"\n')
    env = {**os.environ, "CLASSCAP_SYSFS": str(sysfs), "CLASSCAP_STATION_CONFIG": str(config)}
    listed = classcap("cameras", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in listed.result["cameras"]}
    assert set(rows) == {"usb:046d:0825:A1B2C3D4", "usb:04f2:b6d9", "usb:046d:0825:9F8E7D6C"}
    assert not any(row["approved"] for row in rows.values())
    assert "An unapproved camera cannot record" in listed.stdout

    approved = classcap("cameras", "approve", "/dev/video10", env=env)  # by device: its id is recorded
    assert approved.returncode == 0, approved.stderr
    assert approved.result["approved"] == ["usb:046d:0825:9F8E7D6C"]
    again = classcap("cameras", "approve", "ip:10.20.0.15@00:1A:2B:3C:4D:5E", env=env)
    assert again.result["approved"] == ["usb:046d:0825:9F8E7D6C", "ip:10.20.0.15@00:1a:2b:3c:4d:5e"]
    text = config.read_text()
    assert text.startswith('# room S2\n[station]\nsite = "north"  # main building\n'), "the rest of the config is kept"

    rows = {row["id"]: row for row in classcap("cameras", "list", env=env).result["cameras"]}
    assert rows["usb:046d:0825:9F8E7D6C"]["approved"] and rows["usb:046d:0825:9F8E7D6C"]["device"] == "/dev/video10"
    assert not rows["usb:046d:0825:A1B2C3D4"]["approved"], "the same model with another serial stays unapproved"
    assert rows["ip:10.20.0.15@00:1a:2b:3c:4d:5e"]["approved"]

    revoked = classcap("cameras", "revoke", "usb:046d:0825:9F8E7D6C", env=env)
    assert revoked.returncode == 0 and revoked.result["approved"] == ["ip:10.20.0.15@00:1a:2b:3c:4d:5e"]
    missing = classcap("cameras", "revoke", "usb:046d:0825:9F8E7D6C", env=env)
    assert missing.returncode == 1 and "is not in the approved cameras" in missing.stderr
    bad = classcap("cameras", "approve", "my-phone", env=env)
    assert bad.returncode == 1 and "is not a camera id" in bad.stderr


def test_record_refuses_an_unapproved_or_unknown_camera_and_writes_nothing(classcap, sysfs, seaweed, bucket, s3, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(
        f'[station]\nsite = "north"\nroom = "s2"\n\n[storage]\nbucket = "{bucket}"\n\n'
        '[cameras]\napproved = ["usb:046d:0825:9F8E7D6C"]\n'
    )
    env = storage_env(seaweed, CLASSCAP_SYSFS=str(sysfs), CLASSCAP_STATION_CONFIG=str(config))
    private = classcap("record", "--source", "/dev/video0", "--notice-confirmed", "--duration", "2", env=env)
    assert private.returncode == 1
    assert "Camera /dev/video0 (usb:046d:0825:A1B2C3D4) is not an approved school camera" in private.stderr
    assert "cameras approve usb:046d:0825:A1B2C3D4" in private.stderr
    unknown = classcap("record", "--source", "/dev/video7", "--notice-confirmed", "--duration", "2", env=env)
    assert unknown.returncode == 1 and "No camera at /dev/video7" in unknown.stderr
    ip = classcap("record", "--source", "http://127.0.0.1:9/video", "--notice-confirmed", "--duration", "2", env=env)
    assert ip.returncode == 1 and ("127.0.0.1" in ip.stderr) and len(ip.stderr.strip().splitlines()) == 1
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0, "nothing is recorded half-way"
