"""Redaction styles. Each works in place on an RGB uint8 frame and must defeat recognition."""

from __future__ import annotations

import cv2
import numpy as np

from blur.types import Box

# A detector's box is brows-to-chin; hair, ears and jaw identify a child too, so redact more.
FACE_PAD = dict(left=0.25, top=0.4, right=0.25, bottom=0.2)

# Blocks across a redacted face region. Four blocks across (two or three over the face itself)
# leave skin tone and nothing else; tests/blur/test_redact_styles.py shows dlib no longer matches.
PIXELATE_BLOCKS = 4

# Gaussian blur sigma as a fraction of the region's longer side (about 19 px on a 100 px face's
# 160 px region). Measured by dlib embedding on the registry faces at 100 px: 0.03 left some faces
# within 0.53 of themselves (recognisable); 0.05 and up put every face 0.63 or more from itself,
# about as far as a grey square is from any face. 0.12 keeps a margin above that knee.
GAUSSIAN_SIGMA = 0.12

# Solid fill: one neutral grey, not the region's mean, which would leave skin tone behind.
SOLID_COLOR = (128, 128, 128)


def pixelate(image: np.ndarray, box: Box, blocks: int = PIXELATE_BLOCKS) -> None:
    roi = image[box.y0 : box.y1, box.x0 : box.x1]
    if roi.size == 0:
        return
    h, w = roi.shape[:2]
    cols = max(1, min(blocks, w))
    rows = max(1, min(h, round(blocks * h / max(w, 1))))
    small = cv2.resize(roi, (cols, rows), interpolation=cv2.INTER_AREA)
    roi[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def gaussian(image: np.ndarray, box: Box, sigma: float = GAUSSIAN_SIGMA) -> None:
    roi = image[box.y0 : box.y1, box.x0 : box.x1]
    if roi.size == 0:
        return
    h, w = roi.shape[:2]
    s = sigma * max(h, w)
    # A wide kernel costs its width per pixel; blurring a copy shrunk to a sigma of ~3 px and
    # scaling it back up smoothly gives the same picture at a fraction of the cost.
    shrink = max(1.0, s / 3.0)
    small = cv2.resize(roi, (max(1, round(w / shrink)), max(1, round(h / shrink))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), s / shrink, borderType=cv2.BORDER_REPLICATE)
    roi[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def solid(image: np.ndarray, box: Box, color: tuple[int, int, int] = SOLID_COLOR) -> None:
    image[box.y0 : box.y1, box.x0 : box.x1] = color


# Name -> style, for configuration; every style has the same signature: (image, box) in place.
REDACTORS = {"pixelate": pixelate, "gaussian": gaussian, "solid": solid}


def pixelate_frame(image: np.ndarray, block: int = 32) -> None:
    """Fail-closed redaction of a whole frame: coarse enough that no face at any size survives."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
    image[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


# A small face's region is grown to at least this size, so its blocks are big enough to carry
# nothing of it: four blocks across 33 px (a 22 px face) still traced a turned face's outline.
MIN_REGION_PX = 48


def face_region(box: Box, width: int, height: int) -> Box:
    """The region redacted for a detected face box."""
    region = box.padded(FACE_PAD["left"], FACE_PAD["top"], FACE_PAD["right"], FACE_PAD["bottom"], width, height)
    grow_x = max(0, MIN_REGION_PX - region.width) / 2
    grow_y = max(0, MIN_REGION_PX - region.height) / 2
    if grow_x or grow_y:
        region = Box(
            max(0, int(region.x0 - grow_x)),
            max(0, int(region.y0 - grow_y)),
            min(width, int(region.x1 + grow_x + 0.5)),
            min(height, int(region.y1 + grow_y + 0.5)),
        )
    return region
