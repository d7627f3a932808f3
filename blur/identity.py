"""Face identity: dlib's ResNet embeddings of aligned face chips, and the gallery they match.

The frame process only cuts chips (`FaceEmbedder.chip`: a 5-point landmark fit, about 3 ms);
the ResNet (`embed_chips`: dlib's network run by onnxruntime, `blur.resnet_onnx`, about 8 ms a
face) runs in the identity worker process (`blur.identity_worker`). The gallery holds pseudonymous ids and embeddings, never
names or photographs.

Measured on the registry faces (`fixtures.faces`), enrolled from the full-size photograph:
- the same person in another photograph: 0.33-0.43 (obama vs obama2/obama3);
- different people: 0.65-0.98 at full size; t1.jpg's six people are the closest pairs;
- a face shrunk to 24-27 px wide (the back row of a 720p classroom): 0.26-0.57 from its own
  enrolment (another photograph of obama: 0.44-0.55), but the nearest other identity comes
  down to 0.56-0.62 (t1_d/t1_e): small faces drift towards everyone, not only themselves, and
  about 1 in 44 lands within 0.6 of a look-alike at 22-28 px (none at 32 px and up);
- a redacted face or a grey square: 0.63-0.72 from every enrolled face.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from blur.errors import ModelError, ModelMissing, PrivacyError
from blur.models import sha256_of
from blur.types import Box

SHAPE_PREDICTOR = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
MODEL_FILES = (SHAPE_PREDICTOR, RESNET)

# As shipped in face_recognition_models==0.3.0 (pinned in pyproject.toml).
MODEL_SHA256 = {
    SHAPE_PREDICTOR: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    RESNET: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}

EMBEDDING_SIZE = 128
CHIP_SIZE = 150  # what dlib's ResNet takes
CHIP_PADDING = 0.25  # dlib's default context around the aligned face

# The landmark fit misplaces eyes on faces a few dozen pixels wide; upscaling the region around
# the box first brings a 24 px face from 0.53 to 0.44-0.50 of its enrolment (at 44 px: 0.31 to
# 0.22). Upscaling further (150 px) measured no better than 80-100.
UPSCALE_TO = 100
# Context cut around the box before upscaling: the chip's padding reaches about this far.
CROP_MARGIN = 0.6

# Narrower faces get no chip (ValueError), so their tracks stay as unknown: redacted under
# `exclude`. 44 shrunk registry faces each (4 sub-pixel shifts, sensor noise), enrolled at full
# size: at 18 px 8 of 44 missed their own enrolment (≥ 0.6), at 20 px 2, at 22 and 24 px none
# (worst 0.59 and 0.57).
MIN_FACE_PX = 22
# Faces from this width up to MIN_FACE_PX are chipped too, but judged by both models (dlib and
# SFace, `Gallery.match`): at 20 px the faces both miss (0.056 of 71 registry faces) are fewer than
# those dlib alone misses at 22 px (0.127; `tests/blur/test_sface.py`). Narrower still: no chip.
MIN_SMALL_FACE_PX = 20

# dlib's documented operating point: same person below 0.6 on LFW (99.38 %).
# Excluded students: err towards matching. A missed match leaves a child who may not be recorded
# visible; a false match only blurs someone. So excluded is checked first, with the looser
# threshold, and wins over staff. 0.6 catches every face measured from MIN_FACE_PX up (worst
# 0.59 at 22 px, 0.57 at 24 px, 0.43 at 40 px from another photograph). Going higher is not
# free: at 22-28 px the nearest *other* identity is already 0.56-0.62, at full size t1_d/t1_e
# are 0.65 apart, and a redacted or non-face chip is 0.63-0.72 from everyone, so 0.65 would
# blur look-alikes and match noise.
EXCLUDED_THRESHOLD = 0.6
# Staff: a false match leaves a student unblurred under `allow`, so be stricter. The teacher is
# near the camera (about 100 px), where another photograph of the same person is 0.33-0.43.
STAFF_THRESHOLD = 0.5
# ... and up to this distance when SFace, too, puts the face within its threshold of the same
# staff member. Measured on every registry identity with two or more photographs, enrolled from
# the first, against every registry face (their other photographs, the crowd's, the group
# photos' strangers) at 22-40 px with sensor noise and sub-pixel shifts, three looks each: of
# the teachers' own looks 675 are under 0.5 and 186 more from 0.5 to 0.55, where SFace agrees on
# 171; of 23,715 strangers' looks none is under 0.5, 2 are from 0.5 to 0.55 (0.523 and 0.541, a
# 22 px stranger and one photograph of obama) and SFace puts both beyond 0.6 (0.68, 0.71). dlib
# alone at 0.55 would have shown that stranger; at 0.5 a teacher seen at 27 px, 0.509 and 0.531
# from his enrolment, stayed hidden for his first two seconds in the real suite.
STAFF_AGREED_THRESHOLD = 0.55
# SFace (`blur.sface`) cosine distance below which a small face is taken as the enrolled person:
# where 95 % of strangers are still further away, on the registry photographs (their 5th
# percentile: 0.59-0.61 from full size down to 20 px)
SFACE_THRESHOLD = 0.6

ROLES = ("excluded", "staff")
# /2 adds `sface`: the person's SFace embeddings (`blur.sface`), which faces narrower than
# `MIN_FACE_PX` need before they may be cleared. /1 entries are still read, without them.
ENTRY_SCHEMA = "classcap.gallery-entry/2"
ENTRY_SCHEMAS = ("classcap.gallery-entry/1", ENTRY_SCHEMA)
GALLERY_SCHEMA = "classcap.gallery/1"
# Pseudonymous ids also name one storage object per person: keep them short and path-safe.
_PERSON_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _model_dir() -> Path:
    try:
        import face_recognition_models
    except ImportError as err:
        raise ModelError("The face_recognition_models package is not installed; run `make setup`.") from err
    return Path(face_recognition_models.face_recognition_model_location()).parent


def _checked_path(name: str) -> Path:
    path = _model_dir() / name
    if not path.is_file():
        raise ModelMissing(
            f"Model {name} is missing from {path.parent}; reinstall face_recognition_models (`make setup`)."
        )
    actual = sha256_of(path)
    if actual != MODEL_SHA256[name]:
        raise ModelError(
            f"Model {path} has SHA-256 {actual}, expected {MODEL_SHA256[name]}; reinstall face_recognition_models."
        )
    return path


def model_hashes() -> dict[str, str]:
    """SHA-256 of each identity model file, computed from the files and checked against the pins."""
    return {name: sha256_of(_checked_path(name)) for name in MODEL_FILES}


class FaceEmbedder:
    """Aligned face chips (landmarks) and their 128-d embeddings (ResNet).

    The ResNet is loaded on the first `embed_chip`, so a process that only cuts chips never
    holds it.
    """

    def __init__(self, min_face_px: int = MIN_FACE_PX, threads: int = 1) -> None:
        import dlib  # imported here: only the processes that need identity pay for it

        self._dlib = dlib
        self.min_face_px = min_face_px
        self.threads = threads  # the ResNet's onnxruntime threads
        self._predictor = dlib.shape_predictor(str(_checked_path(SHAPE_PREDICTOR)))
        self._resnet = None

    def chip(self, image_rgb: np.ndarray, box: Box) -> np.ndarray:
        """The 150×150×3 uint8 aligned chip of the face in `box`, from an RGB uint8 frame."""
        return self.chip_and_quality(image_rgb, box)[0]

    def chip_and_quality(self, image_rgb: np.ndarray, box: Box) -> tuple[np.ndarray, "ChipQuality"]:
        """The chip, and whether it shows the face well enough for a non-match to count."""
        if box.width < self.min_face_px or box.height <= 0:
            raise ValueError(f"A face {box.width} px wide is too small to identify (minimum {self.min_face_px} px).")
        height, width = image_rgb.shape[:2]
        # A face cut by the edge of the picture: its box is clipped there, the landmarks are fitted
        # to half a face, and its non-match says nothing (an excluded student half out of the
        # picture after a camera cut came out 0.6-0.7 from their enrolment and was cleared)
        truncated = box.x0 <= EDGE_PX or box.y0 <= EDGE_PX or box.x1 >= width - EDGE_PX or box.y1 >= height - EDGE_PX
        box = landmark_box(box)
        m = CROP_MARGIN
        region = box.padded(m, m, m, m, width, height)
        crop = image_rgb[region.y0 : region.y1, region.x0 : region.x1]
        scale = max(1.0, UPSCALE_TO / box.width)
        if scale > 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        crop = np.ascontiguousarray(crop, dtype=np.uint8)
        rect = self._dlib.rectangle(
            int(round((box.x0 - region.x0) * scale)),
            int(round((box.y0 - region.y0) * scale)),
            int(round((box.x1 - region.x0) * scale)),
            int(round((box.y1 - region.y0) * scale)),
        )
        shape = self._predictor(crop, rect)
        chip = self._dlib.get_face_chip(crop, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return chip, chip_quality(shape, chip, truncated)

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        """The (128,) float32 embedding of an aligned chip from `chip`."""
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
            raise ValueError(f"A face chip is {CHIP_SIZE}×{CHIP_SIZE}×3 uint8, not {chip.shape} {chip.dtype}.")
        return self.embed_chips(chip[None])[0]

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """(n, 128) float32 embeddings of n aligned chips, in one pass of the network."""
        if self._resnet is None:
            from blur.resnet_onnx import ResNetEmbedder

            self._resnet = ResNetEmbedder(_checked_path(RESNET).read_bytes(), self.threads)
        return self._resnet.embed(chips)

    def embed(self, image_rgb: np.ndarray, box: Box) -> np.ndarray:
        return self.embed_chip(self.chip(image_rgb, box))


class Enroller:
    """Both models' embeddings of the face in an enrolment photograph, from the same chip: dlib's
    (`FaceEmbedder`) and SFace's (`blur.sface`), as `GalleryEntry.embeddings` and `.sface` hold them."""

    def __init__(self) -> None:
        from blur.sface import SFaceEmbedder

        self.embedder = FaceEmbedder()
        self.sface = SFaceEmbedder()

    def embed(self, image_rgb: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
        chip = self.embedder.chip(image_rgb, box)[None]
        return self.embedder.embed_chips(chip)[0], self.sface.embed_chips(chip)[0]


def landmark_box(box: Box) -> Box:
    """The box dlib's landmark model expects: square, brows to chin, as its own detector gives.

    CenterFace's boxes reach up into the hair (a 127 px face came as 140 × 163); given that box
    the model put the landmarks of a frontal face at a yaw of 0.42, so its non-match could not
    clear the student, who stayed blurred. The square at the bottom of the box put it at 0.37.
    """
    if box.height > box.width:
        return Box(box.x0, box.y1 - box.width, box.x1, box.y1)
    return box


@dataclass(frozen=True)
class ChipQuality:
    """Whether a chip is good enough for a *non*-match to mean "not an excluded student".

    A match is evidence whatever the chip; the absence of one is only evidence when the face
    was seen well. dlib puts a face turned aside, looking down, in the dark or out of focus as
    far from everyone (0.6–0.7) as a stranger, so such a chip may not clear a track.
    """

    yaw: float  # nose offset from the eyes' midpoint, in eye distances: ~0 frontal, ~0.3 at 45°
    contrast: float  # grey-level standard deviation of the chip's centre
    sharpness: float  # variance of the Laplacian of the chip's centre
    truncated: bool = False  # the face box touches the edge of the picture

    @property
    def can_clear(self) -> bool:
        return self.yaw <= MAX_CLEARING_YAW and self.contrast >= MIN_CLEARING_CONTRAST and not self.truncated


# The yaw estimate from five landmarks separates only extreme turns, and sharpness does not
# separate at all (small faces are upscaled), so only these gate a clearing. Contrast: at 18, the
# value tuned on the synthetic dimmed classrooms, 21 % of the real-photograph suite's faces failed
# (dark party photographs) and stayed blurred; at 14, 2.6 %, but dim faces were still the largest
# group of that suite's faces left hidden for want of a good view. What the gate guards against is
# a dark chip on which dlib no longer recognises an excluded student. Registry faces shown at
# 22-48 px, lit and then dimmed with sensor noise (19 levels, two noise seeds), chips that pass
# yaw and edge: of the faces dlib recognises lit, dimming made it miss (own distance past the
# clearing distance) at contrast 14-18 6 of 418 chips, 12-14 3 of 188, 10-12 6 of 208, 6-10 18 of
# 435, under 6 114 of 346. Every miss from 10 to 18 but one is a single photograph already on the
# edge when lit (johnson_6, 0.644-0.652), missed as often at 14-18; the one made by dimness is at
# 10.1 (willis_2 at 26 px: 0.52 lit, 0.68 dim). So 12: the lowest contrast where dimming made dlib
# miss no face it recognised lit (`tests/blur/test_identity.py`). Settled faces visible under
# `exclude`: real suite 94.39 % -> 95.17 %, hard (dimmed) suite 81.2 % -> 84.3 %, 0 leak frames.
MAX_CLEARING_YAW = 0.4
MIN_CLEARING_CONTRAST = 12.0
EDGE_PX = 2  # a face box this close to the edge of the picture is cut off by it


def chip_quality(shape, chip: np.ndarray, truncated: bool = False) -> ChipQuality:
    points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float32)
    right_eye, left_eye, nose = points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    eye_distance = float(np.linalg.norm(left_eye - right_eye)) or 1.0
    axis = (left_eye - right_eye) / eye_distance
    yaw = abs(float(np.dot(nose - (left_eye + right_eye) / 2, axis))) / eye_distance
    centre = cv2.cvtColor(chip[30:120, 30:120], cv2.COLOR_RGB2GRAY)
    return ChipQuality(
        yaw=round(yaw, 3),
        contrast=round(float(centre.std()), 1),
        sharpness=round(float(cv2.Laplacian(centre, cv2.CV_64F).var()), 1),
        truncated=truncated,
    )


