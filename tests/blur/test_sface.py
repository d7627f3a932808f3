"""SFace on dlib's chips: a second opinion that makes faces too small for dlib alone safer to judge."""

import cv2
import numpy as np
import pytest

from blur.errors import ModelError
from blur.identity import (EXCLUDED_THRESHOLD, SFACE_THRESHOLD, Enroller, FaceEmbedder, Gallery, GalleryEntry,
                            cosine_distances)
from blur.identity_worker import IdentityWorker
from blur.sface import SFACE, SFaceEmbedder, graph_bytes
from blur.types import Box
from fixtures.faces import load_faces, load_people


@pytest.fixture(scope="module")
def people():
    everyone = load_people()
    everyone.update(load_faces())
    return everyone


@pytest.fixture(scope="module")
def models():
    return FaceEmbedder(min_face_px=16), SFaceEmbedder()  # 16: chips for 20 px faces too


def shrunk(photo, width):
    box = Box(*photo.face_box)
    s = width / box.width
    image = np.ascontiguousarray(cv2.resize(photo.image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))
    x0, y0 = int(box.x0 * s), int(box.y0 * s)
    return image, Box(x0, y0, x0 + width, int(box.y1 * s))


def test_embeddings_are_unit_vectors_and_a_batch_equals_its_faces_one_by_one(people, models):
    dlib_model, sface = models
    chips = np.stack([dlib_model.chip(p.image, Box(*p.face_box)) for p in people["obama"][:3]])
    batch = sface.embed_chips(chips)
    assert batch.shape == (3, 128) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1, atol=1e-5)
    assert np.abs(batch - np.concatenate([sface.embed_chips(c[None]) for c in chips])).max() < 1e-4
    with pytest.raises(ValueError, match="150"):
        sface.embed_chips(chips[:, :112, :112])


def test_another_file_is_refused_as_a_model():
    with pytest.raises(ModelError):
        graph_bytes(b"not a model")


def test_at_20_px_the_two_models_together_miss_fewer_people_than_dlib_alone_at_22_px(people, models):
    """Each person is enrolled from their first photograph and shown in every other, shrunk to
    the back row of a classroom. A miss (own distance at or past the threshold) is what would
    leave an excluded student visible; a 20 px face may only be cleared when both models say it
    is nobody enrolled, so it is missed only when both miss it."""
    dlib_model, sface = models
    identities = sorted(people)
    enrolled = [dlib_model.chip(people[i][0].image, Box(*people[i][0].face_box)) for i in identities]
    dlib_enrolled, sface_enrolled = dlib_model.embed_chips(np.stack(enrolled)), sface.embed_chips(np.stack(enrolled))
    missed = {}
    cleared_strangers = []
    for width in (22, 20):
        dlib_miss, both_miss = [], []
        for index, identity in enumerate(identities):
            for photo in people[identity][1:]:
                chip = dlib_model.chip(*shrunk(photo, width))
                d = np.linalg.norm(dlib_enrolled - dlib_model.embed_chip(chip), axis=1)
                c = cosine_distances(sface.embed_chips(chip[None])[0], sface_enrolled)
                dlib_miss.append(d[index] >= EXCLUDED_THRESHOLD)
                both_miss.append(d[index] >= EXCLUDED_THRESHOLD and c[index] >= SFACE_THRESHOLD)
                if width == 20:  # as seen by everyone else's enrolment: should be cleared
                    others = np.arange(len(identities)) != index
                    cleared_strangers.append(d[others].min() >= EXCLUDED_THRESHOLD and c[others].min() >= SFACE_THRESHOLD)
        missed[width] = (np.mean(dlib_miss), np.mean(both_miss))
        assert len(dlib_miss) > 60
    # measured: dlib alone misses 0.155 at 20 px and 0.127 at 22 px; both together 0.056 at 20 px,
    # while clearing 0.97 of the strangers
    assert missed[20][1] <= missed[22][0], missed
    assert missed[20][1] < missed[20][0], missed
    assert np.mean(cleared_strangers) >= 0.85, "agreement still clears most people nobody enrolled"


def test_the_identity_worker_judges_small_faces_with_both_models(people, models):
    dlib_model, _ = models
    enroller = Enroller()
    student = people["obama"][0]
    gallery = Gallery.from_entries([GalleryEntry("stu-1", "excluded", *(v[None] for v in enroller.embed(
        student.image, Box(*student.face_box))))])
    assert gallery.uses_sface
    own, stranger = dlib_model.chip(*shrunk(people["obama"][1], 21)), dlib_model.chip(*shrunk(people["hanks"][0], 21))
    with IdentityWorker(gallery) as worker:
        assert SFACE in worker.model_hashes  # the manifest names the model that judged small faces
        for track_id, (chip, small) in enumerate(((own, True), (stranger, True), (stranger, False))):
            assert worker.submit(track_id, chip, small)
        answers = dict(worker.wait([0, 1, 2], timeout=30))
    assert answers[0].role == "excluded"
    assert answers[1].role is None and answers[1].sface_excluded_distance >= SFACE_THRESHOLD
    assert answers[2].role is None and answers[2].sface_excluded_distance is None  # big enough for dlib: not asked
    # the same student enrolled before SFace embeddings were stored: no small face can be cleared
    older = Gallery.from_entries([GalleryEntry("stu-1", "excluded", gallery.entries[0].embeddings)])
    with IdentityWorker(older) as worker:
        assert SFACE not in worker.model_hashes  # nothing for SFace to compare with: not loaded
        assert worker.submit(1, stranger, True)
        [(_, match)] = worker.wait([1], timeout=30)
    assert match.role is None and match.sface_excluded_distance == 0.0
