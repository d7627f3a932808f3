"""Who is redacted, per track: exclude, allow, fail closed until identity clears a face."""

import time
from dataclasses import dataclass

import numpy as np

from blur.engine import PrivacyEngine
from blur.policy import FacePolicy, parse_policy
from blur.types import Box, Detection

W, H = 640, 360
FACE = Box(200, 100, 240, 150)
OTHER = Box(400, 100, 440, 150)


@dataclass(frozen=True)
class Match:
    person_id: str | None
    role: str | None
    distance: float = 0.3
    excluded_distance: float = float("inf")
    sface_excluded_distance: float | None = None


class Scripted:
    """Detector that sees the given boxes on every frame."""

    def __init__(self, boxes):
        self.boxes = boxes

    def detect(self, image):
        return [Detection(b, 0.9) for b in self.boxes]

    def close(self):
        pass


class FirstFrameThen(Scripted):
    """Detector that sees `first` in the first frame and `then` in every frame after."""

    def __init__(self, first, then):
        super().__init__(first)
        self.then = then
        self.n = 0

    def detect(self, image):
        self.n += 1
        return super().detect(image) if self.n == 1 else [Detection(b, 0.9) for b in self.then]


class ScriptedIdentity:
    """Answers each submitted track with the next scripted answer for its box (fault/answer injection)."""

    def __init__(self, answers, capacity=8):
        self.answers = answers  # list of Match, consumed per submission, keyed by submission order
        self.capacity = capacity
        self.inbox: list = []
        self.submitted = 0

    def submit(self, track_id, chip, small=False):
        assert isinstance(small, bool)
        if len(self.inbox) >= self.capacity:
            return False
        self.inbox.append((track_id, self.answers[min(self.submitted, len(self.answers) - 1)]))
        self.submitted += 1
        return True

    def has_room(self):
        return len(self.inbox) < self.capacity

    def poll(self):
        return []  # answers only arrive when waited for: lets tests see the live, unanswered state

    def wait(self, track_ids, timeout):
        out, self.inbox = self.inbox, []
        return out

    def close(self):
        pass


