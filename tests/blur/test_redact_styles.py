"""Every redaction style defeats recognition: dlib no longer knows a redacted real face.

Each registry face is shown at 100 px wide, redacted over its `face_region` with each style, and
embedded again on the same box. The unredacted face must match its enrolment (the control); the
redacted one must be at least dlib's 0.6 from its own unredacted embedding and its enrolment.
"""

import cv2
import numpy as np
import pytest

from blur.identity import EXCLUDED_THRESHOLD, FaceEmbedder
from blur.redact import REDACTORS, face_region
from blur.types import Box
from fixtures.faces import load_faces

FACE_PX = 100


@pytest.fixture(scope="module")
def embedder():
    return FaceEmbedder()


@pytest.fixture(scope="module")
def shown(embedder):
    """name -> (frame with the face at 100 px, its box, unredacted embedding, enrolment embedding)."""
    out = {}
    for photos in load_faces().values():
        for photo in photos:
            enrolled = embedder.embed(photo.image, Box(*photo.face_box))
            x0, y0, x1, y1 = photo.face_box
            scale = FACE_PX / (x1 - x0)
            frame = cv2.resize(photo.image, None, fx=scale, fy=scale,
                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            bx0, by0 = round(x0 * scale), round(y0 * scale)
            box = Box(bx0, by0, bx0 + FACE_PX, by0 + round((y1 - y0) * scale))
            out[photo.name] = (frame, box, embedder.embed(frame, box), enrolled)
    return out


def test_unredacted_faces_match_their_enrolment(shown):
    for name, (_, _, plain, enrolled) in shown.items():
        assert np.linalg.norm(plain - enrolled) < EXCLUDED_THRESHOLD, name


@pytest.mark.parametrize("style", sorted(REDACTORS))
def test_redacted_faces_are_not_recognised(style, shown, embedder):
    redact = REDACTORS[style]
    distances = {}
    for name, (frame, box, plain, enrolled) in shown.items():
        image = frame.copy()
        region = face_region(box, image.shape[1], image.shape[0])
        redact(image, region)
        outside = np.ones(image.shape[:2], bool)
        outside[region.y0 : region.y1, region.x0 : region.x1] = False
        assert np.array_equal(image[outside], frame[outside]), f"{style} touched pixels outside the region"
        embedding = embedder.embed(image, box)
        to_self, to_enrolment = np.linalg.norm(embedding - plain), np.linalg.norm(embedding - enrolled)
        distances[name] = round(float(min(to_self, to_enrolment)), 3)
    print(f"\n{style}: distance of each redacted face to itself (min of unredacted, enrolment): {distances}")
    recognised = {n: d for n, d in distances.items() if d < EXCLUDED_THRESHOLD}
    assert not recognised, f"{style} left these faces recognisable: {recognised}"


@pytest.mark.parametrize("style", sorted(REDACTORS))
def test_styles_work_in_place_on_any_region_and_only_there(style):
    # a one-pixel box, the whole frame, a corner at the frame's edge, an empty box, a sliver
    original = np.random.default_rng(1).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    for box in (Box(10, 10, 11, 11), Box(0, 0, 160, 90), Box(150, 80, 160, 90), Box(5, 5, 5, 9), Box(40, 20, 43, 70)):
        image = original.copy()
        assert REDACTORS[style](image, box) is None  # in place
        assert image.shape == original.shape and image.dtype == np.uint8
        outside = np.ones(image.shape[:2], bool)
        outside[box.y0 : box.y1, box.x0 : box.x1] = False
        assert np.array_equal(image[outside], original[outside]), (style, box)
        inside, before = image[box.y0 : box.y1, box.x0 : box.x1], original[box.y0 : box.y1, box.x0 : box.x1]
        if box.width >= 8 and box.height >= 8:  # room for detail: none of it is left
            detail = lambda patch: float(np.abs(np.diff(patch.astype(np.int16), axis=1)).mean())
            assert detail(inside) < 0.2 * detail(before), (style, box)