# ---------------------------------------------------------------------------------------------
# Gallery


@dataclass(frozen=True)
class IdentityMatch:
    """The gallery's answer for one face: who (or None) and how far the nearest embedding was."""

    person_id: str | None
    role: str | None
    distance: float
    # how far the nearest excluded student's embedding was (inf when none is enrolled): a face
    # only just outside the threshold is not clearly someone else
    excluded_distance: float = math.inf
    # a small face's SFace cosine distance to the nearest excluded student (inf when none is
    # enrolled; 0.0 when one is enrolled without SFace embeddings, so nothing can be said);
    # None when the face was not small and SFace was not asked
    sface_excluded_distance: float | None = None


@dataclass(frozen=True)
class GalleryEntry:
    """One person: a pseudonymous id, a role, and one or more embeddings (never a photograph).

    `embeddings` is stored as a tuple of 128-float tuples, each value rounded to float32, so
    that equal entries serialize to equal bytes.
    """

    person_id: str
    role: str
    embeddings: tuple[tuple[float, ...], ...]
    # SFace embeddings (unit vectors, `blur.sface`) of the same photographs; empty in an entry
    # enrolled before they were stored: such a person keeps every small face hidden (`Gallery.match`)
    sface: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.person_id, str) or not _PERSON_ID.fullmatch(self.person_id):
            raise ValueError(
                f"Person id {self.person_id!r} must be a pseudonymous id of 1-64 letters, digits, '_' or '-'."
            )
        if self.role not in ROLES:
            raise ValueError(f"Role {self.role!r} must be one of {', '.join(ROLES)}.")
        matrix = np.asarray(self.embeddings, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] != EMBEDDING_SIZE:
            raise ValueError(
                f"Embeddings of {self.person_id} must be n×{EMBEDDING_SIZE} with n ≥ 1, not {matrix.shape}."
            )
        if not np.isfinite(matrix).all():
            raise ValueError(f"Embeddings of {self.person_id} contain non-finite values.")
        object.__setattr__(self, "embeddings", tuple(tuple(float(v) for v in row) for row in matrix))
        sface = np.asarray(self.sface, dtype=np.float32)
        if sface.size == 0:
            sface = sface.reshape(0, EMBEDDING_SIZE)
        if sface.ndim != 2 or sface.shape[1] != EMBEDDING_SIZE:
            raise ValueError(f"SFace embeddings of {self.person_id} must be n×{EMBEDDING_SIZE}, not {sface.shape}.")
        if not np.isfinite(sface).all():
            raise ValueError(f"SFace embeddings of {self.person_id} contain non-finite values.")
        object.__setattr__(self, "sface", tuple(tuple(float(v) for v in row) for row in sface))

    def matrix(self) -> np.ndarray:
        return np.asarray(self.embeddings, dtype=np.float32)

    def sface_matrix(self) -> np.ndarray:
        return np.asarray(self.sface, dtype=np.float32).reshape(-1, EMBEDDING_SIZE)

    def _doc(self, canonical: bool = False) -> dict:
        # The order of a person's embeddings carries no meaning: the version sorts them. An entry
        # without SFace embeddings has the document (and so the gallery version) it always had.
        def rows(values):
            return sorted(values) if canonical else [list(row) for row in values]

        doc = {"person_id": self.person_id, "role": self.role, "embeddings": rows(self.embeddings)}
        if self.sface or not canonical:
            doc["sface"] = rows(self.sface)
        return doc


