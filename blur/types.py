"""What flows through the privacy engine: plain, frozen values on arrays and boxes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A pixel rectangle, x0/y0 inclusive, x1/y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def intersection(self, other: "Box") -> "Box | None":
        x0, y0, x1, y1 = max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1)
        return Box(x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None

    def padded(self, left: float, top: float, right: float, bottom: float, width: int, height: int) -> "Box":
        """Grown by fractions of its own size on each side, clipped to a width×height frame."""
        w, h = self.width, self.height
        return Box(
            max(0, int(self.x0 - left * w)),
            max(0, int(self.y0 - top * h)),
            min(width, int(round(self.x1 + right * w))),
            min(height, int(round(self.y1 + bottom * h))),
        )


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float


@dataclass(frozen=True)
class FaceRecord:
    """One face box the engine decided on in one frame: boxes and numbers, never pixels.

    `why` is the reason behind the decision: for a shown face `cleared` or `staff`; for a hidden
    one `excluded`, `unknown`, `pending` (identity had not answered), `weak` (only ever found
    faintly), `not staff` (`allow`), `all` (the `all` policy), `over budget` or `fail closed`.
    """

    track_id: int
    box: Box
    hidden: bool
    found: bool  # detected in this very frame (else held, reached back to, or between two anchors)
    score: float | None  # the detection's confidence, where found
    why: str
    good_view: bool = False  # identity was asked about it on a good chip of this very frame


@dataclass(frozen=True)
class FrameReport:
    """What the engine did to one frame; the pipeline adds these up for the manifest, and keeps
    its faces for the recording's track index."""

    faces_detected: int
    faces_redacted: int
    fail_closed: bool
    faces: tuple[FaceRecord, ...] = ()
