"""The recording's track index: every face track's box in every frame of its life, what was decided
and why, and its best views. Boxes and numbers only: no pixels, no embeddings, nothing biometric.

`TrackIndex.add(pts, report)` takes each released frame's `FrameReport` in output order; `to_bytes`
gives the stored document (gzip-compressed JSON, schema `classcap.tracks/1`) and `from_bytes` reads
one back. A re-blur reads it to embed only the tracks that were shown, at their best views, and to
find the frames (and so the fragments) in which a newly hidden track appears.

Per face-frame the index holds 15 bytes in memory (frame, box, flags, score). Measured on a
synthetic hour of 40 faces (108,000 frames): 67 MB more resident memory by the end, and writing
it took 4.6 s and 22 MB more, for 9.5 MiB stored. (So it grows with the lesson: streaming it
out as it is made is the next step.)
"""

from __future__ import annotations

import gzip
import json
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction

SCHEMA = "classcap.tracks/1"
BEST_VIEWS = 3  # per track: the frames a re-blur embeds to judge it again
BEST_VIEW_GAP = 15  # frames between two best views, so that they are different moments
_NO_SCORE = 0xFFFF


class TrackIndexError(ValueError):
    """A stored track index this classcap cannot read (one sentence, for stderr)."""


@dataclass
class _Track:
    frames: array = field(default_factory=lambda: array("I"))  # output frame numbers
    boxes: array = field(default_factory=lambda: array("h"))  # x0, y0, x1, y1 per frame (held boxes may reach past the edge)
    flags: array = field(default_factory=lambda: array("B"))  # 1: hidden, 2: found in that frame
    scores: array = field(default_factory=lambda: array("H"))  # confidence × 1000 where found
    why: Counter = field(default_factory=Counter)  # reason -> frames


@dataclass(frozen=True)
class TrackSummary:
    """One track as read back from the index."""

    track_id: int
    frames: tuple[int, ...]
    boxes: tuple[tuple[int, int, int, int], ...]
    hidden: tuple[bool, ...]
    found: tuple[bool, ...]
    why: dict[str, int]
    best: tuple[int, ...]

    @property
    def decision(self) -> str:
        """`hidden` (in every frame), `shown` (in every frame) or `mixed`."""
        if all(self.hidden):
            return "hidden"
        return "shown" if not any(self.hidden) else "mixed"


class TrackIndex:
    def __init__(self, recording_id: str, width: int, height: int, time_base: Fraction):
        self.recording_id, self.width, self.height, self.time_base = recording_id, width, height, Fraction(time_base)
        self.pts = array("q")
        self._tracks: dict[int, _Track] = {}
        self.failed: str | None = None  # why it could not follow the recording (then it is not stored)

    def add(self, pts: int, report) -> None:
        """The faces of the next frame out (`blur.types.FrameReport`); a track's boxes in one frame
        (held, reached back to, between anchors) are kept as the one box that covers them all."""
        frame = len(self.pts)
        self.pts.append(int(pts))
        merged: dict[int, list] = {}
        for face in report.faces:
            b = face.box
            entry = merged.get(face.track_id)
            if entry is None:
                merged[face.track_id] = [b.x0, b.y0, b.x1, b.y1, face.hidden, face.found, face.score, face.why]
                continue
            entry[0], entry[1] = min(entry[0], b.x0), min(entry[1], b.y0)
            entry[2], entry[3] = max(entry[2], b.x1), max(entry[3], b.y1)
            entry[4] = entry[4] or face.hidden
            if face.found and not entry[5]:
                entry[5], entry[6] = True, face.score
        for track_id, (x0, y0, x1, y1, hidden, found, score, why) in merged.items():
            track = self._tracks.setdefault(track_id, _Track())
            track.frames.append(frame)
            track.boxes.extend((x0, y0, x1, y1))
            track.flags.append(int(hidden) | (2 if found else 0))
            track.scores.append(_NO_SCORE if score is None or not found else min(_NO_SCORE - 1, round(score * 1000)))
            track.why[why] += 1

    @property
    def frames(self) -> int:
        return len(self.pts)

    def to_bytes(self) -> bytes:
        """The stored document: gzip-compressed JSON, written in pieces straight into the
        compressor, so that an hour's index never stands in memory as Python lists or one string."""
        z = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip container, with a zero timestamp
        out: list[bytes] = []

        def put(text: str) -> None:
            out.append(z.compress(text.encode()))

        head = {"schema": SCHEMA, "recording_id": self.recording_id, "width": self.width, "height": self.height,
                "time_base": [self.time_base.numerator, self.time_base.denominator], "frames": len(self.pts)}
        put(json.dumps(head, separators=(",", ":"))[:-1] + ',"pts":')
        _put_numbers(put, self.pts)
        put(',"tracks":[')
        for n, (track_id, t) in enumerate(sorted(self._tracks.items())):
            put(("," if n else "") + f'{{"id":{int(track_id)},"frames":')
            _put_numbers(put, t.frames)
            put(',"boxes":')
            _put_numbers(put, t.boxes)
            put(',"hidden":')
            _put_numbers(put, t.flags, lambda f: f & 1)
            put(',"found":')
            _put_numbers(put, t.flags, lambda f: f >> 1 & 1)
            put(',"why":' + json.dumps(dict(sorted(t.why.items())), separators=(",", ":")))
            put(',"best":' + json.dumps(best_views(t)) + "}")
        put("]}")
        out.append(z.flush())
        return b"".join(out)


