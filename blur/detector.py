"""Face detectors. Each takes an RGB uint8 array and returns face boxes in its pixel space."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Protocol

import numpy as np

from blur.errors import PrivacyError
from blur.types import Box, Detection


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]: ...

    def close(self) -> None: ...


class BlazeFaceDetector:
    """MediaPipe Tasks BlazeFace. The full-range model sees smaller, farther faces than short-range.

    A low score threshold is deliberate: a false positive costs a blurred patch of wall, a miss
    costs a child's face.
    """

    def __init__(self, model_path: Path, min_score: float = 0.3):
        # Importing mediapipe imports its audio tasks, which import sounddevice, which looks for
        # PortAudio by compiling a probe with gcc in /tmp: local writes on a station that must
        # make none. No audio task is used, so sounddevice is kept out (mediapipe allows for that).
        sys.modules.setdefault("sounddevice", None)
        # Imported here so the rest of the engine (and its tests) load without MediaPipe's start-up.
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            min_detection_confidence=min_score,
            min_suppression_threshold=0.3,
        )
        try:
            with quiet_native_logs():
                self._detector = vision.FaceDetector.create_from_options(options)
        except Exception as err:  # MediaPipe raises RuntimeError/ValueError with long C++ text
            raise PrivacyError(f"Could not load the face detector from {model_path}: {err}") from err
        self._first = True

    def detect(self, image: np.ndarray) -> list[Detection]:
        import mediapipe as mp

        height, width = image.shape[:2]
        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        if self._first:
            self._first = False
            with quiet_native_logs():  # the first inference logs a buffer-alignment notice
                result = self._detector.detect(frame)
        else:
            result = self._detector.detect(frame)
        detections = []
        for found in result.detections:
            bb = found.bounding_box
            box = Box(
                max(0, bb.origin_x),
                max(0, bb.origin_y),
                min(width, bb.origin_x + bb.width),
                min(height, bb.origin_y + bb.height),
            )
            if box.width > 0 and box.height > 0:
                detections.append(Detection(box, float(found.categories[0].score)))
        return detections

    def close(self) -> None:
        with quiet_native_logs():
            self._detector.close()


@contextlib.contextmanager
def quiet_native_logs():
    """Silence LiteRT's start-up chatter, which it writes to fd 2 whatever the log settings say.

    Only used around model load and close, outside the frame path, so no real error is hidden
    for long; Python-level exceptions still propagate.
    """
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
