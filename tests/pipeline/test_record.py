"""`classcap record`: notice first, site and room required, and every way of stopping keeps the lesson."""

import io
import json
import signal
import subprocess
import time

import av
import numpy as np

from conftest import CLASSCAP, clean_env, storage_env


def frames_in(s3, bucket, key):
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def manifest(s3, bucket, key):
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_no_recording_without_the_notice_or_without_site_and_room(classcap, seaweed, bucket, s3):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    no_notice = classcap("record", "--source", "testpattern", "--duration", "2", "--site", "n", "--room", "r", env=env)
    assert no_notice.returncode != 0 and "being recorded for training purposes" in no_notice.stderr
    no_room = classcap("record", "--source", "testpattern", "--duration", "2", "--notice-confirmed", env=env)
    assert no_room.returncode != 0 and "site and room" in no_room.stderr
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_station_config_places_the_recording_and_a_duration_ends_it(classcap, seaweed, bucket, s3, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(
        f'[station]\nsite = "north"\nroom = "lab-2"\nid = "st-7"\n\n[recording]\nsource = "testpattern"\naudio = "drop"\n\n'
        f'[storage]\nbucket = "{bucket}"\n'
    )
    run = classcap("record", "--config", config, "--duration", "3", "--notice-confirmed")
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["video_key"].startswith("recordings/north/lab-2/")
    m = manifest(s3, bucket, result["manifest_key"])
    assert m["status"] == "complete" and m["station"] == "st-7" and m["notice_confirmed_at"]
    assert m["frames_in"] - m["dropped_frames"] == m["frames_out"] == frames_in(s3, bucket, result["video_key"]) > 0


def test_sigterm_finishes_the_recording_instead_of_losing_it(seaweed, bucket, s3):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    station = subprocess.Popen(
        [*CLASSCAP, "record", "--source", "testpattern", "--site", "n", "--room", "r", "--notice-confirmed"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # once the manifest says "recording" the station is capturing (and listening for SIGTERM)
    deadline = time.monotonic() + 120
    while not s3.list_objects_v2(Bucket=bucket).get("KeyCount") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    station.send_signal(signal.SIGTERM)
    out, err = station.communicate(timeout=120)
    assert station.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    m = manifest(s3, bucket, result["manifest_key"])
    assert m["status"] == "complete" and m["ended_at"]
    assert frames_in(s3, bucket, result["video_key"]) == m["frames_out"] > 0
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_broken_station_config_is_one_sentence(classcap, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text('[station]\nsite = "north"\nroom = "lab-2"\nfloor = "2"\n')
    run = classcap("record", "--config", config, "--notice-confirmed")
    assert run.returncode != 0 and "unknown setting station.floor" in run.stderr


def record_sound(classcap, seaweed, bucket, s3, device: str, seconds: int):
    """Records the test pattern with `device` as the microphone: (video times, audio frames, manifest)."""
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    run = classcap(
        "record", "--source", "testpattern", "--audio-device", device, "--duration", str(seconds),
        "--site", "n", "--room", "r", "--notice-confirmed", env=env,
    )
    assert run.returncode == 0, run.stderr
    data = s3.get_object(Bucket=bucket, Key=run.result["video_key"])["Body"].read()
    with av.open(io.BytesIO(data)) as container:
        video = [f.time for f in container.decode(video=0)]
    with av.open(io.BytesIO(data)) as container:
        audio = list(container.decode(audio=0))
    return video, audio, manifest(s3, bucket, run.result["manifest_key"])


def test_the_station_microphone_is_recorded_beside_the_video_on_the_same_clock(classcap, seaweed, bucket, s3):
    """`testtone` is the station's sound check: FFmpeg makes a 1 kHz tone and delivers it at the
    real rate in 20 ms periods, as a microphone does, through the same path as an ALSA device."""
    video, audio, m = record_sound(classcap, seaweed, bucket, s3, "testtone", 4)
    assert audio and audio[0].sample_rate == 48000
    audio_end = audio[-1].time + audio[-1].samples / 48000
    assert abs(audio[0].time - video[0]) < 0.25, "sound starts with the picture"
    assert abs(audio_end - video[-1]) < 0.5, "sound lasts as long as the picture"
    sound = np.concatenate([frame.to_ndarray()[0] for frame in audio])
    assert sound.size / 48000 > 0.8 * (video[-1] - video[0]), "no stretch of sound is missing"
    middle = sound[len(sound) // 4 : 3 * len(sound) // 4]
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * 48000 / len(middle) - 1000) < 5, "it is the tone, not silence or noise"
    assert m["audio"] == "keep" and m["audio_error"] is None and m["microphone_dropped_chunks"] == 0


def test_an_alsa_capture_device_is_recorded(classcap, seaweed, bucket, s3):
    """ALSA's `null` device is a real ALSA capture device (silence, delivered far slower than
    the real rate, so it shows only that the device is opened and read)."""
    _, audio, m = record_sound(classcap, seaweed, bucket, s3, "null", 2)
    assert audio and audio[0].sample_rate == 48000 and audio[0].layout.name == "stereo"
    assert m["audio"] == "keep" and m["audio_error"] is None


def test_a_missing_microphone_is_one_sentence_and_nothing_is_recorded(classcap, seaweed, bucket, s3):
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket)
    run = classcap(
        "record", "--source", "testpattern", "--audio-device", "hw:7,0", "--duration", "2",
        "--site", "n", "--room", "r", "--notice-confirmed", env=env,
    )
    assert run.returncode == 1 and "Cannot open the microphone 'hw:7,0'" in run.stderr
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_the_station_config_can_hold_the_stations_keys_but_only_in_a_private_file(classcap, seaweed, bucket, s3, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(
        f'[station]\nsite = "north"\nroom = "lab-2"\n\n[recording]\nsource = "testpattern"\naudio = "drop"\n\n'
        f'[storage]\nendpoint = "{seaweed.endpoint}"\nbucket = "{bucket}"\naccess_key = "{seaweed.access_key}"\n'
        f'secret_key = "{seaweed.secret_key}"\n'
    )
    env = clean_env()  # nothing from the AWS chain
    config.chmod(0o644)
    shared = classcap("record", "--config", config, "--duration", "2", "--notice-confirmed", env=env)
    assert shared.returncode == 1 and "chmod 600" in shared.stderr
    assert seaweed.secret_key not in shared.stderr + shared.stdout
    config.chmod(0o600)
    private = classcap("record", "--config", config, "--duration", "2", "--notice-confirmed", env=env)
    assert private.returncode == 0, private.stderr
    assert seaweed.secret_key not in private.stderr + private.stdout
    assert manifest(s3, bucket, private.result["manifest_key"])["status"] == "complete"
