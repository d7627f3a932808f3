"""Builds the privacy engine from configuration: detectors, policy, identity worker, background."""

from __future__ import annotations

import logging

import cv2

from blur.background import BackgroundBlur
from blur.centerface import CenterFaceDetector
from blur.detector import BlazeFaceDetector
from blur.engine import PrivacyEngine
from blur.models import model_hashes, model_path
from blur.policy import FacePolicy, parse_policy
from pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

FAST_MODEL = "face_detection_full_range_sparse.tflite"
STRONG_MODEL = "centerface.onnx"
SEGMENTATION_MODEL = "selfie_segmentation_landscape.tflite"
ENGINE_MODELS = [FAST_MODEL, STRONG_MODEL, SEGMENTATION_MODEL]


def load_gallery(client, storage, bucket: str):
    """The bucket's exclusion gallery (`gallery/` objects, read by upload/, parsed by blur/)."""
    from blur.identity import Gallery, entry_from_bytes
    from upload.gallery_store import read_people

    return Gallery.from_entries([entry_from_bytes(data) for data in read_people(client, storage, bucket).values()])


def build_engine(config: PipelineConfig, gallery=None, wait_for_identity: bool = True) -> tuple[PrivacyEngine, dict[str, str]]:
    """The engine and the SHA-256 of every model it runs (for the manifest).

    `gallery` is needed by the `exclude` and `allow` policies; `wait_for_identity` is for batch
    work, where frames may wait for their tracks' identity (live recording never waits).
    """
    # OpenCV's worker threads spin while they wait: on the small regions it pixelates, two threads
    # took twice the CPU of one (114 against 57 µs a face) in the same time. Every stage already
    # has a thread of its own, so OpenCV gets one; CPU is what two cores run short of.
    cv2.setNumThreads(1)
    face_policy, background = parse_policy(config.policy)
    used = [FAST_MODEL, STRONG_MODEL] + ([SEGMENTATION_MODEL] if background else [])
    if face_policy in ("exclude", "allow"):
        from blur.identity import MIN_FACE_PX, MIN_SMALL_FACE_PX, FaceEmbedder
        from blur.identity import model_hashes as identity_hashes
        from blur.identity_worker import IdentityWorker

        if gallery is None:
            raise ValueError("the exclude and allow policies need a gallery")
        embedder = FaceEmbedder(min_face_px=MIN_SMALL_FACE_PX)

        def chipper(image, box):
            chip, quality = embedder.chip_and_quality(image, box)
            return chip, quality.can_clear, box.width < MIN_FACE_PX  # small: SFace must agree

        policy = FacePolicy(
            face_policy,
            identity=IdentityWorker(gallery, max_pending=config.identity_backlog,
                                    niceness=0 if wait_for_identity else config.identity_niceness),
            chipper=chipper,
            wait_for_identity=wait_for_identity,
            recheck_frames=config.identity_recheck_frames,
            clear_votes=config.identity_clear_votes,
            vote_gap=config.identity_vote_gap,
            clear_distance=config.identity_clear_distance,
        )
        if gallery.uses_sface:  # the worker runs SFace on small faces (`blur.identity_worker`)
            from blur.sface import SFACE

            used.append(SFACE)
        hashes = {**model_hashes(used), **identity_hashes()}
    else:
        policy = FacePolicy(face_policy)
        hashes = model_hashes(used)
    try:
        fast = BlazeFaceDetector(model_path(FAST_MODEL), min_score=config.min_face_score)
        strong = CenterFaceDetector(
            model_path(STRONG_MODEL),
            config.strong_width,
            config.strong_height,
            min_score=config.strong_min_score,
            threads=config.strong_threads,
        )
        back = BackgroundBlur(model_path(SEGMENTATION_MODEL)) if background else None
    except BaseException:
        policy.close()
        raise
    engine = PrivacyEngine(
        fast,
        strong,
        policy,
        strong_every=config.strong_every,
        hold_frames=config.hold_frames,
        long_hold_frames=config.long_hold_frames,
        style=config.style,
        background=back,
        budget_s=None if wait_for_identity else config.detection_budget_s,
        in_background=True,
        # live: a frame waits at most for the next anchor's search; a file lets the fast search run ahead
        lookahead=config.batch_lookahead if wait_for_identity else config.strong_every,
    )
    return engine, hashes
