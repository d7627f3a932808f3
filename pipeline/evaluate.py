"""`classcap eval`: the privacy figures, measured on generated clips with exact ground truth.

For each suite and policy the engine runs as in batch work (identity answers awaited), and every
ground-truth face in every released frame is checked with `fixtures.measure.face_left`:

- a face the policy must hide (`all`: every face; `exclude`: excluded students; `allow`: all but
  staff) that is left recognisable is a *leak*; `leak_frames` counts frames with at least one;
- `visible_rate`: of the faces the policy may show, the share left visible;
- `staff_visible_rate`: the same for staff (the teacher) alone;
- `fail_closed_frames`: frames redacted whole because detection failed.
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


def eval_gallery():
    """The gallery the evaluation enrols: its excluded students and its staff, from registry photos."""
    from blur.identity import FaceEmbedder, Gallery, GalleryEntry
    from fixtures.suites import EXCLUDED, STAFF, enrolment_photos

    embedder = FaceEmbedder()
    entries = []
    for role, identities in (("excluded", EXCLUDED), ("staff", STAFF)):
        for identity in identities:
            vectors = [embedder.embed(p.image, Box(*p.face_box)) for p in enrolment_photos(identity)]
            entries.append(GalleryEntry(f"eval-{identity}", role, np.stack(vectors)))
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
    leaks: list = field(default_factory=list)  # (clip, frame, identity, width), for the curious

    def figures(self, policy: str) -> dict:
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
        }


def run_clip(classroom, policy: str, gallery, config: PipelineConfig, tally: Tally, excluded, staff, max_frames=None) -> None:
    engine, _ = build_engine(PipelineConfig(**{**config.__dict__, "policy": policy}), gallery, wait_for_identity=True)
    truth = classroom.ground_truth()
    originals: dict[int, np.ndarray] = {}

    def score(released) -> None:
        for image, index, report in released:
            original = originals.pop(index)
            tally.frames += 1
            tally.fail_closed_frames += report.fail_closed
            leaked_here = False
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
                if face.identity in staff:
                    tally.staff += 1
                    tally.staff_shown += left
            tally.leak_frames += leaked_here

    started = time.monotonic()
    try:
        for frame in classroom.frames(0, max_frames):
            originals[frame.index] = frame.image.copy()
            score(engine.push(frame.image, frame.index))
        score(engine.flush())
    finally:
        engine.close()
    tally.seconds += time.monotonic() - started


def evaluate(suites: dict, policies=POLICIES, config: PipelineConfig | None = None, max_frames=None, progress=None) -> dict:
    from fixtures.classroom import Classroom
    from fixtures.suites import EXCLUDED, STAFF

    config = config or PipelineConfig()
    gallery = eval_gallery() if any(p.split(",")[0] in ("exclude", "allow") for p in policies) else None
    results: dict = {}
    for suite, specs in suites.items():
        results[suite] = {}
        for policy in policies:
            tally = Tally()
            for spec in specs:
                if progress:
                    progress(f"{suite} / {policy} / seed {spec.seed}")
                run_clip(Classroom(spec), policy, gallery, config, tally, set(EXCLUDED), set(STAFF), max_frames)
            results[suite][policy] = tally.figures(policy)
            if progress and tally.leaks:
                progress(f"  leaks (seed, frame, identity, face width): {tally.leaks[:10]}")
    return results