def textured(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def hidden(image, box, original):
    a = image[box.y0 : box.y1, box.x0 : box.x1].astype(np.int16)
    b = original[box.y0 : box.y1, box.x0 : box.x1].astype(np.int16)
    return bool(np.abs(np.diff(a, axis=1)).mean() < 0.3 * np.abs(np.diff(b, axis=1)).mean())


def untouched(image, box, original):
    """Every pixel of the box is as it came in."""
    return np.array_equal(image[box.y0 : box.y1, box.x0 : box.x1], original[box.y0 : box.y1, box.x0 : box.x1])


def run(engine, n):
    out = []
    for i in range(n):
        out += engine.push(textured(i), i)
    return out + engine.flush()


def engine_with(policy, answers, boxes=(FACE,), wait=True, recheck=90, capacity=8, good_view=True, identity=None,
                detector=None, small=False, **policy_args):
    identity = identity or ScriptedIdentity(answers, capacity)
    face_policy = FacePolicy(policy, identity, chipper=lambda image, box: (image[box.y0 : box.y1, box.x0 : box.x1], good_view, small),
                             wait_for_identity=wait, recheck_frames=recheck, **policy_args)
    return PrivacyEngine(detector or Scripted(list(boxes)), policy=face_policy), identity


def test_exclude_shows_a_face_identity_cleared_and_hides_an_excluded_one():
    engine, _ = engine_with("exclude", [Match(None, None), Match("s-17", "excluded")], boxes=(FACE, OTHER))
    for image, i, _ in run(engine, 5):
        assert not hidden(image, FACE, textured(i)), i  # cleared: the teacher's practice stays visible
        assert hidden(image, OTHER, textured(i)), i


def test_an_excluded_face_s_margin_gives_way_to_a_shown_face_behind_it_but_its_own_box_does_not():
    # given an excluded student in front, whose hair margin (40 % of the box upwards) reaches the
    # chin of a cleared student in the row behind, and whose box overlaps that chin by 4 rows
    behind, front = Box(200, 60, 250, 120), Box(215, 116, 265, 176)
    engine, _ = engine_with("exclude", [Match(None, None), Match("s-17", "excluded")], boxes=(behind, front))
    for image, i, _ in run(engine, 4):
        original = textured(i)
        # then the student behind shows, all but where the excluded face's own box lies
        visible = Box(behind.x0, behind.y0, behind.x1, front.y0)
        assert untouched(image, visible, original), i
        assert hidden(image, front, original), i
        # and the margin outside the shown face stays redacted (above the excluded face, right of it)
        assert hidden(image, Box(behind.x1, 100, front.x1 + 12, 116), original), i


def test_the_margin_gives_way_the_same_in_a_frame_that_is_a_view_into_a_wider_buffer():
    # given the excluded student in front of a cleared one, as above, in frames that are views
    # (a decoder's padded rows, a crop): pixels are put back by flat index only where that works
    behind, front = Box(200, 60, 250, 120), Box(215, 116, 265, 176)
    outputs = []
    for as_view in (False, True):
        engine, _ = engine_with("exclude", [Match(None, None), Match("s-17", "excluded")], boxes=(behind, front))
        out = []
        for i in range(4):
            image = textured(i)
            if as_view:
                wide = np.zeros((H, W + 16, 3), np.uint8)
                wide[:, :W] = image
                image = wide[:, :W]
                assert not image.flags.c_contiguous
            out += engine.push(image, i)
        outputs.append([np.array(image) for image, _, _ in out + engine.flush()])
    # then the view comes out exactly as the plain frame does: the face behind shown, the margin hidden
    assert len(outputs[0]) == len(outputs[1]) == 4
    for plain, view in zip(*outputs):
        assert np.array_equal(plain, view)
    visible = Box(behind.x0, behind.y0, behind.x1, front.y0)
    assert untouched(outputs[1][2], visible, textured(2))
    assert hidden(outputs[1][2], Box(behind.x1, 100, front.x1 + 12, 116), textured(2))


def test_exclude_hides_a_new_face_until_identity_answers_when_live():
    engine, identity = engine_with("exclude", [Match(None, None)], wait=False)
    [(image, _, _)] = engine.push(textured(0), 0)
    assert hidden(image, FACE, textured(0))  # no answer yet: fail closed
    engine.policy._take(identity.wait([1], 0))  # the answer arrives
    [(image, _, _)] = engine.push(textured(1), 1)
    assert not hidden(image, FACE, textured(1))


def test_a_track_that_matched_once_stays_redacted_when_later_checks_do_not_match():
    # the first look matches an excluded student; re-checks (as they turn away) no longer match
    engine, identity = engine_with("exclude", [Match("s-17", "excluded"), Match(None, None)], recheck=2)
    out = run(engine, 12)
    assert identity.submitted == 1  # an excluded track is never asked about again
    assert all(hidden(image, FACE, textured(i)) for image, i, _ in out)


def test_a_cleared_track_that_matches_on_a_recheck_is_hidden_from_then_on():
    engine, identity = engine_with("exclude", [Match(None, None), Match("s-17", "excluded")], recheck=3)
    out = run(engine, 8)
    assert identity.submitted >= 2
    states = [hidden(image, FACE, textured(i)) for image, i, _ in out]
    assert states[0] is False and states[-1] is True and states == sorted(states)


def test_no_match_on_a_poor_view_does_not_clear_a_face():
    # identity answers "nobody", but every chip was dark or turned: the face stays hidden
    engine, identity = engine_with("exclude", [Match(None, None)], good_view=False)
    out = run(engine, 25)
    assert all(hidden(image, FACE, textured(i)) for image, i, _ in out)
    assert identity.submitted >= 2  # and it kept asking


def test_a_small_face_is_cleared_only_when_sface_too_puts_it_far_from_every_excluded_student():
    # given a face narrower than dlib alone can judge, whom dlib puts far from every excluded student
    for sface, shown in ((None, False), (0.0, False), (0.55, False), (0.9, True)):
        engine, identity = engine_with("exclude", [Match(None, None, excluded_distance=1.0, sface_excluded_distance=sface)],
                                       small=True)
        out = run(engine, 5)
        # then it is shown only when SFace was asked and agrees: not when it was not asked, nor
        # when an excluded student has no SFace embeddings (0.0), nor when SFace is not sure
        assert [not hidden(image, FACE, textured(i)) for image, i, _ in out] == [shown] * 5, sface
        assert identity.submitted >= 1
    # a face big enough for dlib alone needs no SFace answer
    engine, _ = engine_with("exclude", [Match(None, None, excluded_distance=1.0)], small=False)
    assert all(not hidden(image, FACE, textured(i)) for image, i, _ in run(engine, 5))


def test_a_new_face_where_an_excluded_student_was_inherits_the_exclusion():
    # an excluded student is tracked, lost for longer than any hold, and comes back in the same
    # seat as a new track whose first looks do not match (turned away): it stays hidden
    class Gap(Scripted):
        def __init__(self):
            super().__init__([FACE])
            self.n = 0

        def detect(self, image):
            self.n += 1
            return [] if 10 <= self.n <= 120 else super().detect(image)

    identity = ScriptedIdentity([Match("s-17", "excluded"), Match(None, None)])
    face_policy = FacePolicy("exclude", identity, chipper=lambda image, box: (image, True, False), wait_for_identity=True)
    engine = PrivacyEngine(Gap(), policy=face_policy, hold_frames=5, long_hold_frames=5)
    out = run(engine, 130)
    assert identity.submitted == 1  # the returning face was never cleared on a poor view
    assert all(hidden(image, FACE, textured(i)) for image, i, _ in out if i < 9 or i >= 120)


def test_a_frame_over_its_time_budget_hides_even_cleared_faces_and_counts():
    class Slow(Scripted):
        def detect(self, image):
            import time

            time.sleep(0.05)
            return super().detect(image)

    identity = ScriptedIdentity([Match(None, None)])
    face_policy = FacePolicy("exclude", identity, chipper=lambda image, box: (image, True, False), wait_for_identity=True)
    engine = PrivacyEngine(Slow([FACE]), policy=face_policy, budget_s=0.01)
    out = run(engine, 3)
    assert all(hidden(image, FACE, textured(i)) and report.fail_closed for image, i, report in out)


def test_allow_shows_staff_only():
    engine, _ = engine_with("allow", [Match("t-1", "staff"), Match(None, None)], boxes=(FACE, OTHER))
    for image, i, _ in run(engine, 4):
        assert not hidden(image, FACE, textured(i)) and hidden(image, OTHER, textured(i))


def test_an_identity_backlog_keeps_faces_redacted_and_is_counted_and_cuts_no_chip_it_would_refuse():
    engine, identity = engine_with("exclude", [Match(None, None)], boxes=(FACE, OTHER), wait=False, capacity=1)
    chips = []
    chipper = engine.policy._chipper
    engine.policy._chipper = lambda image, box: chips.append(box) or chipper(image, box)
    out = run(engine, 3)
    assert engine.policy.backlog_events >= 1
    assert all(hidden(image, OTHER, textured(i)) for image, i, _ in out)
    # live, with the worker full, the other face is not cut into a chip frame after frame only
    # for the worker to refuse it: one chip, the one it took
    assert identity.submitted == 1 and len(chips) == 1


def test_policy_names():
    assert parse_policy("exclude") == ("exclude", False)
    assert parse_policy("allow,background") == ("allow", True)
    assert parse_policy("background") == ("all", True)
    for bad in ("everyone", "exclude,allow"):
        try:
            parse_policy(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_a_staff_track_that_jumps_to_another_face_is_hidden_until_checked_again():
    face_policy = FacePolicy("allow", ScriptedIdentity([Match("t-1", "staff")]), chipper=lambda i, b: (i, True, False))
    face_policy._take([(1, Match("t-1", "staff"))])
    assert not face_policy.redact(1)
    face_policy.doubt(1)
    assert face_policy.redact(1)


def test_a_view_too_close_to_an_excluded_student_clears_nobody():
    # given looks that match nobody, the first two only just outside the match threshold (0.62
    # from an excluded student, where dlib puts a small, dim face of that very student now and then)
    close, clear = Match(None, None, 0.62, 0.62), Match(None, None, 0.8, 0.8)
    engine, identity = engine_with("exclude", [close, close, clear])
    out = run(engine, 40)
    states = [hidden(image, FACE, textured(i)) for image, i, _ in out]
    # then the face stays hidden through both, asked again each time, and shows from the clear look on
    assert identity.submitted >= 3
    first_shown = states.index(False)
    assert all(states[:first_shown]) and not any(states[first_shown:]) and first_shown >= 10


def test_with_two_votes_a_face_shows_only_after_a_second_clear_look_from_later():
    engine, identity = engine_with("exclude", [Match(None, None, 0.8, 0.8)], clear_votes=2, vote_gap=6)
    out = run(engine, 20)
    states = [hidden(image, FACE, textured(i)) for image, i, _ in out]
    assert identity.submitted >= 2
    assert all(states[:6]) and not any(states[9:])  # asked at 0 and again 6 frames later


def test_poor_looks_are_asked_again_ever_more_rarely():
    engine, identity = engine_with("exclude", [Match(None, None)], good_view=False)
    run(engine, 100)
    assert identity.submitted == 4  # frames 0, 10, 30 and 70: a still, poorly seen face costs little


class Eager(ScriptedIdentity):
    """A worker whose answers are in before anyone asks: poll returns them at once."""

    def poll(self):
        out, self.inbox = self.inbox, []
        return out


def test_in_batch_what_is_decided_does_not_depend_on_when_answers_arrive():
    answers = [Match(None, None), Match("s-17", "excluded"), Match(None, None, 0.62, 0.62), Match(None, None)]
    boxes = (FACE, OTHER, Box(300, 200, 340, 250))
    outputs = []
    for identity in (ScriptedIdentity(answers), Eager(answers)):
        engine, _ = engine_with("exclude", answers, boxes=boxes, identity=identity, recheck=7, good_view=True)
        outputs.append([image for image, _, _ in run(engine, 30)])
    assert all(np.array_equal(a, b) for a, b in zip(*outputs, strict=True))


def test_after_a_camera_cut_nobody_inherits_an_exclusion_from_where_someone_sat():
    face_policy = FacePolicy("exclude", ScriptedIdentity([Match("s-17", "excluded")]), chipper=lambda i, b: (i, True, False))
    face_policy.observe(0, textured(0), [(1, FACE, 0.9)])
    face_policy._take([(1, Match("s-17", "excluded"))])
    face_policy.forget(set())  # the excluded student's track ends: a ghost stays where they sat
    assert face_policy.ghosts
    face_policy.observe(5, textured(5), [(2, FACE, 0.9)])
    assert face_policy.redact(2) and face_policy.tracks[2].person_id == "(inherited)"
    face_policy.scene_cut()
    face_policy.forget(set())
    face_policy.observe(9, textured(9), [(3, FACE, 0.9)])  # another view: someone else sits there
    assert face_policy.tracks[3].person_id is None and not face_policy.ghosts


def test_a_shown_face_held_by_its_track_keeps_its_pixels_under_a_hidden_neighbours_margin():
    # given a cleared student found only in the first frame (small faces are often found on
    # anchors only) and held by their track after, in the row behind an excluded student whose
    # hair margin reaches their chin
    behind, front = Box(200, 60, 250, 120), Box(215, 116, 265, 176)

    engine, _ = engine_with("exclude", [Match(None, None), Match("s-17", "excluded")],
                            detector=FirstFrameThen([behind, front], [front]))
    for image, i, _ in run(engine, 5):
        original = textured(i)
        visible = Box(behind.x0, behind.y0, behind.x1, front.y0)
        # then the held face shows where only the margin would have covered it
        assert untouched(image, visible, original), i
        assert hidden(image, front, original), i


def test_a_track_that_jumped_onto_another_face_is_cleared_only_on_a_confident_detection():
    face_policy = FacePolicy("exclude", ScriptedIdentity([Match(None, None)]), chipper=lambda i, b: (i, True, False),
                             wait_for_identity=True)
    face_policy.observe(0, textured(0), [(1, FACE, 0.9)])
    face_policy.settle()
    assert not face_policy.redact(1)  # cleared on a good look
    face_policy.doubt(1)  # the track moved onto the next card, where someone else is
    face_policy.observe(1, textured(1), [(1, FACE, 0.15)])  # found there only weakly
    face_policy.settle()
    assert face_policy.redact(1)  # a far non-match on that look clears nobody
    face_policy.observe(12, textured(12), [(1, FACE, 0.6)])
    face_policy.settle()
    assert not face_policy.redact(1)


class Scored(Scripted):
    """Detector that sees the given (box, score) pairs on every frame."""

    def detect(self, image):
        return [Detection(b, s) for b, s in self.boxes]


def test_a_weak_find_overlapping_a_cleared_face_is_hidden_beside_it_but_not_over_it():
    # given a cleared face, and half a face width to its right a find that is never confident
    # (CenterFace scatters such finds around small real faces) and that identity cannot clear
    beside = Box(FACE.x0 + 20, FACE.y0 + 5, FACE.x1 + 20, FACE.y1 + 5)
    too_close = Match(None, None, excluded_distance=0.62)
    for score, face_shows in ((0.15, True), (0.9, False)):
        engine, _ = engine_with("exclude", [Match(None, None), too_close],
                                detector=Scored([(FACE, 0.9), (beside, score)]))
        for image, i, _ in run(engine, 5):
            original = textured(i)
            # then the cleared face keeps every pixel of its box under a weak find's box, but not
            # under a confident one's: that could be another face, whoever it is
            assert untouched(image, FACE, original) == face_shows, (score, i)
            # and the find's box beside the face is redacted either way
            assert hidden(image, Box(FACE.x1, beside.y0, beside.x1, beside.y1), original), (score, i)


class Rising(Scripted):
    """One face found weakly for its first `weak_frames` searches, then with confidence."""

    def __init__(self, box, weak_frames):
        super().__init__([box])
        self.weak_frames = weak_frames
        self.searches = 0

    def detect(self, image):
        self.searches += 1
        return [Detection(self.boxes[0], 0.15 if self.searches <= self.weak_frames else 0.6)]


def test_identity_is_asked_about_a_weak_track_only_once_it_is_found_firmly():
    # given a find scored 0.15 for six frames (CenterFace's scatter around a small face looks
    # like this), then 0.6: the face turned to the camera
    engine, identity = engine_with("exclude", [Match(None, None)], detector=Rising(FACE, weak_frames=6))
    out = run(engine, 10)
    # then identity was asked once, when the track was found firmly; until then it stayed hidden
    assert identity.submitted == 1
    assert [hidden(image, FACE, textured(i)) for image, i, _ in out] == [True] * 6 + [False] * 4


class AnswersLater(ScriptedIdentity):
    """Answers a request only once `clock[0]` (frames pushed) is `lag` past when it was asked."""

    def __init__(self, answers, clock, lag):
        super().__init__(answers)
        self.clock, self.lag = clock, lag

    def submit(self, track_id, chip, small=False):
        ok = super().submit(track_id, chip, small)
        if ok:
            self.inbox[-1] = (self.clock[0] + self.lag, self.inbox[-1])
        return ok

    def wait(self, track_ids, timeout):
        ready = [answer for due, answer in self.inbox if due <= self.clock[0]]
        if not ready:
            time.sleep(timeout)  # nothing comes while the engine stands still
        self.inbox = [(due, answer) for due, answer in self.inbox if due > self.clock[0]]
        return ready


def test_in_batch_work_identity_answers_an_anchor_s_faces_while_the_next_frames_are_searched():
    # given batch work with the strong detector every third frame, and an identity worker that
    # needs the time of two more frames to answer (a class's worth of chips at once)
    clock = [0]
    identity = AnswersLater([Match(None, None), Match("s-17", "excluded")], clock, lag=2)
    face_policy = FacePolicy("exclude", identity, chipper=lambda image, box: (image[box.y0 : box.y1, box.x0 : box.x1], True, False),
                             wait_for_identity=True, identity_timeout_s=0.3)
    engine = PrivacyEngine(Scripted([FACE, OTHER]), Scripted([FACE, OTHER]), face_policy, strong_every=3)
    out, held = [], 0
    for i in range(12):
        clock[0] = i
        out += engine.push(textured(i), i)
        held = max(held, i + 1 - len(out))
    out += engine.flush()
    # then the engine never stood waiting for an answer (it needs them an anchor later) ...
    assert face_policy.timeouts == 0
    # ... and every frame is decided as if it had waited: the cleared face shown, the excluded one hidden
    assert [i for _, i, _ in out] == list(range(12))
    for image, i, _ in out:
        assert not hidden(image, FACE, textured(i)), i
        assert hidden(image, OTHER, textured(i)), i
    assert held <= engine.max_held_frames == 2 * 3 + 1


def test_frames_made_ready_before_a_track_is_doubted_are_decided_as_things_were():
    # given a track asked about, whose frames so far wait for the answer (batch work)
    face_policy = FacePolicy("exclude", ScriptedIdentity([Match(None, None)]), chipper=lambda i, b: (i, True, False),
                             wait_for_identity=True)
    face_policy.observe(6, textured(6), [(1, FACE, 0.9)])
    assert face_policy.awaiting(1)
    before = face_policy.snapshot([1])
    face_policy.answer_log = answers = []
    # when the track jumps onto another face in a later frame, and then the answer comes in
    face_policy.doubt(1)
    face_policy.settle(upto=6)
    # then the later frames hide it (whoever it is now), the earlier ones show the face it was
    assert face_policy.redact(1)
    assert face_policy.decide_with(before, answers) == {1: False}


def test_a_held_face_s_growth_gives_way_to_a_cleared_face_found_there_but_its_own_box_does_not():
    # given an excluded student found once and then lost (looking down): their track is held
    # where they were last found, grown for how far they might have moved while unfound; and
    # beside them a cleared student found in every frame, inside that growth and just overlapping
    # where the excluded face was last found
    lost, beside = Box(200, 100, 240, 150), Box(236, 100, 276, 150)

    engine, _ = engine_with("exclude", [Match("s-17", "excluded"), Match(None, None)],
                            detector=FirstFrameThen([lost, beside], [beside]))
    for image, i, _ in run(engine, 12):
        original = textured(i)
        # then the excluded face's last box stays hidden in every frame, the part of the cleared
        # face over it too, and the rest of the cleared face, found there, shows
        assert hidden(image, lost, original), i
        assert untouched(image, Box(lost.x1, beside.y0, beside.x1, beside.y1), original), i


def test_a_hidden_box_around_cleared_faces_found_there_gives_them_back_unless_held_or_matched_excluded():
    # given a find that boxes a whole group, hidden (too close to an excluded student to clear),
    # and inside it three faces side by side that identity cleared
    group = Box(100, 60, 260, 200)
    faces = [Box(110, 80, 150, 120), Box(160, 80, 200, 120), Box(210, 80, 250, 120)]
    unknown, cleared = Match(None, None, excluded_distance=0.62), Match(None, None)

    def frames(answers, **kwargs):
        engine, _ = engine_with("exclude", answers, **kwargs)
        return [(image, textured(i), i) for image, i, _ in run(engine, 6)]

    # then, while all three are found in the frame, they show, and the rest of the box is hidden
    for image, original, i in frames([unknown] + [cleared] * 3, boxes=[group] + faces):
        assert all(untouched(image, face, original) for face in faces), i
        assert hidden(image, Box(group.x0, 130, group.x1, group.y1), original), i

    # when only two lie inside, the box may be one face with two finds on it (its eyes, say):
    # the cleared finds stay hidden where the box covers them, as before
    for image, original, i in frames([unknown] + [cleared] * 2, boxes=[group] + faces[:2]):
        assert hidden(image, faces[0], original) and hidden(image, faces[1], original), i

    # when identity matched the box itself to an excluded student, it is theirs: all stays hidden
    for image, original, i in frames([Match("s-17", "excluded")] + [cleared] * 3, boxes=[group] + faces):
        assert all(hidden(image, face, original) for face in faces), i

    # when the cleared faces were found once and are now held (not found: someone may be in
    # front of them, in that box), they give nothing back
    for image, original, i in frames([unknown] + [cleared] * 3, detector=FirstFrameThen([group] + faces, [group])):
        if i > 0:
            assert all(hidden(image, face, original) for face in faces), i


def test_every_released_frame_says_for_each_face_where_it_was_what_was_decided_and_why():
    # given a cleared face and an excluded one, found in every frame
    engine, _ = engine_with("exclude", [Match(None, None), Match("s-17", "excluded")], boxes=(FACE, OTHER))
    out = run(engine, 5)
    assert len(out) == 5
    for _, i, report in out:
        by_box = {f.box: f for f in report.faces}
        # then the report holds both boxes, found here, with the decision and its reason
        assert set(by_box) == {FACE, OTHER}, i
        assert (by_box[FACE].hidden, by_box[FACE].why, by_box[FACE].found) == (False, "cleared", True)
        assert (by_box[OTHER].hidden, by_box[OTHER].why) == (True, "excluded")
        assert by_box[OTHER].score == 0.9 and by_box[OTHER].track_id != by_box[FACE].track_id
    # and under `all`, and for a frame failed closed, every face is hidden and says so
    engine = PrivacyEngine(Scripted([FACE]), policy=FacePolicy("all"))
    assert {(f.hidden, f.why) for _, _, r in run(engine, 3) for f in r.faces} == {(True, "all")}