def _put_numbers(put, values: array, each=None, chunk: int = 8192) -> None:
    """A JSON array of integers, a chunk at a time."""
    put("[")
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk]
        put(("," if start else "") + ",".join(map(str, part if each is None else map(each, part))))
    put("]")


def best_views(t: _Track) -> list[int]:
    """Up to BEST_VIEWS frames where the track was found, most confident (then widest) first, at
    least BEST_VIEW_GAP frames apart."""
    candidates = [(t.scores[i], t.boxes[4 * i + 2] - t.boxes[4 * i], t.frames[i])
                  for i in range(len(t.frames)) if t.flags[i] & 2 and t.scores[i] != _NO_SCORE]
    chosen: list[int] = []
    for _, _, frame in sorted(candidates, key=lambda c: (-c[0], -c[1], c[2])):
        if all(abs(frame - other) >= BEST_VIEW_GAP for other in chosen):
            chosen.append(frame)
            if len(chosen) == BEST_VIEWS:
                break
    return sorted(chosen)


@dataclass(frozen=True)
class StoredIndex:
    """A track index as read back."""

    recording_id: str
    width: int
    height: int
    time_base: Fraction
    pts: tuple[int, ...]
    tracks: tuple[TrackSummary, ...]


def from_bytes(data: bytes, where: str = "the track index") -> StoredIndex:
    try:
        doc = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as err:
        raise TrackIndexError(f"{where} is not a gzip-compressed JSON document: {err}") from err
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise TrackIndexError(f"{where} is of schema {schema!r}; this classcap reads {SCHEMA!r} only.")
    try:
        tracks = []
        for t in doc["tracks"]:
            n, boxes = len(t["frames"]), t["boxes"]
            if len(boxes) != 4 * n or len(t["hidden"]) != n or len(t["found"]) != n:
                raise ValueError(f"track {t['id']} has {n} frames but {len(boxes) // 4} boxes")
            tracks.append(TrackSummary(
                int(t["id"]), tuple(t["frames"]), tuple(tuple(boxes[i : i + 4]) for i in range(0, len(boxes), 4)),
                tuple(bool(h) for h in t["hidden"]), tuple(bool(f) for f in t["found"]), dict(t["why"]), tuple(t["best"]),
            ))
        num, den = doc["time_base"]
        if len(doc["pts"]) != doc["frames"]:
            raise ValueError(f"{doc['frames']} frames but {len(doc['pts'])} timestamps")
        return StoredIndex(doc["recording_id"], int(doc["width"]), int(doc["height"]), Fraction(num, den),
                           tuple(doc["pts"]), tuple(tracks))
    except (KeyError, TypeError, ValueError) as err:
        raise TrackIndexError(f"{where} is not a track index this classcap can read: {err}") from err
