"""`classcap eval`: the privacy figures, measured on generated clips with exact ground truth.

For each suite and policy the engine runs as in batch work (identity answers awaited), and every
ground-truth face in every released frame is checked with `fixtures.measure.face_left`:

- a face the policy must hide (`all`: every face; `exclude`: excluded students; `allow`: all but
  staff) that is left recognisable is a *leak*; `leak_frames` counts frames with at least one;
- `visible_rate`: of the faces the policy may show, the share left visible;
- `staff_visible_rate`: the same for staff (the teacher) alone;
- `fail_closed_frames`: frames redacted whole because detection failed;
- `settled_visible_rate`: `visible_rate` counting only faces whose person has been in view for
  `SETTLE_S` (2 s) without a break: identity may keep a new face hidden that long, and must not
  keep it longer. A camera cut or someone walking out and back starts their time again;
- `seconds_to_visible_p50` / `_max`: for each appearance of a person who may be shown, the time
  from coming into view to the first frame they are left visible; `never_visible` counts the
  appearances that lasted `SETTLE_S` and were never shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from blur.types import Box
from fixtures.measure import MIN_VISIBLE, face_left
from pipeline.config import PipelineConfig
from pipeline.engine_factory import build_engine

POLICIES = ("all", "exclude", "allow")
SETTLE_S = 2.0  # how long identity may keep a face that may be shown hidden (DESIGN.md's target)


def eval_gallery(suite: str = "easy"):
    """The gallery the evaluation enrols for a suite: its excluded students and its staff, from
    registry photos the suite's clips do not show where there are any."""
    from blur.identity import Enroller, Gallery, GalleryEntry
    from fixtures.suites import cast, enrolment_photos

    enroller = Enroller()
    entries = []
    excluded, staff = cast(suite)
    for role, identities in (("excluded", excluded), ("staff", staff)):
        for identity in identities:
            pairs = [enroller.embed(p.image, Box(*p.face_box)) for p in enrolment_photos(identity)]
            entries.append(GalleryEntry(f"eval-{identity}", role, np.stack([d for d, _ in pairs]),
                                        np.stack([s for _, s in pairs])))
    return Gallery.from_entries(entries)


def must_hide(policy: str, identity: str, excluded: set[str], staff: set[str]) -> bool:
    if policy == "exclude":
        return identity in excluded
    if policy == "allow":
        return identity not in staff
    return True


