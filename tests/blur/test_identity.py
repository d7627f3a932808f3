"""Identity: real dlib embeddings of real faces, the gallery, and the identity worker process.

Faults are injected only where a real one cannot be provoked on demand (a damaged model file, a
malformed request in the worker's queue, a killed worker process).
"""

import hashlib
import json
import multiprocessing
import os
import signal
import time
from collections import defaultdict

import cv2
import numpy as np
import pytest

import blur.identity as identity
from blur.errors import ModelError, PrivacyError
from blur.identity import (
    EXCLUDED_THRESHOLD,
    MODEL_FILES,
    MODEL_SHA256,
    STAFF_AGREED_THRESHOLD,
    STAFF_THRESHOLD,
    FaceEmbedder,
    Gallery,
    GalleryEntry,
    IdentityMatch,
    entry_bytes,
    entry_from_bytes,
)
from blur.identity_worker import IdentityWorker
from blur.types import Box
from fixtures.classroom import Classroom, ClassroomSpec
from fixtures.faces import load_faces

DLIB_SAME_PERSON = 0.6


@pytest.fixture(scope="module")
def faces():
    return load_faces()


@pytest.fixture(scope="module")
def embedder():
    return FaceEmbedder()


@pytest.fixture(scope="module")
def photos(faces, embedder):
    """Photo name -> (identity, full-size embedding)."""
    return {p.name: (p.identity, embedder.embed(p.image, Box(*p.face_box))) for ps in faces.values() for p in ps}


@pytest.fixture(scope="module")
def enrolled(faces, photos):
    """Identity -> embedding of its first photograph (what a `gallery add` would store)."""
    return {identity: photos[ps[0].name][1] for identity, ps in faces.items()}


def dist(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


# ---------------------------------------------------------------------------------------------
# Models


def test_model_files_are_pinned_and_checked():
    assert set(identity.model_hashes()) == set(MODEL_FILES)
    assert identity.model_hashes() == MODEL_SHA256


def test_a_damaged_model_file_is_refused(tmp_path, monkeypatch):
    for name in MODEL_FILES:
        (tmp_path / name).write_bytes(b"not a model")
    monkeypatch.setattr(identity, "_model_dir", lambda: tmp_path)  # fault injection: damaged files
    with pytest.raises(ModelError, match="SHA-256"):
        identity.model_hashes()
    with pytest.raises(ModelError, match="SHA-256"):
        FaceEmbedder()
    (tmp_path / MODEL_FILES[0]).unlink()
    with pytest.raises(ModelError, match="missing"):
        FaceEmbedder()


def test_the_onnx_resnet_gives_dlibs_own_embeddings(faces, embedder):
    # given real faces at full size and shrunk to the back row, chipped as the engine does
    import cv2
    import dlib

    chips = []
    for photo in (p for ps in faces.values() for p in ps):
        for width in (None, 30, 60):
            image, box = photo.image, Box(*photo.face_box)
            if width:
                s = width / box.width
                image = np.ascontiguousarray(cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))
                box = Box(*(int(v * s) for v in photo.face_box))
            chips.append(embedder.chip(image, box))
    # when dlib's own network and the graph built from the same model file embed them
    resnet = dlib.face_recognition_model_v1(str(identity._checked_path(identity.RESNET)))
    theirs = np.array([resnet.compute_face_descriptor(c) for c in chips], np.float32)
    ours = embedder.embed_chips(np.stack(chips))
    # then every value agrees to float rounding, one chip at a time or all in one pass
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.abs(np.stack([embedder.embed_chip(c) for c in chips]) - theirs).max() < 1e-5


