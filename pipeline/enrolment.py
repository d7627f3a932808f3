"""Enrolment: the embeddings of the one face in a photograph, the photograph held in memory only
(`classcap gallery add` and the re-blur benchmark enrol with it)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from blur.centerface import CenterFaceDetector
from blur.models import model_path
from pipeline.config import ConfigError
from pipeline.engine_factory import STRONG_MODEL

ENROL_MAX_SIDE = 1280  # larger photos are scaled down before looking for the face


def read_face_image(path: Path) -> np.ndarray:
    """An RGB image from a file, held in memory only."""
    if not path.is_file():
        raise ConfigError(f"Image {path} does not exist.")
    image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f"{path} is not an image file classcap can read (use JPEG or PNG).")
    scale = ENROL_MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def embed_enrolment(paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (dlib, SFace) embedding pair per image; refuses images with no face or more than one."""
    from blur.identity import Enroller

    enroller = Enroller()
    embeddings = []
    for path in paths:
        image = read_face_image(path)
        detector = CenterFaceDetector(model_path(STRONG_MODEL), image.shape[1], image.shape[0], min_score=0.5)
        faces = [d for d in detector.detect(image) if d.box.width >= 20]
        detector.close()
        if not faces:
            raise ConfigError(f"{path} shows no face classcap can find; use a clear, front-facing photo of the person.")
        if len(faces) > 1:
            raise ConfigError(f"{path} shows {len(faces)} faces; use a photo of this one person only.")
        embeddings.append(enroller.embed(image, faces[0].box))
        del image  # the photo goes no further than this loop
    return embeddings
