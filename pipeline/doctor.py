"""The station checks `classcap doctor` runs: each pass/fail with the fix in one sentence."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.config import ConfigError

CLOCK_SKEW_S = 5.0
SELF_BENCH_FRAMES = 90


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_check(name: str, fn, fix_on_error: str) -> Check:
    """A check function returns (ok, detail, fix); one that raises fails with its sentence."""
    try:
        ok, detail, fix = fn()
    except (ConfigError, Exception) as err:  # every failure is reported, none stops the others
        return Check(name, False, str(err).strip() or type(err).__name__, fix_on_error)
    return Check(name, ok, detail, "" if ok else fix)


def check_models():
    from blur.models import MODELS, ModelError, model_path

    bad = []
    for name in MODELS:
        try:
            model_path(name)
        except ModelError as err:
            bad.append(str(err))
    if bad:
        return False, " ".join(bad), "Run `make setup` (or `classcap models`) to fetch the pinned models again."
    return True, f"{len(MODELS)} models present with the pinned SHA-256", ""


def check_config(station):
    if station.path is None:
        return False, "no station config (pass --config or set CLASSCAP_STATION_CONFIG)", "Write station.toml with [station] site and room."
    missing = [k for k in ("site", "room") if not getattr(station, k)]
    if missing:
        return False, f"{station.path} has no {' and '.join(missing)}", "Set [station] site and room in station.toml."
    return True, f"{station.path}: site {station.site}, room {station.room}", ""


def check_camera(station, size=(1280, 720)):
    from capture.reconnect import ReconnectingSource
    from capture.types import Frame
    from pipeline.live import DEFAULT_SOURCE, open_source

    uri = station.source or DEFAULT_SOURCE
    source = open_source(uri, station)  # refuses unknown and unapproved cameras in one sentence
    try:
        is_camera = isinstance(source, ReconnectingSource)
        frames, started = 0, time.monotonic()
        for item in source:
            if isinstance(item, Frame):
                frames += 1
                shape = item.image.shape[1], item.image.shape[0]
                if frames >= 10 or time.monotonic() - started > 10:
                    break
        seconds = time.monotonic() - started
    finally:
        source.close()
    if frames == 0:
        return False, f"{uri} delivered no frames", "Check the camera's cable or network, then run doctor again."
    rate = frames / max(seconds, 1e-9)
    if is_camera and shape != size:
        return False, f"{uri} delivers {shape[0]}×{shape[1]}, not {size[0]}×{size[1]}", "Use a camera that offers 1280×720."
    kind = "camera" if is_camera else "test source (no camera configured)"
    return True, f"{kind} {source.info.source_id}: {shape[0]}×{shape[1]}, {frames} frames at {rate:.0f} fps", ""


def storage_checks(station, bucket: str | None) -> list[Check]:
    from upload.admin import lifecycle_rules
    from upload.storage import check_bucket, explain, make_client

    if not bucket:
        fix = "Set [storage] bucket in station.toml (or CLASSCAP_BUCKET)."
        return [Check("storage reachable", False, "no bucket configured", fix)]
    settings = station.storage_settings()
    client = make_client(settings)
    checks = []
    reach = run_check(
        "storage reachable",
        lambda: (check_bucket(client, settings, bucket), (True, f"bucket {bucket} at {settings.where()}", ""))[1],
        "Check the endpoint, the network and the station's keys.",
    )
    checks.append(reach)
    if not reach.ok:
        return checks

    def encryption():
        try:
            rules = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        except ClientError as err:
            if "ServerSideEncryptionConfigurationNotFound" in str(err) or err.response.get("Error", {}).get("Code") in (
                "ServerSideEncryptionConfigurationNotFoundError", "NoSuchEncryptionConfiguration", "404"):
                return False, f"bucket {bucket} has no default encryption", f"Run `classcap storage init s3://{bucket}`."
            raise
        algos = [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules]
        return bool(algos), f"default encryption {', '.join(filter(None, algos))}", f"Run `classcap storage init s3://{bucket}`."

    def lifecycle():
        wanted = lifecycle_rules()["Rules"][0]
        try:
            rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchLifecycleConfiguration", "404"):
                rules = []
            else:
                raise
        found = [r for r in rules if r.get("Expiration", {}).get("Days") and r.get("Filter", {}) == wanted["Filter"]]
        if not found:
            return False, "no rule expires recordings/ after two years (except keep=true)", f"Run `classcap storage init s3://{bucket}`."
        return True, f"recordings/ expire after {found[0]['Expiration']['Days']} days unless kept", ""

    checks.append(run_check("bucket encrypted", encryption, f"Run `classcap storage init s3://{bucket}`."))
    checks.append(run_check("retention rule", lifecycle, f"Run `classcap storage init s3://{bucket}`."))

    probe = f"recordings/_doctor/{station.station_id or os.uname().nodename}/probe.txt"

    def write_probe():
        try:
            client.put_object(Bucket=bucket, Key=probe, Body=b"classcap doctor probe\n", ServerSideEncryption="AES256",
                              Tagging="keep=false")
        except (ClientError, BotoCoreError) as err:
            raise explain(err, settings, bucket, "write a probe object") from err
        return True, f"wrote {probe}", ""

    wrote = run_check("station can write", write_probe, "Give the station's keys PutObject on recordings/ (see `classcap storage init`).")
    checks.append(wrote)

    def cannot_read():
        try:
            client.get_object(Bucket=bucket, Key=probe)["Body"].read()
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("AccessDenied", "403") or status == 403:
                return True, "reading recordings back is refused, as it should be", ""
            raise
        try:
            client.delete_object(Bucket=bucket, Key=probe)
        except (ClientError, BotoCoreError):
            pass
        return (
            False,
            "the station's keys can read recordings back",
            f"Give the station write-only keys, or apply the policy from `classcap storage init s3://{bucket} --apply-policy`.",
        )

    if wrote.ok:
        checks.append(run_check("station cannot read recordings", cannot_read, "Give the station write-only keys."))

    def clock():
        response = client.head_bucket(Bucket=bucket)
        header = response["ResponseMetadata"]["HTTPHeaders"].get("date")
        if not header:
            return False, "the storage server sent no Date header", "Check the station's time with `timedatectl`."
        skew = (datetime.now(timezone.utc) - parsedate_to_datetime(header)).total_seconds()
        ok = abs(skew) <= CLOCK_SKEW_S
        return ok, f"station clock {skew:+.1f} s from the storage server's", "Turn on NTP: `timedatectl set-ntp true`."

    checks.append(run_check("clock", clock, "Turn on NTP: `timedatectl set-ntp true`."))
    return checks


def check_speed(fps_wanted: float = 30.0):
    """The privacy engine and the encoder, each in its thread as in a recording, on 3 s of
    generated 1280×720 classroom as fast as they go."""
    import queue
    import threading
    from fractions import Fraction

    from fixtures.classroom import Classroom, ClassroomSpec
    from pipeline.config import PipelineConfig
    from pipeline.engine_factory import build_engine
    from upload.encoder import EncoderSettings, FragmentedMP4Encoder
    from upload.fragments import FragmentBuffer

    classroom = Classroom(ClassroomSpec(seed=5, duration_s=SELF_BENCH_FRAMES / 30))
    images = [f.image for f in classroom.frames()][:SELF_BENCH_FRAMES]
    engine, _ = build_engine(PipelineConfig(policy="all"), None, wait_for_identity=False)
    encoder = FragmentedMP4Encoder(FragmentBuffer(lambda part: None), EncoderSettings(1280, 720, Fraction(1, 30)))
    handoff: queue.Queue = queue.Queue(maxsize=8)
    errors: list[BaseException] = []

    def encode():
        try:
            n = 0
            while (image := handoff.get()) is not None:
                encoder.encode_video(image, n)
                n += 1
        except BaseException as err:  # re-raised below by the owner
            errors.append(err)

    worker = threading.Thread(target=encode, name="doctor-encode")
    for i, image in enumerate(images[:6]):  # first calls pay for onnxruntime's and x264's set-up
        for out, _tag, _report in engine.push(image.copy(), -1 - i):
            pass
    engine.flush()
    try:
        started = time.monotonic()
        worker.start()
        for i, image in enumerate(images):
            for out, _tag, _report in engine.push(image.copy(), i):
                handoff.put(out)
        for out, _tag, _report in engine.flush():
            handoff.put(out)
        handoff.put(None)
        worker.join()
        seconds = time.monotonic() - started
    finally:
        if worker.is_alive():
            handoff.put(None)
            worker.join()
        encoder.close()
        engine.close()
    if errors:
        raise errors[0]
    fps = len(images) / max(seconds, 1e-9)
    detail = f"{fps:.1f} fps blurring and encoding 1280×720 (needs {fps_wanted:g})"
    return fps >= fps_wanted, detail, "Close other programs or use a faster station; `classcap bench` gives the full figures."


def check_no_local_dir(station):
    suspicious = [k for k in os.environ if k.startswith("CLASSCAP_") and ("DIR" in k or "PATH" in k) and k != "CLASSCAP_STATION_CONFIG"]
    if suspicious:
        return False, f"environment sets {', '.join(suspicious)}", "Remove them: recordings never go to a local directory."
    return True, "recordings go only to storage; no recording directory is configured", ""
