"""The engine redacts every face it or its tracker knows of, in every frame, and fails closed."""

import numpy as np
import pytest

from blur.engine import PrivacyEngine
from blur.redact import face_region, pixelate
from blur.types import Box, Detection

W, H = 640, 360


class ScriptedDetector:
    """Returns, for the n-th call, the boxes the script gives (a fake only to script what is seen)."""

    def __init__(self, script=None, default=(), fail_on=()):
        self.script, self.default, self.fail_on = script or {}, default, set(fail_on)
        self.calls = 0

    def detect(self, image):
        n = self.calls
        self.calls += 1
        if n in self.fail_on:
            raise RuntimeError("inference failed")
        return [Detection(b, 0.9) for b in self.script.get(n, self.default)]

    def close(self):
        pass


def textured(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def detail(patch):
    """Mean absolute difference between horizontal neighbours: high for texture, ~0 inside blocks."""
    return float(np.abs(np.diff(patch.astype(np.int16), axis=1)).mean())


def redacted(image, box, original):
    return detail(image[box.y0 : box.y1, box.x0 : box.x1]) < 0.3 * detail(original[box.y0 : box.y1, box.x0 : box.x1])


def run(engine, n):
    out = []
    for i in range(n):
        out += engine.push(textured(i), i)
    return out + engine.flush()


FACE = Box(200, 100, 240, 150)


def test_detected_faces_and_their_margins_are_pixelated_and_nothing_else():
    image, original = textured(), textured()
    [(out, tag, report)] = PrivacyEngine(ScriptedDetector(default=[FACE])).push(image, "t")
    region = face_region(FACE, W, H)
    assert tag == "t" and (report.faces_detected, report.faces_redacted, report.fail_closed) == (1, 1, False)
    assert region.x0 < FACE.x0 and region.y0 < FACE.y0 and region.x1 > FACE.x1 and region.y1 > FACE.y1
    assert redacted(out, region, original)
    outside = np.ones((H, W), bool)
    outside[region.y0 : region.y1, region.x0 : region.x1] = False
    assert np.array_equal(out[outside], original[outside])


def test_a_face_only_the_strong_detector_sees_is_redacted_from_the_anchor_before_it_was_found():
    # given a face that only the strong detector finds, on anchors 6 and 9 (calls: frames 0, 3, 6, 9)
    strong = ScriptedDetector({2: [FACE], 3: [FACE]})
    engine = PrivacyEngine(ScriptedDetector(), strong, strong_every=3)
    # when 10 frames go through
    out = run(engine, 10)
    # then frames come out in order, and the face is redacted from frame 3 on: the frames between
    # the anchors by look-ahead, and anchor 3 itself, which waits for the next anchor's search
    assert [tag for _, tag, _ in out] == list(range(10))
    for image, i, _ in out:
        assert redacted(image, FACE, textured(i)) == (i >= 3), i


def test_frames_are_held_until_the_next_anchor_has_been_searched():
    engine = PrivacyEngine(ScriptedDetector(), ScriptedDetector(), strong_every=3)
    assert [len(engine.push(textured(i), i)) for i in range(7)] == [0, 0, 0, 3, 0, 0, 3]
    assert [tag for _, tag, _ in engine.flush()] == [6]


def test_a_face_walking_in_is_redacted_on_the_anchor_where_too_little_of_it_showed_to_be_found():
    # given a face entering from the left edge at 8 px a frame: at anchor 3 only a sliver shows
    # and nothing is found; the strong detector first finds it at anchor 6
    def at(i):
        return Box(max(0, 8 * i - 40), 100, 8 * i, 130)  # 40 px wide, from frame 5 on fully in view

    strong = ScriptedDetector({2: [at(6)], 3: [at(9)]})
    out = run(PrivacyEngine(ScriptedDetector(), strong, strong_every=3), 10)
    # then every frame from the sliver at anchor 3 on has it redacted
    for image, i, _ in out:
        if i >= 3:
            assert redacted(image, at(i), textured(i)), i


def test_a_face_the_fast_detector_first_finds_between_anchors_is_reached_back_to_the_held_frames():
    # given a small face walking in fast (20 px wide, 12 px a frame) that the fast detector first
    # finds at frame 5, between anchors 3 and 6, and the strong detector never finds
    def at(i):
        return Box(max(0, 12 * i - 20), 100, 12 * i, 120)

    fast = ScriptedDetector({i: [at(i)] for i in range(5, 10)})
    out = run(PrivacyEngine(fast, ScriptedDetector(), strong_every=3), 10)
    # then the held frames before it, from anchor 3 on, have it redacted where it may have been
    for image, i, _ in out:
        if i >= 3:
            assert redacted(image, at(i), textured(i)), i


def test_a_face_the_detector_loses_for_five_frames_stays_redacted():
    script = {i: [FACE] for i in range(3)} | {i: [FACE] for i in range(8, 10)}
    out = run(PrivacyEngine(ScriptedDetector(script), hold_frames=15), 10)
    assert all(redacted(image, FACE, textured(i)) for image, i, _ in out)


def test_a_detector_error_redacts_the_whole_frame():
    out = run(PrivacyEngine(ScriptedDetector(fail_on={1})), 3)
    (_, _, r0), (image, _, r1), (_, _, r2) = out
    assert (r0.fail_closed, r1.fail_closed, r2.fail_closed) == (False, True, False)
    assert detail(image) < 0.1 * detail(textured(1))


def test_a_failed_anchor_redacts_the_frames_it_should_have_vouched_for():
    strong = ScriptedDetector(fail_on={1})  # the anchor at frame 3 fails
    out = run(PrivacyEngine(ScriptedDetector(), strong, strong_every=3), 4)
    assert [r.fail_closed for _, _, r in out] == [True, True, True, True]  # anchor 0 waited for it too


def test_pixelation_leaves_a_few_blocks_across_a_face():
    image = textured()
    pixelate(image, Box(10, 10, 70, 70), blocks=5)
    row = image[40, 10:70, 0]
    assert len(np.unique(row)) <= 5


def test_a_face_tracked_for_a_while_stays_redacted_while_it_looks_down_for_two_seconds():
    # seen for a second and more, then lost for 60 frames (head down over a book), then seen again
    script = {i: [FACE] for i in range(32)} | {i: [FACE] for i in range(92, 97)}
    out = run(PrivacyEngine(ScriptedDetector(script), hold_frames=15, long_hold_frames=90), 97)
    assert all(redacted(image, FACE, textured(i)) for image, i, _ in out)


def test_a_face_seen_only_briefly_is_held_only_briefly():
    script = {i: [FACE] for i in range(3)}
    out = run(PrivacyEngine(ScriptedDetector(script), hold_frames=15, long_hold_frames=90), 40)
    assert [redacted(image, FACE, textured(i)) for image, i, _ in out] == [i <= 2 + 15 for i in range(40)]


def test_a_held_track_does_not_jump_onto_another_face_far_away():
    from blur.tracker import FaceTracker

    tracker = FaceTracker(hold_frames=15, long_hold_frames=90)
    teacher, student = Box(100, 100, 160, 160), Box(400, 120, 455, 175)
    for i in range(40):
        tracker.update(i, [Detection(teacher, 0.9)], W, H)
    # the teacher turns away (lost for 30 frames), then a student's face shows up elsewhere
    tracks = tracker.update(70, [Detection(student, 0.9)], W, H)
    [new] = [t for t in tracks if t.last_seen == 70]
    assert new.track_id != 1 and new.first_seen == 70


def test_a_seated_face_lost_beside_another_find_stays_redacted_where_it_sat():
    # A student seen for 40 frames looks down (lost); a find 1.5 face widths away (a neighbour,
    # or a false find on a jumper) must not take the student's track, and with it the cover.
    beside = Box(FACE.x0 + 60, FACE.y0, FACE.x1 + 60, FACE.y1)
    script = {i: [FACE] for i in range(40)} | {i: [beside] for i in range(41, 70)}
    out = run(PrivacyEngine(ScriptedDetector(script), hold_frames=15, long_hold_frames=90), 70)
    assert all(redacted(image, FACE, textured(i)) for image, i, _ in out)


def test_a_moving_face_is_followed_by_distance_and_a_still_one_is_not():
    from blur.tracker import FaceTracker

    tracker = FaceTracker(hold_frames=15, long_hold_frames=90)
    for i in range(10):  # a student walking past: 12 px a frame
        tracker.update(i, [Detection(Box(100 + 12 * i, 100, 140 + 12 * i, 140), 0.9)], W, H)
    [walker] = tracker.update(12, [Detection(Box(244, 140, 284, 180), 0.9)], W, H)  # 2 frames on, and lower
    assert walker.track_id == 1 and walker.jumped
    tracker = FaceTracker(hold_frames=15, long_hold_frames=90)
    for i in range(10):  # a seated student
        tracker.update(i, [Detection(Box(100, 100, 140, 140), 0.9)], W, H)
    tracks = tracker.update(12, [Detection(Box(160, 100, 200, 140), 0.9)], W, H)
    assert [t.track_id for t in tracks if t.last_seen == 12] != [1]  # a new track; the student's is held


class SlowScripted(ScriptedDetector):
    """The strong detector taking its time, as CenterFace does, so searches overlap."""

    def detect(self, image):
        import time

        time.sleep(0.02)
        return super().detect(image)


@pytest.mark.parametrize("lookahead", [None, 9])
def test_searches_in_the_background_give_the_same_frames_and_hold_at_most_the_look_ahead(lookahead):
    script = {1: [FACE], 2: [Box(400, 50, 430, 90)], 4: [FACE]}  # strong calls: frames 0, 3, 6, ...
    fast_script = {i: [Box(300, 200, 340, 250)] for i in range(5, 12)}

    def outputs(background):
        engine = PrivacyEngine(
            ScriptedDetector(fast_script), SlowScripted(script, fail_on={5}), strong_every=3,
            in_background=background, lookahead=lookahead,
        )
        out, held = [], 0
        for i in range(20):
            out += engine.push(textured(i), i)
            held = max(held, i + 1 - len(out))
        out += engine.flush()
        engine.close()
        return out, held, engine.max_held_frames

    (sync, sync_held, sync_max), (background, background_held, background_max) = outputs(False), outputs(True)
    assert [tag for _, tag, _ in background] == list(range(20))
    assert [r for _, _, r in background] == [r for _, _, r in sync]
    assert any(r.fail_closed for _, _, r in sync)  # the failed anchor (frame 15) counts in both
    assert all(np.array_equal(a, b) for (a, _, _), (b, _, _) in zip(sync, background))
    assert sync_held <= 3 and sync_max == 4
    assert background_held <= background_max - 1 == 3 + (lookahead or 3)
    assert background_held > sync_held  # the fast search really went on while the strong one ran


def test_no_track_goes_on_across_a_camera_cut():
    # given a face seen for five frames in one view, then a cut to a brighter view without it
    def frame(i):
        return textured(i) // 4 + (0 if i < 5 else 160)

    def redacted_after_cut(cut_threshold):
        engine = PrivacyEngine(ScriptedDetector({n: [FACE] for n in range(5)}), cut_threshold=cut_threshold)
        out = []
        for i in range(12):
            out += engine.push(frame(i), i)
        out += engine.flush()
        return engine, [redacted(image, FACE, frame(i)) for image, i, _ in out]

    # then without cut detection the face's track would hold its box over the new view; with it,
    # the new view is left as it is, and the cut is counted
    _, held = redacted_after_cut(None)
    engine, states = redacted_after_cut(18.0)
    assert all(held[:5]) and all(held[5:10])
    assert all(states[:5]) and not any(states[5:]) and engine.cuts == 1


def test_a_weak_track_beside_a_face_does_not_take_the_face_s_confident_find():
    from blur.tracker import FaceTracker

    # given a face found confidently for ten frames, and beside it a track of weak finds (a box
    # shifted by a quarter of the face, as CenterFace scatters them around small faces)
    tracker = FaceTracker(hold_frames=15, long_hold_frames=90)
    face, lobe = Box(200, 100, 240, 150), Box(210, 100, 250, 150)
    for i in range(10):
        tracker.update(i, [Detection(face, 0.9), Detection(lobe, 0.15)], W, H)
    # when the camera pans right by 12 px, so that the face's find overlaps the weak track more
    moved, moved_lobe = Box(212, 100, 252, 150), Box(222, 100, 262, 150)
    tracks = tracker.update(10, [Detection(moved, 0.9), Detection(moved_lobe, 0.15)], W, H)
    # then the face's track takes the face's find, and the weak track the weak find
    by_id = {t.track_id: t for t in tracks}
    assert (by_id[1].box, by_id[1].score) == (moved, 0.9)
    assert (by_id[2].box, by_id[2].score, by_id[2].best_score) == (moved_lobe, 0.15, 0.15)
