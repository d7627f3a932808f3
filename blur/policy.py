"""Who is redacted: the blur policies, and the identity bookkeeping they need, per track.

- `all`: every face.
- `exclude`: faces of students in the exclusion gallery. A new track counts as excluded until
  identity work clears it (fail closed); a track that ever matched an excluded student stays
  redacted for its whole life.
- `allow`: every face except enrolled staff — needs no pupil biometrics at all.

Identity is asked per track, never per frame, and runs in another process (`IdentityWorker`).
In batch work the engine waits for the answers, so nobody is blurred only because identity was
late; answers are taken only when frames are released, all of them, so the decisions do not
depend on how fast the worker was. Live, it never waits and unanswered tracks stay redacted.

Clearing a face (`exclude`) takes more than one "nobody": dlib puts a small, dim or blurred
face of an excluded student 0.6-0.65 from their enrolment now and then, where the nearest
stranger on the real-photograph suite is 0.62 away. So a track is cleared only after
`clear_votes` good views, `vote_gap` frames or more apart, each at least `clear_distance` from
every excluded student; a view between the match threshold and that is no decision, and the
face is looked at again soon. Any match, on any view, makes the track excluded for its life.
A small face (20-22 px) counts as "nobody" only when a second model, SFace, agrees
(`blur.identity.Gallery.match`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from blur.errors import PrivacyError
from blur.types import Box

log = logging.getLogger(__name__)

FACE_POLICIES = ("all", "exclude", "allow")

UNKNOWN, PENDING, CLEARED, STAFF, EXCLUDED = "unknown", "pending", "cleared", "staff", "excluded"
_RANK = {UNKNOWN: 0, PENDING: 0, CLEARED: 1, STAFF: 2, EXCLUDED: 3}  # a track only moves up


class IdentityService(Protocol):
    def submit(self, track_id: int, chip: np.ndarray, small: bool = False) -> bool: ...

    def has_room(self) -> bool: ...  # would `submit` take one more chip now?

    def poll(self) -> list: ...

    def wait(self, track_ids: Iterable[int], timeout: float) -> list: ...

    def close(self) -> None: ...


@dataclass
class TrackIdentity:
    state: str = UNKNOWN
    person_id: str | None = None
    asked_at: int | None = None  # frame of the last request (or failed attempt)
    asked_width: int = 0  # face width then: a face that has grown is worth another try
    asked_score: float = 0.0  # detection confidence then: a face seen better is worth another try
    outstanding: int = 0  # requests sent and not answered yet
    last_box: Box | None = None
    last_seen: int = 0
    may_clear: deque = field(default_factory=deque)  # per outstanding request: (frame asked, chip good?, small face?)
    votes: list = field(default_factory=list)  # frames of good views that were clearly nobody excluded
    doubted: bool = False  # it jumped onto another face: the next clearing needs a confident detection
    poor: int = 0  # answers in a row that said nothing (poor views): the next look waits longer


def same_place(a: Box, b: Box) -> bool:
    """Two face boxes close enough (centres within one face width, similar size) to be one seat."""
    dx = (a.x0 + a.x1 - b.x0 - b.x1) / 2
    dy = (a.y0 + a.y1 - b.y0 - b.y1) / 2
    width = max(a.width, b.width, 1)
    return (dx * dx + dy * dy) ** 0.5 <= width and 0.5 <= a.width / max(b.width, 1) <= 2.0


def still_shown(policy: str, answers, clear_distance: float = 0.65, sface_clear_distance: float = 0.6) -> tuple[bool, str]:
    """Whether a track that was shown may stay shown under today's gallery, judged again on its
    best views (a re-blur: `pipeline/reblur_index.py`), and why. `answers` are (match, good chip,
    small face) for each view that could be chipped; match is None where none could.

    The rules of the live policy hold: any view that matches an excluded student hides the track
    for its life; under `exclude` a track stays shown only on a good view clearly (`clear_distance`,
    and for a small face SFace's `sface_clear_distance` too) from every excluded student; under
    `allow` only on a view that is still a member of staff. A track nothing can be said of is hidden.
    """
    answers = list(answers)
    if policy not in ("exclude", "allow"):
        return False, policy
    if any(getattr(m, "role", None) == "excluded" for m, _, _ in answers):
        return False, EXCLUDED
    if policy == "allow":
        return (True, STAFF) if any(getattr(m, "role", None) == "staff" for m, _, _ in answers) else (False, "not staff")
    for match, good, small in answers:
        if match is None or not good or getattr(match, "excluded_distance", math.inf) < clear_distance:
            continue
        sface = getattr(match, "sface_excluded_distance", None)
        if small and (sface is None or sface < sface_clear_distance):
            continue
        return True, CLEARED
    return False, UNKNOWN


def parse_policy(text: str) -> tuple[str, bool]:
    """`exclude`, `allow,background`, `background` (= all faces + background) → (face policy, background)."""
    parts = {p.strip() for p in text.replace("+", ",").split(",") if p.strip()}
    background = "background" in parts
    parts.discard("background")
    if len(parts) > 1 or (parts and not parts <= set(FACE_POLICIES)):
        raise ValueError(
            f"policy {text!r} is not one of {', '.join(FACE_POLICIES)}, optionally with ',background'"
        )
    return (parts.pop() if parts else "all"), background


class FacePolicy:
    def __init__(
        self,
        name: str = "all",
        identity: IdentityService | None = None,
        chipper: Callable[[np.ndarray, Box], tuple[np.ndarray, bool, bool]] | None = None,
        wait_for_identity: bool = False,
        recheck_frames: int = 90,
        retry_frames: int = 10,
        ghost_frames: int = 300,
        identity_timeout_s: float = 60.0,
        clear_votes: int = 1,
        vote_gap: int = 15,
        clear_distance: float = 0.65,
        max_retry_frames: int = 60,
        clear_min_score: float = 0.2,
        sface_clear_distance: float = 0.6,
    ):
        if name not in FACE_POLICIES:
            raise ValueError(f"face policy must be one of {', '.join(FACE_POLICIES)}, not {name!r}")
        self.name = name
        self.needs_identity = name in ("exclude", "allow")
        if self.needs_identity and (identity is None or chipper is None):
            raise PrivacyError(f"The {name} policy needs the identity worker and the face embedder.")
        self._identity = identity
        self._chipper = chipper
        self.wait_for_identity = wait_for_identity
        self.recheck_frames = recheck_frames
        self.retry_frames = retry_frames
        self.identity_timeout_s = identity_timeout_s
        self.clear_votes = max(1, clear_votes)
        self.vote_gap = vote_gap
        self.clear_distance = clear_distance
        self.max_retry_frames = max(retry_frames, max_retry_frames)
        # A track that jumped onto another face (`doubt`) is cleared only on a look found at this
        # score or more. Re-encoded (a re-blur reads the stored video), a cleared student's track
        # jumped onto john_salley's card as the student turned away; his 37 px face was found at
        # 0.15 and came 0.74 from his enrolment on a chip that passed the gate, so he was shown
        # for 11 frames. (For every new track the same rule cost the real suite 19 % of its
        # visible faces: 8 % of real faces' good chips score below 0.2.)
        self.clear_min_score = clear_min_score
        # A small face (the chipper says so: narrower than `blur.identity.MIN_FACE_PX`) is cleared
        # only when SFace, too, puts it at least this far from every excluded student.
        self.sface_clear_distance = sface_clear_distance
        self.tracks: dict[int, TrackIdentity] = {}
        # Where excluded students were when their tracks ended: someone who looks away for a
        # while comes back as a new track in the same place, first seen at a poor angle. A new
        # track there inherits the exclusion instead of being cleared on that poor view.
        self.ghosts: list[tuple[Box, int]] = []  # (last box, frame it was last seen)
        # tracks whose chip of the frame last observed was good (a view a clearing may rest on):
        # the track index keeps them as best views, so that a re-blur judges them on the same frames.
        # A new set for every frame (`observe`), so a frame may keep the one it was given.
        self.good_views: set[int] = set()
        self.ghost_frames = ghost_frames
        # Batch work: the requests not yet taken, (frame asked, track id) in the order sent, and
        # the answers in for them. One worker answers in the order it was asked, so the first
        # answers are those of the first requests; `settle(upto)` takes exactly those asked at
        # frames up to `upto`, however many more have come in, and decisions stay independent of
        # timing while the worker gets on with later requests.
        self._requests: deque[tuple[int, int]] = deque()
        self._arrived: deque = deque()
        self.answer_log: list | None = None  # set by the engine: every answer taken is added to it
        self.backlog_events = 0  # requests refused because the worker was behind
        self.timeouts = 0  # batch waits that ran out (those tracks stayed redacted)

    # -- asking
    def observe(self, index: int, image: np.ndarray, seen: list[tuple[int, Box, float]]) -> None:
        """Tracks detected in this frame: ask about new ones, and re-check old ones now and then."""
        self.good_views = set()
        if not self.needs_identity:
            return
        if not self.wait_for_identity:
            self._take(self._identity.poll())
        self.ghosts = [(b, at) for b, at in self.ghosts if index - at <= self.ghost_frames]
        for track_id, box, score in seen:
            if track_id not in self.tracks and any(same_place(box, b) for b, _ in self.ghosts):
                self.tracks[track_id] = TrackIdentity(state=EXCLUDED, person_id="(inherited)")
            ident = self.tracks.setdefault(track_id, TrackIdentity())
            ident.last_box, ident.last_seen = box, index
            if ident.state == EXCLUDED or not self._due(ident, index, box, score):
                continue
            if not self.wait_for_identity and not self._identity.has_room():
                # Live, a full worker refuses the chip: do not cut it. After a cut to a view of 44
                # new faces (the wall clip), 415 of 697 chips were cut only to be refused, 2.5 ms
                # each on the engine's thread, and frames fell 300 ms behind for a second.
                self.backlog_events += 1
                continue  # asked again the next time the face is seen
            try:
                chip, good, small = self._chipper(image, box)
            except Exception as err:  # too small or no landmarks: stays as it is (redacted if unknown)
                log.debug("no face chip for track %d: %s", track_id, err)
                chip, good, small = None, False, False
            if chip is None:
                ident.asked_at, ident.asked_width, ident.asked_score = index, box.width, score
                continue
            if ident.doubted:  # it was someone else a moment ago: clear it only on a face seen with confidence
                good = good and score >= self.clear_min_score
            if not self._submit(track_id, chip, small):
                self.backlog_events += 1
                continue  # asked again the next time the face is seen
            if self.wait_for_identity:
                self._requests.append((index, track_id))
            ident.asked_at, ident.asked_width, ident.asked_score = index, box.width, score
            ident.outstanding += 1
            ident.may_clear.append((index, good, small))
            if good:
                self.good_views.add(track_id)
            if ident.state == UNKNOWN:
                ident.state = PENDING

    def _due(self, ident: TrackIdentity, index: int, box: Box, score: float) -> bool:
        if ident.asked_at is None:
            return True
        if ident.state == PENDING:
            return False
        since = index - ident.asked_at
        if ident.state == UNKNOWN:
            if ident.votes:  # one clear look so far: the next one a little later, from another moment
                return since >= self.vote_gap
            # not seen well enough yet: try again soon, later after each poor look, at once when
            # the face has come closer
            wait = min(self.max_retry_frames, self.retry_frames * 2 ** max(0, min(ident.poor, 5) - 1))
            if since >= wait or box.width >= 1.5 * max(ident.asked_width, 1):
                return True
        if since >= self.retry_frames and score >= ident.asked_score + 0.15:
            return True  # seen clearly better than when last asked (turned to the camera, lights up)
        return since >= self.recheck_frames

    def _submit(self, track_id: int, chip: np.ndarray, small: bool) -> bool:
        """Live, a full worker means "not now". In batch work there is time: wait for room."""
        if self._identity.submit(track_id, chip, small):
            return True
        if not self.wait_for_identity:
            return False
        self._await(len(self._arrived) + 1)  # the oldest request's answer frees a place
        return self._identity.submit(track_id, chip, small)

    def settle(self, upto: int | None = None) -> None:
        """Before frames are released: take the answers that are in; in batch, wait for the rest.

        In batch work, the answers to every request made at frames up to `upto` (all of them
        without it), and no others: what is decided does not depend on timing.
        """
        if not self.needs_identity:
            return
        if not self.wait_for_identity:
            self._take(self._identity.poll())
            return
        wanted = sum(1 for asked, _ in self._requests if upto is None or asked <= upto)
        if not self._await(wanted):
            self.timeouts += 1  # those tracks keep whatever they had: unknown ones stay redacted
        answers = [self._arrived.popleft() for _ in range(min(wanted, len(self._arrived)))]
        for (_, asked_track), (answered_track, _) in zip(self._requests, answers):
            if asked_track != answered_track:  # the worker answers in order; anything else is a fault
                raise PrivacyError("The identity worker answered out of order.")
        for _ in answers:
            self._requests.popleft()
        self._take(answers)

    def _await(self, count: int) -> bool:
        """Batch: wait until the answers to the first `count` requests are in (False: timed out)."""
        deadline = time.monotonic() + self.identity_timeout_s
        while len(self._arrived) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # a result for each of these tracks is the next answer to that track's oldest request
            missing = {track for _, track in list(self._requests)[len(self._arrived) : count]}
            self._arrived.extend(self._identity.wait(missing, timeout=remaining))
        return True

    def _take(self, answers) -> None:
        for track_id, match in answers:
            self._apply(self.tracks.setdefault(track_id, TrackIdentity()), match)
            if self.answer_log is not None:
                self.answer_log.append((track_id, match))

    def _apply(self, ident: TrackIdentity, match) -> None:
        """One answer, to the oldest of the track's requests in flight."""
        ident.outstanding = max(0, ident.outstanding - 1)
        asked, good, small = ident.may_clear.popleft() if ident.may_clear else (None, False, False)
        role = getattr(match, "role", None)
        if role in ("excluded", "staff"):
            state = EXCLUDED if role == "excluded" else STAFF
            if _RANK[state] >= _RANK[ident.state]:
                ident.state, ident.person_id = state, getattr(match, "person_id", None)
            return
        clearly = good and getattr(match, "excluded_distance", math.inf) >= self.clear_distance
        if small:  # dlib alone misses too many small faces: SFace must say "nobody excluded" too
            sface = getattr(match, "sface_excluded_distance", None)
            clearly = clearly and sface is not None and sface >= self.sface_clear_distance
        if ident.state in (CLEARED, STAFF, EXCLUDED):
            return  # a re-check that found nobody: as it was
        if clearly and asked is not None and (not ident.votes or asked - ident.votes[0] >= self.vote_gap):
            ident.votes.append(asked)
        ident.poor = 0 if clearly else ident.poor + 1
        if len(ident.votes) >= self.clear_votes:
            ident.state = CLEARED
        elif ident.state == PENDING and ident.outstanding == 0:
            ident.state = UNKNOWN  # nothing decided yet (a poor view, or too close to call): ask again

    def snapshot(self, track_ids) -> dict[int, TrackIdentity]:
        """What is known now of these tracks, to be decided later with only the answers then in
        (`decide_with`): whatever the tracks do meanwhile (a jump that doubts one) is about later frames."""
        return {t: copy.deepcopy(self.tracks[t]) for t in track_ids if t in self.tracks}

    def decide_with(self, snapshot: dict[int, TrackIdentity], answers) -> dict[int, bool]:
        """Whether each snapshotted track is redacted, once `answers` (track id, match) are applied to it."""
        for track_id, match in answers:
            if track_id in snapshot:
                self._apply(snapshot[track_id], match)
        return {t: self._redacts(ident.state) for t, ident in snapshot.items()}

    def doubt(self, track_id: int) -> None:
        """The track may have moved onto another face: what cleared it no longer counts.

        An excluded track stays excluded (the safe way round); a cleared or staff track goes
        back to unknown, hidden, and is asked about again at once.
        """
        ident = self.tracks.get(track_id)
        if ident is not None and ident.state in (CLEARED, STAFF, UNKNOWN, PENDING):
            if ident.state in (CLEARED, STAFF):
                ident.state = UNKNOWN
            ident.person_id, ident.asked_at, ident.votes, ident.poor = None, None, [], 0
            ident.doubted = True
            ident.may_clear.clear()
            ident.may_clear.extend([(None, False, False)] * ident.outstanding)  # answers in flight are about the old face

    def scene_cut(self) -> None:
        """The camera cut to another view: seats of the old view mean nothing in the new one."""
        self.ghosts = []
        for ident in self.tracks.values():
            ident.last_box = None  # an ending track leaves no ghost

    # -- deciding
    def awaiting(self, track_id: int) -> bool:
        """Identity has been asked about this track and has not answered yet."""
        ident = self.tracks.get(track_id)
        return ident is not None and ident.outstanding > 0

    def redact(self, track_id: int) -> bool:
        if self.name == "all":
            return True
        return self._redacts(self.tracks.get(track_id, TrackIdentity()).state)

    def state(self, track_id: int) -> str:
        """What identity holds of the track now: unknown, pending, cleared, staff or excluded
        (`all` under the `all` policy, which asks no one)."""
        if not self.needs_identity:
            return "all"
        ident = self.tracks.get(track_id)
        return ident.state if ident is not None else UNKNOWN

    def matched_excluded(self, track_id: int) -> bool:
        """Whether identity has matched this track to an excluded student (or it inherited that)."""
        ident = self.tracks.get(track_id)
        return ident is not None and ident.state == EXCLUDED

    def _redacts(self, state: str) -> bool:
        if self.name == "all":
            return True
        if self.name == "exclude":
            return state not in (CLEARED, STAFF)
        return state != STAFF  # allow

    def forget(self, alive: set[int]) -> None:
        """Drop what is known of tracks that have ended (memory stays flat over an hour)."""
        for track_id in [t for t in self.tracks if t not in alive]:
            ended = self.tracks.pop(track_id)
            if ended.state == EXCLUDED and ended.last_box is not None:
                self.ghosts.append((ended.last_box, ended.last_seen))

    def close(self) -> None:
        if self._identity is not None:
            self._identity.close()
