"""Bucket and storage, resolved once for every command (pipeline/settings.py), as DESIGN.md states it."""

import os

import pytest

from conftest import clean_env
from pipeline import settings
from pipeline.config import ConfigError
from pipeline.station import StationConfig


def test_the_bucket_is_the_command_s_else_the_environment_s_else_the_station_s(monkeypatch):
    station = StationConfig(bucket="from-station")
    monkeypatch.setenv("CLASSCAP_BUCKET", "from-env")
    assert settings.bucket(station, "asked") == "asked"
    assert settings.bucket(station) == "from-env"
    monkeypatch.delenv("CLASSCAP_BUCKET")
    assert settings.bucket(station) == "from-station"
    assert settings.bucket_or_none(StationConfig()) is None
    with pytest.raises(ConfigError, match="No bucket given; pass --bucket, set CLASSCAP_BUCKET, or set"):
        settings.bucket(StationConfig())


def test_storage_is_the_station_s_where_it_says_else_the_aws_variables(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env.example:8333")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    assert settings.storage(StationConfig()).endpoint_url == "http://env.example:8333"
    station = settings.storage(StationConfig(endpoint="http://station.example:8333"))
    assert (station.endpoint_url, station.region) == ("http://station.example:8333", "eu-west-2")


def station_toml(tmp_path, seaweed, bucket):
    path = tmp_path / "station.toml"
    path.write_text(
        f'[station]\nsite = "north"\nroom = "s2"\n\n[storage]\nbucket = "{bucket}"\nendpoint = "{seaweed.endpoint}"\n'
        f'access_key = "{seaweed.access_key}"\nsecret_key = "{seaweed.secret_key}"\n'
    )
    os.chmod(path, 0o600)
    return path


def test_the_gallery_and_doctor_reach_the_bucket_the_station_config_names(classcap, seaweed, bucket, tmp_path):
    # given a station config that names the storage and the bucket, and no AWS_ or CLASSCAP_ variable
    config = station_toml(tmp_path, seaweed, bucket)
    env = {k: v for k, v in clean_env().items() if not k.startswith("CLASSCAP_")}
    # then `gallery list` finds that bucket's (empty) gallery, as `record` would use it
    listing = classcap("gallery", "list", "--config", config, env=env)
    assert listing.returncode == 0, listing.stderr
    assert listing.result["people"] == []
    # and `doctor --bucket` checks the bucket asked for, not the station's
    doctor = classcap("doctor", "--config", config, "--bucket", "no-such-bucket", "--skip-speed", "--json", env=env)
    storage = [c for c in doctor.result if "bucket" in c["name"] or "storage" in c["name"]]
    assert storage and any("no-such-bucket" in c["detail"] and not c["ok"] for c in storage), storage
    assert doctor.returncode != 0
