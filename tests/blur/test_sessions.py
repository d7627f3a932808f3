"""Every model runs through `blur.sessions`, which keeps onnxruntime from writing to the station's disk."""

import subprocess
import sys

EMBED_ONLY = """
import numpy as np
from blur.identity import FaceEmbedder
FaceEmbedder().embed_chips(np.zeros((1, 150, 150, 3), np.uint8))
"""


def test_a_process_that_only_identifies_faces_leaves_no_onnxruntime_files(tmp_path):
    """The identity worker runs the ResNet and never the detector; onnxruntime's telemetry, left
    on, writes a device id and an event cache under ~/.cache/Microsoft at import."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, "-c", EMBED_ONLY], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert not (home / ".cache" / "Microsoft").exists()
    assert [p.name for p in home.rglob("*")] == [], "nothing at all is written under the home folder"