@dataclass
class Tally:
    frames: int = 0
    leak_frames: int = 0
    hide: int = 0
    leaked: int = 0
    show: int = 0
    shown: int = 0
    staff: int = 0
    staff_shown: int = 0
    fail_closed_frames: int = 0
    seconds: float = 0.0
    settled_show: int = 0
    settled_shown: int = 0
    to_visible: list = field(default_factory=list)  # seconds from appearing to first shown, per appearance
    never_visible: int = 0
    leaks: list = field(default_factory=list)  # (clip, frame, identity, width), for the curious

    def figures(self, policy: str) -> dict:
        waits = sorted(self.to_visible)
        return {
            "frames": self.frames,
            "leak_frames": self.leak_frames,
            "leak_rate": round(self.leaked / self.hide, 5) if self.hide else 0.0,
            "visible_rate": round(self.shown / self.show, 4) if self.show else None,
            "staff_visible_rate": round(self.staff_shown / self.staff, 4) if self.staff else None,
            "fail_closed_frames": self.fail_closed_frames,
            "fps": round(self.frames / self.seconds, 2) if self.seconds else None,
            "faces_to_hide": self.hide,
            "faces_to_show": self.show,
            "settled_visible_rate": round(self.settled_shown / self.settled_show, 4) if self.settled_show else None,
            "seconds_to_visible_p50": round(waits[len(waits) // 2], 2) if waits else None,
            "seconds_to_visible_max": round(waits[-1], 2) if waits else None,
            "never_visible": self.never_visible,
        }


class Appearances:
    """When each person came into view, and whether they have been shown since (per clip).

    An appearance is an unbroken run of frames in which the person is in the ground truth (their
    head in the picture, whether or not the face is turned to the camera).
    """

    def __init__(self, fps: float, tally: Tally):
        self.fps = fps
        self.tally = tally
        self._open: dict[int, list] = {}  # person -> [first frame, last frame, first shown or None, may be shown]

    def frame(self, index: int, faces) -> None:
        present = {f.person for f in faces}
        for person in [p for p in self._open if p not in present]:
            self._close(person)
        for f in faces:
            entry = self._open.get(f.person)
            if entry is None or entry[1] != index - 1:
                if entry is not None:
                    self._close(f.person)
                entry = self._open[f.person] = [index, index, None, False]
            entry[1] = index

    def in_view_s(self, person: int, index: int) -> float:
        return (index - self._open[person][0]) / self.fps

    def shown(self, person: int, index: int, left: bool) -> None:
        entry = self._open[person]
        entry[3] = True
        if left and entry[2] is None:
            entry[2] = index

    def close(self) -> None:
        for person in list(self._open):
            self._close(person)

    def _close(self, person: int) -> None:
        first, last, shown, may = self._open.pop(person)
        if not may:
            return
        if shown is not None:
            self.tally.to_visible.append((shown - first) / self.fps)
        elif (last - first + 1) / self.fps >= SETTLE_S:
            self.tally.never_visible += 1


def run_clip(classroom, policy: str, gallery, config: PipelineConfig, tally: Tally, excluded, staff, max_frames=None) -> None:
    engine, _ = build_engine(PipelineConfig(**{**config.__dict__, "policy": policy}), gallery, wait_for_identity=True)
    truth = classroom.ground_truth()
    originals: dict[int, np.ndarray] = {}

    appearances = Appearances(classroom.spec.fps, tally)

    def score(released) -> None:
        for image, index, report in released:
            original = originals.pop(index)
            tally.frames += 1
            tally.fail_closed_frames += report.fail_closed
            leaked_here = False
            appearances.frame(index, truth[index])
            for face in truth[index]:
                if face.visible_fraction < MIN_VISIBLE:
                    continue
                left = face_left(original, image, face)
                if must_hide(policy, face.identity, excluded, staff):
                    tally.hide += 1
                    if left:
                        tally.leaked += 1
                        leaked_here = True
                        tally.leaks.append((classroom.spec.seed, index, face.identity, face.box[2] - face.box[0]))
                else:
                    tally.show += 1
                    tally.shown += left
                    appearances.shown(face.person, index, left)
                    if appearances.in_view_s(face.person, index) >= SETTLE_S:
                        tally.settled_show += 1
                        tally.settled_shown += left
                if face.identity in staff:
                    tally.staff += 1
                    tally.staff_shown += left
            tally.leak_frames += leaked_here

    # fps is the engine's: drawing the clip and scoring it are not timed
    try:
        for frame in classroom.frames(0, max_frames):
            originals[frame.index] = frame.image.copy()
            started = time.monotonic()
            released = engine.push(frame.image, frame.index)
            tally.seconds += time.monotonic() - started
            score(released)
        started = time.monotonic()
        released = engine.flush()
        tally.seconds += time.monotonic() - started
        score(released)
        appearances.close()
    finally:
        engine.close()


def evaluate(suites: dict, policies=POLICIES, config: PipelineConfig | None = None, max_frames=None, progress=None) -> dict:
    from fixtures.suites import cast, make_clip

    config = config or PipelineConfig()
    identity = any(p.split(",")[0] in ("exclude", "allow") for p in policies)
    results: dict = {}
    for suite, specs in suites.items():
        results[suite] = {}
        gallery = eval_gallery(suite) if identity else None
        excluded, staff = cast(suite)
        for policy in policies:
            tally = Tally()
            for spec in specs:
                if progress:
                    progress(f"{suite} / {policy} / seed {spec.seed}")
                run_clip(make_clip(spec), policy, gallery, config, tally, set(excluded), set(staff), max_frames)
            results[suite][policy] = tally.figures(policy)
            if progress and tally.leaks:
                progress(f"  leaks (seed, frame, identity, face width): {tally.leaks[:10]}")
    return results