def entry_bytes(entry: GalleryEntry) -> bytes:
    """One person's storage object: JSON with a schema field; parsed back by `entry_from_bytes`."""
    doc = {"schema": ENTRY_SCHEMA, **entry._doc()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def entry_from_bytes(data: bytes) -> GalleryEntry:
    """Parse `entry_bytes` output; PrivacyError when it is not a valid gallery entry."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PrivacyError(f"A gallery entry is not valid JSON ({err.msg}).") from err
    if not isinstance(doc, dict) or doc.get("schema") not in ENTRY_SCHEMAS:
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise PrivacyError(f"A gallery entry has schema {found!r}, expected one of {', '.join(map(repr, ENTRY_SCHEMAS))}.")
    fields = ("person_id", "role", "embeddings") + (("sface",) if doc["schema"] == ENTRY_SCHEMA else ())
    missing = [k for k in fields if k not in doc]
    if missing:
        raise PrivacyError(f"A gallery entry lacks the field(s) {', '.join(missing)}.")
    try:
        sface = tuple(map(tuple, doc.get("sface", ())))
        return GalleryEntry(doc["person_id"], doc["role"], tuple(map(tuple, doc["embeddings"])), sface)
    except (TypeError, ValueError) as err:
        raise PrivacyError(f"A gallery entry is not valid: {err}") from err


@dataclass(frozen=True)
class Gallery:
    """The exclusion and staff gallery, matched by nearest embedding.

    A face matches an excluded person when within `excluded_threshold` of any of their
    embeddings, and a staff member when within `staff_threshold`; excluded wins over staff
    whatever the distances, so a face close to both is blurred. `version` covers the entries
    only (not the thresholds), whatever their order.

    A small face (narrower than `MIN_FACE_PX`, where dlib alone misses more excluded students)
    is judged by SFace as well (`blur.sface`): it is excluded when *either* model matches an
    excluded student, and staff only when *both* match the same staff member. An excluded
    student enrolled without SFace embeddings leaves nothing to say about a small face
    (`sface_excluded_distance` 0.0), so no small face can be cleared until they are re-enrolled.
    """

    entries: tuple[GalleryEntry, ...] = ()
    excluded_threshold: float = EXCLUDED_THRESHOLD
    staff_threshold: float = STAFF_THRESHOLD
    staff_agreed_threshold: float = STAFF_AGREED_THRESHOLD
    sface_threshold: float = SFACE_THRESHOLD
    _matrix: dict = field(default=None, init=False, repr=False, compare=False)
    _sface: dict = field(default=None, init=False, repr=False, compare=False)
    _sface_complete: bool = field(default=True, init=False, repr=False, compare=False)  # every excluded entry has SFace

    def __post_init__(self) -> None:
        entries = tuple(self.entries)
        ids = [e.person_id for e in entries]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"Person ids must be unique in a gallery; repeated: {', '.join(twice)}.")
        object.__setattr__(self, "entries", entries)
        # Per role and model: the stacked embeddings and, per row, the index of its entry.
        matrix, sface = {}, {}
        for role in ROLES:
            matrix[role] = _stacked([(i, e.matrix()) for i, e in enumerate(entries) if e.role == role])
            sface[role] = _stacked([(i, e.sface_matrix()) for i, e in enumerate(entries) if e.role == role])
        object.__setattr__(self, "_matrix", matrix)
        object.__setattr__(self, "_sface", sface)
        object.__setattr__(self, "_sface_complete", all(e.sface for e in entries if e.role == "excluded"))

    @classmethod
    def from_entries(cls, entries, **thresholds) -> "Gallery":
        return cls(tuple(entries), **thresholds)

    @property
    def version(self) -> str:
        """SHA-256 hex of the canonical serialization of the entries (order-independent)."""
        doc = {"schema": GALLERY_SCHEMA, "entries": sorted((e._doc(canonical=True) for e in self.entries),
                                                           key=lambda d: d["person_id"])}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @property
    def uses_sface(self) -> bool:
        """Whether any entry holds SFace embeddings (if none does, a small face's SFace
        embedding cannot change any answer, and need not be computed)."""
        return any(e.sface for e in self.entries)

    def wants_sface(self, embedding: np.ndarray, small: bool = False) -> bool:
        """Whether the face's SFace embedding could change its answer: a small face's always
        (when the gallery uses SFace), and any face's whose dlib distance to the nearest staff
        member lies between `staff_threshold` and `staff_agreed_threshold`."""
        if not self.uses_sface:
            return False
        if small:
            return True
        distance, _ = _nearest(self._matrix["staff"], _query(embedding), _euclidean)
        return self.staff_threshold <= distance < self.staff_agreed_threshold

    def match(self, embedding: np.ndarray, sface: np.ndarray | None = None, small: bool = False) -> IdentityMatch:
        """The answer for one face from its dlib embedding and, where `wants_sface` says so, its
        SFace one (None when the gallery does not use SFace: then no small face can be staff, nor
        cleared while an excluded student is enrolled)."""
        query = _query(embedding)
        nearest = {role: _nearest(self._matrix[role], query, _euclidean) for role in ROLES}
        excluded, student = nearest["excluded"]
        sface_query = _query(sface) if sface is not None else None
        sface_excluded = None
        if small:
            s_distance, s_student = _nearest(self._sface["excluded"], sface_query, cosine_distances)
            # no SFace embedding of the face, or an excluded student without any: nothing can be said
            known = self._sface_complete and sface_query is not None
            sface_excluded = math.inf if student is None else s_distance if known else 0.0

        def answer(owner, role, distance):
            return IdentityMatch(self.entries[owner].person_id, role, distance, excluded, sface_excluded)

        # excluded first, whatever the distances: privacy wins a tie
        if excluded < self.excluded_threshold:
            return answer(student, "excluded", excluded)
        if small and s_distance < self.sface_threshold:  # SFace saw an excluded student that dlib did not
            return answer(s_student, "excluded", excluded)
        distance, staff = nearest["staff"]
        if distance < self.staff_threshold and (not small or self._sface_agrees(staff, sface_query)):
            return answer(staff, "staff", distance)
        if distance < self.staff_agreed_threshold and self._sface_agrees(staff, sface_query):
            return answer(staff, "staff", distance)  # just beyond dlib's threshold, and SFace agrees
        return IdentityMatch(None, None, min(d for d, _ in nearest.values()), excluded, sface_excluded)

    def _sface_agrees(self, owner: int, query: np.ndarray | None) -> bool:
        """Whether SFace, too, puts the face within its threshold of this staff member."""
        stacked, owners = self._sface["staff"]
        own = stacked[owners == owner]
        return query is not None and len(own) > 0 and float(cosine_distances(query, own).min()) < self.sface_threshold


def _stacked(parts: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    rows = [m for _, m in parts if len(m)]
    owners = [i for i, m in parts for _ in range(len(m))]
    stacked = np.concatenate(rows) if rows else np.zeros((0, EMBEDDING_SIZE), np.float32)
    return stacked, np.asarray(owners, dtype=np.intp)


def _query(embedding: np.ndarray) -> np.ndarray:
    query = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if query.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"An embedding has {EMBEDDING_SIZE} values, not {query.shape[0]}.")
    return query


def _euclidean(query: np.ndarray, stacked: np.ndarray) -> np.ndarray:
    return np.linalg.norm(stacked - query, axis=1)


def cosine_distances(embedding: np.ndarray, enrolled: np.ndarray) -> np.ndarray:
    """1 − cosine similarity of one unit embedding (SFace's) to each row of `enrolled` (unit rows)."""
    return 1.0 - np.asarray(enrolled, np.float32) @ np.asarray(embedding, np.float32).reshape(EMBEDDING_SIZE)


def _nearest(matrix: tuple[np.ndarray, np.ndarray], query: np.ndarray | None, metric) -> tuple[float, int | None]:
    """(distance, entry index) of the nearest row; (inf, None) when there are none (or no query)."""
    stacked, owners = matrix
    if query is None or not len(stacked):
        return math.inf, None
    distances = metric(query, stacked)
    best = int(np.argmin(distances))
    return float(distances[best]), int(owners[best])