def test_a_model_file_of_another_network_is_refused():
    from blur.resnet_onnx import build_onnx, read_dlib_resnet

    data = identity._checked_path(identity.RESNET).read_bytes()
    with pytest.raises(ModelError):
        read_dlib_resnet(data[: len(data) // 2])  # truncated
    with pytest.raises(ModelError):
        read_dlib_resnet(data + b"\x00")  # something after the last layer
    with pytest.raises(ModelError, match="expects max_pool"):
        build_onnx(*read_dlib_resnet(data.replace(b"max_pool_2", b"avg_pool_2", 1)))  # another layer there


# ---------------------------------------------------------------------------------------------
# Embeddings of real faces


def test_chips_and_embeddings_have_the_documented_shapes(faces, embedder):
    photo = faces["hanks"][0]
    chip = embedder.chip(photo.image, Box(*photo.face_box))
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    embedding = embedder.embed_chip(chip)
    assert embedding.shape == (128,) and embedding.dtype == np.float32
    with pytest.raises(ValueError):
        embedder.embed_chip(chip[:100])
    with pytest.raises(ValueError):
        embedder.chip(photo.image, Box(5, 5, 5, 20))
    with pytest.raises(ValueError, match="too small"):
        embedder.chip(photo.image, Box(10, 10, 10 + identity.MIN_FACE_PX - 1, 30))


def test_a_box_reaching_up_into_the_hair_is_chipped_like_the_face_it_holds(faces, embedder):
    # given faces, and each one's box stretched upwards by 30 %, as CenterFace draws them
    for photo in (faces["t1_b"][0], faces["t1_a"][0], faces["obama"][0]):
        x0, y0, x1, y1 = photo.face_box
        tall = Box(x0, max(0, y0 - 3 * (y1 - y0) // 10), x1, y1)
        # when both are chipped
        chip, quality = embedder.chip_and_quality(photo.image, Box(*photo.face_box))
        tall_chip, tall_quality = embedder.chip_and_quality(photo.image, tall)
        # then the tall box's landmarks say the same about the face, and its embedding is the same person's
        # (t1_b's slight turn read as 0.39 from its box and 0.42 from the tall one: no clearing)
        assert abs(tall_quality.yaw - quality.yaw) <= 0.01, (photo.name, quality, tall_quality)
        assert tall_quality.can_clear == quality.can_clear
        assert dist(embedder.embed_chip(chip), embedder.embed_chip(tall_chip)) < 0.2


def test_a_face_recognised_lit_is_not_cleared_dimmed_down_to_the_contrast_gate_and_darker_would_be():
    """The contrast gate decides which chips' non-matches may clear a face. Down to the gate, a
    face that dlib matches when lit must not come out far enough to be cleared when dimmed:
    otherwise a dark room would clear excluded students. Each person with several photographs is
    enrolled from the first and shown in the others at classroom sizes, lit and dimmed to
    dark-room levels with sensor noise. Only chips that could clear count (yaw and the picture's
    edge pass the gate); the faces are those dlib matches lit (own distance under the excluded
    threshold) on such a chip."""
    from fixtures.faces import load_people
    from pipeline.config import PipelineConfig

    people = load_people()
    people.update(load_faces())
    embedder = FaceEmbedder(min_face_px=16)
    ids = sorted(i for i in people if len(people[i]) >= 2)
    enrolled = embedder.embed_chips(np.stack([embedder.chip(people[i][0].image, Box(*people[i][0].face_box)) for i in ids]))
    clear_distance = PipelineConfig().identity_clear_distance
    rng = np.random.default_rng(0)
    looks = []  # (contrast, would be cleared) of the dimmed looks at faces matched lit
    for n, who in enumerate(ids):
        for photo in people[who][1:]:
            box = Box(*photo.face_box)
            for width in (22, 30, 44):
                s = width / box.width
                image = cv2.resize(photo.image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA).astype(np.float32)
                small = Box(int(box.x0 * s), int(box.y0 * s), int(box.x0 * s) + width, int(box.y1 * s))
                face = []  # (level, contrast, own distance) of the looks that could clear
                for level in (1.0, 0.6, 0.52, 0.46, 0.42, 0.38, 0.35, 0.32, 0.3, 0.28, 0.26, 0.24, 0.22, 0.2, 0.17, 0.14, 0.11):
                    dim = np.clip(image * level + rng.normal(0, 1.5, image.shape), 0, 255).astype(np.uint8)
                    chip, quality = embedder.chip_and_quality(dim, small)
                    if quality.yaw <= identity.MAX_CLEARING_YAW and not quality.truncated:
                        face.append((level, quality.contrast, np.linalg.norm(enrolled[n] - embedder.embed_chip(chip))))
                if face and face[0][0] == 1.0 and face[0][1] >= 18 and face[0][2] < EXCLUDED_THRESHOLD:
                    looks += [(contrast, own >= clear_distance) for _, contrast, own in face[1:]]
    contrast, cleared = np.array([c for c, _ in looks]), np.array([m for _, m in looks])
    passing = (contrast >= identity.MIN_CLEARING_CONTRAST) & (contrast < 18)
    dark = contrast < 6
    print(f"\nmatched lit, would be cleared dimmed: passing the gate {cleared[passing].sum()} of {passing.sum()}, "
          f"under contrast 6 {cleared[dark].sum()} of {dark.sum()}")
    assert passing.sum() > 150 and dark.sum() > 100, (passing.sum(), dark.sum())
    # measured here: 0 of 174 from the gate (12) to 18, 36 of 139 under 6; with the gate at 6 this
    # fails (2 of 496). The wider study in blur/identity.py found the one miss that dimness made
    # at 10.1, which this sample does not hold: the test guards the gate, the study placed it.
    assert not cleared[passing].any()
    assert cleared[dark].mean() >= 0.05  # which is why there is a gate


def test_same_person_matches_across_photos_and_different_people_do_not(photos):
    obama = photos["obama"][1]
    for other in ("obama2", "obama3"):
        assert dist(obama, photos[other][1]) < DLIB_SAME_PERSON, other
    names = list(photos)
    closest_strangers = min(
        (dist(photos[a][1], photos[b][1]), a, b)
        for i, a in enumerate(names) for b in names[i + 1 :] if photos[a][0] != photos[b][0]
    )
    print(f"\nobama vs obama2/obama3: {dist(obama, photos['obama2'][1]):.2f}/{dist(obama, photos['obama3'][1]):.2f}; "
          f"closest different people: {closest_strangers[1]}-{closest_strangers[2]} {closest_strangers[0]:.2f}")
    assert closest_strangers[0] >= DLIB_SAME_PERSON


def test_classroom_faces_match_their_enrolment_down_to_the_back_row(faces, embedder, enrolled):
    """Faces cut from synthetic classroom frames (ground-truth boxes, 24-120 px wide) are matched
    to the right person by a gallery of every identity, and to nobody else."""
    gallery = Gallery.from_entries(
        [GalleryEntry(f"p-{identity}", "excluded", e[None]) for identity, e in enrolled.items()]
    )
    by_size = defaultdict(list)  # width band -> (own distance, nearest other distance)
    checked = 0
    teacher_photos = set()
    for seed, frames in ((0, (0, 20)), (2, (10,))):
        classroom = Classroom(ClassroomSpec(seed=seed, duration_s=1.0))
        teacher_photos |= {p.photo for p in classroom.people if p.role == "teacher"}
        for frame in classroom.frames(min(frames), max(frames) + 1):
            if frame.index not in frames:
                continue
            for face in frame.faces:
                x0, y0, x1, y1 = face.box
                if face.visible_fraction < 0.9 or x0 == 0 or x1 == frame.image.shape[1]:
                    continue  # half-hidden faces are not expected to be recognisable
                embedding = embedder.embed(frame.image, Box(*face.box))
                own = dist(embedding, enrolled[face.identity])
                other = min(dist(embedding, e) for i, e in enrolled.items() if i != face.identity)
                by_size[(x1 - x0) // 10 * 10].append((own, other))
                match = gallery.match(embedding)
                assert match.person_id == f"p-{face.identity}", (face, own, other)
                checked += 1
    print("\nclassroom faces, width band px: worst own distance / closest other identity (n)")
    for band in sorted(by_size):
        pairs = by_size[band]
        worst_own, closest_other = max(o for o, _ in pairs), min(x for _, x in pairs)
        print(f"  {band:3d}-{band + 9:3d}: {worst_own:.2f} / {closest_other:.2f} ({len(pairs)})")
    assert teacher_photos == {"obama", "obama3"}  # seed 2's teacher is not the enrolment photograph
    assert min(by_size) <= 20, "no back-row faces (~26 px) were checked"
    assert max(by_size) >= 100 and checked >= 20


def test_small_faces_do_not_pass_as_staff(faces, embedder, enrolled):
    """Under `allow` a false staff match leaves a student visible: no student face, however small,
    comes within the staff threshold of the teacher; the teacher, in another photograph, does."""
    gallery = Gallery.from_entries([GalleryEntry("staff-1", "staff", enrolled["obama"][None])])
    classroom = Classroom(ClassroomSpec(seed=1, duration_s=0.5))
    assert [p.photo for p in classroom.people if p.role == "teacher"] == ["obama2"]
    frame = next(iter(classroom.frames(0, 1)))
    roles = set()
    for face in frame.faces:
        if face.visible_fraction < 0.9:
            continue
        match = gallery.match(embedder.embed(frame.image, Box(*face.box)))
        roles.add(face.role)
        assert (match.role == "staff") == (face.identity == "obama"), (face, match)
    assert roles == {"teacher", "student"}


# ---------------------------------------------------------------------------------------------
# Gallery


def fake_embedding(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, 128).astype(np.float32)


def test_gallery_version_follows_entries_not_their_order():
    a = GalleryEntry("stu-0001", "excluded", fake_embedding(1)[None])
    b = GalleryEntry("stu-0002", "excluded", np.stack([fake_embedding(2), fake_embedding(3)]))
    c = GalleryEntry("staff-01", "staff", fake_embedding(4)[None])
    base = Gallery.from_entries([a, b, c]).version
    assert len(base) == 64 and int(base, 16) >= 0
    assert Gallery.from_entries([c, a, b]).version == base
    assert Gallery.from_entries([a, c, b], excluded_threshold=0.7).version == base  # thresholds are config
    b_swapped = GalleryEntry("stu-0002", "excluded", np.stack([fake_embedding(3), fake_embedding(2)]))
    assert Gallery.from_entries([a, b_swapped, c]).version == base
    changed = {
        "removed": [a, b],
        "added": [a, b, c, GalleryEntry("stu-0003", "excluded", fake_embedding(5)[None])],
        "role changed": [a, b, GalleryEntry("staff-01", "excluded", c.embeddings)],
        "embedding changed": [a, b, GalleryEntry("staff-01", "staff", fake_embedding(6)[None])],
        "embedding added": [a, b, GalleryEntry("staff-01", "staff", np.stack([fake_embedding(4), fake_embedding(6)]))],
    }
    versions = {what: Gallery.from_entries(entries).version for what, entries in changed.items()}
    assert base not in versions.values()
    assert len(set(versions.values())) == len(versions)
    assert Gallery().version == Gallery.from_entries([]).version != base


def test_entry_bytes_round_trip_and_reject_damage():
    entry = GalleryEntry("stu-0001", "excluded", np.stack([fake_embedding(1), fake_embedding(2)]))
    data = entry_bytes(entry)
    assert entry_from_bytes(data) == entry
    assert entry_bytes(entry_from_bytes(data)) == data
    assert np.array_equal(entry_from_bytes(data).matrix(), entry.matrix())
    # Same values given as tuples or as an array: the same entry, the same bytes.
    as_tuples = GalleryEntry("stu-0001", "excluded", tuple(tuple(map(float, row)) for row in entry.matrix()))
    assert as_tuples == entry and entry_bytes(as_tuples) == data
    for bad in (b"{", b"[]", data.replace(b"classcap.gallery-entry/2", b"classcap.gallery-entry/9"),
                data.replace(b'"excluded"', b'"visitor"'), b'{"schema": "classcap.gallery-entry/2"}',
                data.replace(b'"sface":[]', b'"sface":[[1.0]]')):
        with pytest.raises(PrivacyError):
            entry_from_bytes(bad)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(0, 1, 128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_an_entry_keeps_its_sface_embeddings_and_an_older_entry_reads_and_versions_as_before():
    # an entry written before SFace embeddings were stored (schema /1, as earlier releases wrote it)
    old_doc = {"schema": "classcap.gallery-entry/1", "person_id": "stu-0001", "role": "excluded",
               "embeddings": [list(map(float, fake_embedding(1)))]}
    old = entry_from_bytes(json.dumps(old_doc).encode())
    assert old.sface == () and old.sface_matrix().shape == (0, 128)
    # keeps the gallery version it had then: a recording's manifest still names the same gallery
    then = {"schema": "classcap.gallery/1", "entries": [{k: old_doc[k] for k in ("person_id", "role", "embeddings")}]}
    assert Gallery.from_entries([old]).version == hashlib.sha256(
        json.dumps(then, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    # a new entry carries both models' embeddings through storage, byte for byte
    new = GalleryEntry("stu-0001", "excluded", old.embeddings, np.stack([unit(1), unit(2)]))
    data = entry_bytes(new)
    assert json.loads(data)["schema"] == "classcap.gallery-entry/2"
    assert entry_from_bytes(data) == new and entry_bytes(entry_from_bytes(data)) == data
    assert np.array_equal(entry_from_bytes(data).sface_matrix(), new.sface_matrix())
    assert len({Gallery.from_entries([e]).version for e in (old, new, GalleryEntry(
        "stu-0001", "excluded", old.embeddings, unit(3)[None]))}) == 3  # the SFace embeddings are part of it
    assert not Gallery.from_entries([old]).uses_sface and Gallery.from_entries([old, GalleryEntry(
        "staff-1", "staff", fake_embedding(2)[None], unit(4)[None])]).uses_sface
    for bad in (np.zeros((1, 64)), np.full((1, 128), np.inf)):
        with pytest.raises(ValueError, match="SFace"):
            GalleryEntry("stu-1", "excluded", fake_embedding(1)[None], bad)


def test_a_small_face_is_excluded_when_either_model_matches_and_staff_only_when_both_do():
    student_d, student_s = fake_embedding(1), unit(1)
    teacher_d, teacher_s = fake_embedding(2), unit(2)
    gallery = Gallery.from_entries([GalleryEntry("stu-1", "excluded", student_d[None], student_s[None]),
                                    GalleryEntry("staff-1", "staff", teacher_d[None], teacher_s[None])])
    stranger_d, stranger_s = fake_embedding(3), unit(3)
    # dlib does not see the student in this small face, SFace does: excluded (a miss would be a leak)
    match = gallery.match(stranger_d, student_s, small=True)
    assert (match.person_id, match.role) == ("stu-1", "excluded")
    assert gallery.match(stranger_d).role is None  # a face big enough for dlib alone: dlib decides
    # dlib sees the student, SFace does not: still excluded
    assert gallery.match(student_d, stranger_s, small=True).role == "excluded"
    # nobody by either model: no match, with both distances to the nearest excluded student
    match = gallery.match(stranger_d, stranger_s, small=True)
    assert match.role is None and match.excluded_distance > 1 and match.sface_excluded_distance == pytest.approx(
        1 - float(student_s @ stranger_s), abs=1e-5)
    assert gallery.match(stranger_d).sface_excluded_distance is None  # not small: SFace was not asked
    # staff needs both models to see the same staff member
    assert gallery.match(teacher_d, teacher_s, small=True).role == "staff"
    assert gallery.match(teacher_d, stranger_s, small=True).role is None
    other = Gallery.from_entries([*gallery.entries, GalleryEntry("staff-2", "staff", fake_embedding(4)[None], stranger_s[None])])
    assert other.match(teacher_d, stranger_s, small=True).role is None  # dlib: staff-1, SFace: staff-2
    # an excluded student enrolled without SFace embeddings: nothing can be said of a small face
    older = Gallery.from_entries([GalleryEntry("stu-1", "excluded", student_d[None]), *gallery.entries[1:]])
    assert older.match(stranger_d, stranger_s, small=True).sface_excluded_distance == 0.0
    assert older.match(stranger_d, None, small=True).sface_excluded_distance == 0.0
    assert gallery.match(stranger_d, None, small=True).sface_excluded_distance == 0.0  # the face's own is missing
    assert Gallery().match(stranger_d, None, small=True).sface_excluded_distance == float("inf")


def test_entries_take_pseudonymous_ids_and_valid_embeddings_only():
    for bad_id in ("Jane Smith", "", "../x", "a" * 65):
        with pytest.raises(ValueError):
            GalleryEntry(bad_id, "excluded", fake_embedding(1)[None])
    with pytest.raises(ValueError):
        GalleryEntry("stu-1", "teacher", fake_embedding(1)[None])
    for bad in (np.zeros((0, 128)), np.zeros((1, 64)), np.full((1, 128), np.nan)):
        with pytest.raises(ValueError):
            GalleryEntry("stu-1", "excluded", bad)
    e = GalleryEntry("stu-1", "excluded", fake_embedding(1)[None])
    with pytest.raises(ValueError, match="repeated"):
        Gallery.from_entries([e, e])


def test_match_prefers_excluded_and_uses_each_roles_threshold():
    base = fake_embedding(1)
    staff = GalleryEntry("staff-01", "staff", base[None])
    near = base.copy()
    near[0] += 0.45  # 0.45 from staff-01
    student = GalleryEntry("stu-0001", "excluded", near[None])
    gallery = Gallery.from_entries([staff, student])
    assert gallery.match(base) == IdentityMatch("stu-0001", "excluded", pytest.approx(0.45, abs=1e-5),
                                                pytest.approx(0.45, abs=1e-5))
    probe = base.copy()
    probe[0] -= 0.3  # 0.3 from staff, 0.75 from the student
    assert gallery.match(probe).person_id == "staff-01"
    probe[0] -= 0.27  # 0.57 from staff: above the staff threshold
    # no match: how far the nearest excluded student was comes back too (clearing needs a margin)
    assert gallery.match(probe) == IdentityMatch(None, None, pytest.approx(0.57, abs=1e-5), pytest.approx(1.02, abs=1e-5))
    assert Gallery.from_entries([staff, student], staff_threshold=0.6).match(probe).person_id == "staff-01"
    assert Gallery().match(base) == IdentityMatch(None, None, float("inf"))
    assert STAFF_THRESHOLD < EXCLUDED_THRESHOLD == DLIB_SAME_PERSON


def test_a_face_just_beyond_the_staff_threshold_is_staff_only_when_sface_agrees():
    teacher_d, teacher_s = fake_embedding(2), unit(2)
    gallery = Gallery.from_entries([GalleryEntry("stu-1", "excluded", fake_embedding(1)[None], unit(1)[None]),
                                    GalleryEntry("staff-1", "staff", teacher_d[None], teacher_s[None])])
    beyond = teacher_d.copy()
    beyond[0] += (STAFF_THRESHOLD + STAFF_AGREED_THRESHOLD) / 2  # between the two thresholds
    further = teacher_d.copy()
    further[0] += STAFF_AGREED_THRESHOLD + 0.01
    # the worker is asked for SFace only where it could change the answer
    assert gallery.wants_sface(beyond) and not gallery.wants_sface(teacher_d) and not gallery.wants_sface(further)
    assert gallery.wants_sface(further, small=True)
    assert not Gallery.from_entries([GalleryEntry("staff-1", "staff", teacher_d[None])]).wants_sface(beyond)
    # dlib alone: not staff; with SFace on the same staff member: staff; on someone else: not
    assert gallery.match(beyond).role is None
    assert gallery.match(beyond, teacher_s).person_id == "staff-1"
    assert gallery.match(beyond, unit(3)).role is None
    assert gallery.match(further, teacher_s).role is None
    # an excluded student still wins: a face near both is blurred
    both = Gallery.from_entries([GalleryEntry("stu-1", "excluded", beyond[None]), gallery.entries[1]])
    assert both.match(beyond, teacher_s).role == "excluded"


def test_a_teacher_is_known_from_another_photograph_and_no_stranger_passes_for_one(embedder):
    # given every registry identity with more than one photograph enrolled as staff from its
    # first (dlib and SFace, as `gallery add` does), and every registry face (their other
    # photographs, the crowd's, the group photos' strangers) cut into chips as a classroom camera
    # sees them: at 22 px three looks with sensor noise and sub-pixel shifts, at 32 and 48 px one
    from blur.sface import SFaceEmbedder
    from fixtures.faces import load_crowd_faces, load_group_photos, load_people

    people: dict = {}
    for source in (load_faces(), load_people(), load_crowd_faces()):
        for name, photos in source.items():
            for photo in photos:
                people.setdefault(name, {})[photo.name] = photo
    probes = [(p.identity, p.name, p.image, Box(*p.face_box)) for ps in people.values() for p in ps.values()]
    probes += [(who, who, group.image, Box(*box)) for group in load_group_photos() for who, box in group.faces]
    small, sface, rng = FaceEmbedder(min_face_px=20), SFaceEmbedder(), np.random.default_rng(0)
    chips = []  # (identity, photo, width, chip, dlib embedding)
    for who, name, image, box in probes:
        for width, looks in ((22, 3), (32, 1), (48, 1)):
            s = width / box.width
            if s > 1:
                continue
            scaled = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
            at = Box(int(box.x0 * s), int(box.y0 * s), int(np.ceil(box.x1 * s)), int(np.ceil(box.y1 * s)))
            for _ in range(looks):
                look = scaled
                if looks > 1:
                    shift = np.float32([[1, 0, rng.uniform(-0.5, 0.5)], [0, 1, rng.uniform(-0.5, 0.5)]])
                    look = cv2.warpAffine(scaled, shift, scaled.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
                    look = np.clip(look + rng.normal(0, 4, look.shape), 0, 255).astype(np.uint8)
                chip = small.chip(look, at)
                chips.append((who, name, width, chip, small.embed_chip(chip)))
    known, strangers = defaultdict(list), []
    for who, photos in people.items():
        if len(photos) < 2:
            continue
        first = next(iter(photos.values()))
        d, s = identity.Enroller().embed(first.image, Box(*first.face_box))
        gallery = Gallery.from_entries([GalleryEntry("staff-1", "staff", d[None], s[None])])
        for probe, name, width, chip, embedding in chips:
            if name == first.name:
                continue
            theirs = sface.embed_chips(chip[None])[0] if gallery.wants_sface(embedding) else None
            staff = gallery.match(embedding, theirs).role == "staff"
            if probe == who:
                known[width].append(staff)
            else:
                strangers.append(staff)
    # then no stranger passes for a teacher (under `allow` that shows a student; the wider study
    # behind STAFF_AGREED_THRESHOLD found 2 in 23,715 noisy looks that dlib alone would pass)
    assert len(strangers) > 7000
    assert not any(strangers)
    # and the teachers' other photographs are known at 32-48 px as often as dlib's own operating
    # point allows there: 0.915 of them (at dlib's 0.5 alone, 0.87: staff hidden in their lessons)
    near = known[32] + known[48]
    assert len(near) > 100 and np.mean(near) >= 0.9


# ---------------------------------------------------------------------------------------------
# Identity worker


@pytest.fixture(scope="module")
def chips(faces, embedder):
    return {p.name: embedder.chip(p.image, Box(*p.face_box)) for ps in faces.values() for p in ps}


@pytest.fixture(scope="module")
def gallery(enrolled):
    return Gallery.from_entries([
        GalleryEntry("stu-biden", "excluded", enrolled["biden"][None]),
        GalleryEntry("staff-obama", "staff", enrolled["obama"][None]),
    ])


def no_child(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_worker_embeds_and_matches_submitted_chips(gallery, chips):
    with IdentityWorker(gallery) as worker:
        assert worker.model_hashes == MODEL_SHA256
        assert worker.gallery_version == gallery.version
        round_trips = []
        for track_id, name in enumerate(("obama2", "biden", "t1_a")):
            start = time.perf_counter()
            assert worker.submit(track_id, chips[name])
            [(got, match)] = worker.wait([track_id], timeout=10)
            round_trips.append(time.perf_counter() - start)
            assert got == track_id
            expected = {"obama2": ("staff-obama", "staff"), "biden": ("stu-biden", "excluded"), "t1_a": (None, None)}
            assert (match.person_id, match.role) == expected[name]
        assert worker.backlog == 0 and worker.poll() == []
        stats = worker.stats
        round_trip_ms = 1000 * np.mean(round_trips)
        print(f"\nworker: embed {stats.embed_ms_mean:.0f} ms/chip (max {stats.embed_ms_max:.0f}), round trip "
              f"{round_trip_ms:.0f} ms: {round_trip_ms - stats.embed_ms_mean:.1f} ms over the embed")
        assert stats.embedded == 3


def test_worker_refuses_work_beyond_its_backlog(gallery, chips):
    with IdentityWorker(gallery, max_pending=2) as worker:
        assert worker.submit(1, chips["obama"]) and worker.submit(2, chips["biden"])
        assert worker.backlog == 2
        assert not worker.submit(3, chips["hanks"])  # returns at once: the caller keeps track 3 redacted
        results = dict(worker.wait([1, 2], timeout=10))
        assert set(results) == {1, 2} and worker.backlog == 0
        assert results[2].person_id == "stu-biden"
        assert worker.submit(3, chips["hanks"])
        deadline = time.monotonic() + 10
        got = []
        while not got and time.monotonic() < deadline:
            got = worker.poll()
            time.sleep(0.02)
        assert [t for t, _ in got] == [3] and got[0][1].person_id is None


def test_an_exception_in_the_worker_surfaces_as_privacy_error(gallery, chips):
    with IdentityWorker(gallery) as worker:
        pid = worker.pid
        worker._requests.put((9, "not a chip", False))  # fault injection: a request submit() would refuse
        worker._in_flight += 1
        with pytest.raises(PrivacyError, match="track 9"):
            worker.wait([9], timeout=10)
        with pytest.raises(PrivacyError):
            worker.poll()  # the worker stays failed: the caller must fail closed
        with pytest.raises(PrivacyError):
            worker.submit(10, chips["obama"])
    assert no_child(pid)


def test_a_dead_worker_process_surfaces_as_privacy_error(gallery, chips):
    worker = IdentityWorker(gallery)
    pid = worker.pid
    try:
        assert worker.submit(1, chips["obama"])
        os.kill(pid, signal.SIGKILL)  # fault injection: the process dies (OOM killer, crash)
        with pytest.raises(PrivacyError, match="exited unexpectedly"):
            worker.wait([1], timeout=10)
        with pytest.raises(PrivacyError):
            worker.poll()
    finally:
        worker.close()
    assert no_child(pid)


def test_close_stops_the_process_and_leaves_no_child(gallery, chips):
    worker = IdentityWorker(gallery, max_pending=4)
    pid = worker.pid
    for track_id in range(4):
        assert worker.submit(track_id, chips["t1_b"])  # work still queued when closing
    start = time.perf_counter()
    worker.close()
    assert time.perf_counter() - start < 2.0
    assert no_child(pid)
    assert all(p.pid != pid for p in multiprocessing.active_children())
    worker.close()  # twice is harmless
    with pytest.raises(PrivacyError, match="closed"):
        worker.poll()


def test_a_live_worker_runs_at_a_lower_cpu_priority_and_still_answers(gallery, chips):
    # Live work gives the frames the CPU first (pipeline.config.identity_niceness).
    own = os.getpriority(os.PRIO_PROCESS, 0)
    with IdentityWorker(gallery, niceness=5) as worker:
        assert worker.submit(1, chips["biden"])
        [(_, match)] = worker.wait([1], timeout=10)
        assert match.role == "excluded"
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(19, own + 5)
    with IdentityWorker(gallery) as worker:
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == own


def test_live_engines_lower_the_identity_workers_priority_and_batch_engines_do_not(gallery):
    from pipeline.config import ConfigError, PipelineConfig
    from pipeline.engine_factory import build_engine

    with pytest.raises(ConfigError, match="identity_niceness"):
        PipelineConfig(identity_niceness=20)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    for wait_for_identity, expected in ((False, min(19, own + 10)), (True, own)):
        engine, _ = build_engine(PipelineConfig(policy="exclude"), gallery, wait_for_identity=wait_for_identity)
        try:
            assert os.getpriority(os.PRIO_PROCESS, engine.policy._identity.pid) == expected
        finally:
            engine.close()
