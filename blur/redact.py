"""Redaction styles. Each works in place on an RGB uint8 frame and must defeat recognition."""

from __future__ import annotations

import cv2
import numpy as np

from blur.types import Box

# A detector's box is brows-to-chin; hair, ears and jaw identify a child too, so redact more.
FACE_PAD = dict(left=0.25, top=0.4, right=0.25, bottom=0.2)

# Blocks across a redacted face region. Five blocks across (about three over the face itself)
# leave skin tone and nothing else; see tests/blur/test_redact.py for the measure.
PIXELATE_BLOCKS = 5


def pixelate(image: np.ndarray, box: Box, blocks: int = PIXELATE_BLOCKS) -> None:
    roi = image[box.y0 : box.y1, box.x0 : box.x1]
    if roi.size == 0:
        return
    h, w = roi.shape[:2]
    cols = max(1, min(blocks, w))
    rows = max(1, min(h, round(blocks * h / max(w, 1))))
    small = cv2.resize(roi, (cols, rows), interpolation=cv2.INTER_AREA)
    roi[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def pixelate_frame(image: np.ndarray, block: int = 32) -> None:
    """Fail-closed redaction of a whole frame: coarse enough that no face at any size survives."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
    image[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def face_region(box: Box, width: int, height: int) -> Box:
    """The region redacted for a detected face box."""
    return box.padded(FACE_PAD["left"], FACE_PAD["top"], FACE_PAD["right"], FACE_PAD["bottom"], width, height)
