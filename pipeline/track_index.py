"""The recording's track index: every face track's box in every frame of its life, what was decided
and why, and its best views. Boxes and numbers only: no pixels, no embeddings, nothing biometric.

`TrackIndex.add(pts, report)` takes each released frame's `FrameReport` in output order; `to_bytes`
gives the stored document (gzip-compressed JSON, schema `classcap.tracks/1`) and `from_bytes` reads
one back, track by track. A re-blur reads it to embed only the tracks that were shown, at their
best views, and to find the frames (and so the fragments) in which a newly hidden track appears.

The document lists the frames in order, each with its faces (`[track, x0, y0, x1, y1, flags,
score]`), then a summary per track. Each frame goes into the compressor as it is added, so what
the index holds grows by its compressed size only, not by the faces' numbers, and never past
`max_bytes` (`PipelineConfig.track_index_bytes`): measured, 224 KB for the 10 s wall clip of 44
real faces (about 80 MB an hour), and 2.7 MiB for a synthetic hour of 40 still faces.
"""

from __future__ import annotations

import gc
import gzip
import heapq
import json
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction

from classcap.errors import ClasscapError

SCHEMA = "classcap.tracks/1"
BEST_VIEWS = 3  # per track: the frames a re-blur embeds to judge it again
BEST_VIEW_GAP = 15  # frames between two best views, so that they are different moments


def key_beside(video_key: str) -> str:
    """Where a video's track index is stored: beside it, `video.mp4` → `tracks.json.gz` (and a
    re-blur's `video.next.mp4` → `tracks.next.json.gz`)."""
    folder, name = video_key.rsplit("/", 1)
    return f"{folder}/{name.replace('video', 'tracks', 1).removesuffix('.mp4')}.json.gz"


class TrackIndexError(ClasscapError, ValueError):
    """A stored track index this classcap cannot read (one sentence, for stderr)."""


@dataclass
class _Track:
    """What the index keeps of a track while recording: its reasons, and candidates for best views
    (the most confident find in each WINDOW frames, the best KEPT_WINDOWS of them)."""

    why: Counter = field(default_factory=Counter)  # reason -> frames
    windows: list = field(default_factory=list)  # heap of (score, width, -frame, window)
    window_of: dict = field(default_factory=dict)  # window -> its entry in the heap


KEPT_WINDOWS = 32
WINDOW = max(1, BEST_VIEW_GAP // 3)  # three windows to a gap: neighbours of the best still leave room


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
    # where it was found at each best view (an index without them: its box in that frame)
    views: tuple[tuple[int, int, int, int], ...] = ()
    # per frame, the confidence it was found at there, in thousandths (None where not found)
    scores: tuple[int | None, ...] = ()

    @property
    def decision(self) -> str:
        """`hidden` (in every frame), `shown` (in every frame) or `mixed`."""
        if all(self.hidden):
            return "hidden"
        return "shown" if not any(self.hidden) else "mixed"


class TrackIndex:
    def __init__(self, recording_id: str, width: int, height: int, time_base: Fraction, max_bytes: int | None = None):
        self.recording_id, self.width, self.height, self.time_base = recording_id, width, height, Fraction(time_base)
        self.max_bytes = max_bytes  # what it may hold, compressed; past it, it gives up (`failed`)
        self.held_bytes = 0
        self._tracks: dict[int, _Track] = {}
        self.frames = 0
        self.failed: str | None = None  # why it could not follow the recording (then it is not stored)
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip container, with a zero timestamp
        self._out: list[bytes] = []
        head = {"schema": SCHEMA, "recording_id": recording_id, "width": width, "height": height,
                "time_base": [self.time_base.numerator, self.time_base.denominator]}
        self._put(json.dumps(head, separators=(",", ":"))[:-1] + ',"frames":[')

    def _put(self, text: str) -> None:
        chunk = self._z.compress(text.encode())
        if chunk:
            self._out.append(chunk)
            self.held_bytes += len(chunk)

    def add(self, pts: int, report) -> None:
        """The faces of the next frame out (`blur.types.FrameReport`); a track's boxes in one frame
        (held, reached back to, between anchors) are kept as the one box that covers them all.
        Past `max_bytes` the index gives up: it lets go of what it holds and says why in `failed`."""
        if self.failed is not None:
            return
        if self.max_bytes is not None and self.held_bytes > self.max_bytes:
            self.failed = f"it outgrew its bound of {self.max_bytes / 2**20:g} MiB at frame {self.frames}"
            self._out, self._tracks, self.held_bytes = [], {}, 0
            return
        frame = self.frames
        merged: dict[int, list] = {}
        for face in report.faces:
            b = face.box
            entry = merged.get(face.track_id)
            if entry is None:
                merged[face.track_id] = [b.x0, b.y0, b.x1, b.y1, face.hidden, face.found, face.score, face.why,
                                         face.good_view, (b.x0, b.y0, b.x1, b.y1) if face.found else None]
                continue
            entry[0], entry[1] = min(entry[0], b.x0), min(entry[1], b.y0)
            entry[2], entry[3] = max(entry[2], b.x1), max(entry[3], b.y1)
            entry[4] = entry[4] or face.hidden
            if face.found and not entry[5]:
                entry[5], entry[6], entry[9] = True, face.score, (b.x0, b.y0, b.x1, b.y1)
            if face.good_view and not entry[8]:  # the box the good chip was cut from
                entry[8], entry[9] = True, (b.x0, b.y0, b.x1, b.y1)
        faces = []
        for track_id, (x0, y0, x1, y1, hidden, found, score, why, good, seen) in sorted(merged.items()):
            track = self._tracks.setdefault(track_id, _Track())
            track.why[why] += 1
            milli = round(score * 1000) if found and score is not None else None
            if milli is not None:
                _consider(track, milli, x1 - x0, frame, good, seen)
            faces.append(f"[{int(track_id)},{int(x0)},{int(y0)},{int(x1)},{int(y1)},{int(hidden) | (2 if found else 0)},"
                         f"{'null' if milli is None else milli}]")
        self._put(("," if frame else "") + f"[{int(pts)},[" + ",".join(faces) + "]]")
        self.frames += 1

    def to_bytes(self) -> bytes:
        """The stored document: the frames as they came, then a summary per track. Once only."""
        self._put('],"tracks":[')
        for n, (track_id, t) in enumerate(sorted(self._tracks.items())):
            best = best_views(t)
            self._put(("," if n else "") + json.dumps(
                {"id": int(track_id), "why": dict(sorted(t.why.items())), "best": [frame for frame, _ in best],
                 "views": [list(box) for _, box in best]}, separators=(",", ":")))
        self._put("]}")
        self._out.append(self._z.flush())
        data, self._out, self.held_bytes = b"".join(self._out), [], 0
        return data


def _consider(track: _Track, score: int, width: int, frame: int, good: bool = False, box=None) -> None:
    """Keep this find as a candidate best view if it is the best of its window, and its window
    among the track's KEPT_WINDOWS best. A good view (identity was asked about it on a chip good
    enough to clear it) ranks above any other: a re-blur that judges the track again on the most
    confident finds alone found none of them good for three long shown tracks of 355 on the
    43-face wall, and hid them (re-encoding their whole lives) for want of a view. `box` is where
    it was found (the frame's box may be wider: held boxes reach past the picture's edge, and a
    chip cut from one counts as truncated, which no clearing rests on)."""
    window = frame // WINDOW
    entry = (int(good), score, width, -frame, window, box)
    old = track.window_of.get(window)
    if old is not None:
        if entry[:3] <= old[:3]:
            return
        track.windows.remove(old)
        heapq.heapify(track.windows)
    elif len(track.windows) >= KEPT_WINDOWS:
        if entry[:3] <= track.windows[0][:3]:
            return
        del track.window_of[heapq.heappop(track.windows)[4]]
    heapq.heappush(track.windows, entry)
    track.window_of[window] = entry


def best_views(t: _Track) -> list[tuple[int, tuple]]:
    """Up to BEST_VIEWS (frame, box found there) where the track was found, good views first, then
    the most confident (then widest), at least BEST_VIEW_GAP frames apart, in frame order."""
    chosen: list[tuple[int, tuple]] = []
    for _, _, _, minus_frame, _, box in sorted(t.windows, key=lambda c: (-c[0], -c[1], -c[2], -c[3])):
        frame = -minus_frame
        if all(abs(frame - other) >= BEST_VIEW_GAP for other, _ in chosen):
            chosen.append((frame, box))
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


@contextmanager
def _bulk():
    """Python's cycle collector paused while an index's hundreds of thousands of small lists are
    made (none of them cyclic): it scanned them over and over, 1 s of the 2.7 s that reading 300 s
    of the 43-face wall took. Only time changes; another thread's garbage is collected after."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def from_bytes(data: bytes, where: str = "the track index") -> StoredIndex:
    """The index a stored document holds. 300 s of the 43-face wall is 37 MB of JSON and 1,263,000
    faces in 9,000 frames: parsed by orjson (0.4 s here, `json` 0.6-0.8 s) and gathered per track in
    one pass."""
    with _bulk():
        return _index(_document(data, where), where)


def _document(data: bytes, where: str):
    import orjson

    try:
        return orjson.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as err:
        raise TrackIndexError(f"{where} is not a gzip-compressed JSON document: {err}") from err


def _index(doc, where: str) -> StoredIndex:
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise TrackIndexError(f"{where} is of schema {schema!r}; this classcap reads {SCHEMA!r} only.")
    try:
        lives: dict[int, list] = {}  # track -> [frames, boxes, hidden, found, scores]
        pts = []
        for frame, (stamp, faces) in enumerate(doc["frames"]):
            pts.append(int(stamp))
            for track_id, x0, y0, x1, y1, flags, score in faces:
                life = lives.get(track_id)
                if life is None:
                    life = lives[track_id] = [[], [], [], [], []]
                life[0].append(frame)
                life[1].append((int(x0), int(y0), int(x1), int(y1)))
                life[2].append(bool(flags & 1))
                life[3].append(bool(flags & 2))
                life[4].append(None if score is None else int(score))
        tracks = []
        for t in doc["tracks"]:
            life = lives.pop(t["id"], None)
            if life is None:
                raise ValueError(f"track {t['id']} is in no frame")
            views = tuple(tuple(int(v) for v in box) for box in t.get("views", ()))
            if views and len(views) != len(t["best"]):
                raise ValueError(f"track {t['id']} has {len(t['best'])} best views and {len(views)} boxes for them")
            frames, boxes, hidden, found, scores = map(tuple, life)
            tracks.append(TrackSummary(int(t["id"]), frames, boxes, hidden, found, dict(t["why"]), tuple(t["best"]), views,
                                       scores))
        if lives:
            raise ValueError(f"tracks {sorted(lives)} have no summary")
        num, den = doc["time_base"]
        return StoredIndex(doc["recording_id"], int(doc["width"]), int(doc["height"]), Fraction(num, den),
                           tuple(pts), tuple(tracks))
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
        raise TrackIndexError(f"{where} is not a track index this classcap can read: {err}") from err


SECOND_LOOK_VIEWS = 8  # more views judged of a track none of whose best views was good
SECOND_LOOK_GAP = WINDOW


def more_views(track: TrackSummary, tried, width: int, height: int, count: int = SECOND_LOOK_VIEWS) -> list[tuple[int, tuple]]:
    """Up to `count` more (frame, box) to judge a track on where its best views could say nothing
    (none was good enough to clear it): frames it was found in, its box clear of the picture's edge,
    the most confident first, SECOND_LOOK_GAP frames from each other and from those in `tried`,
    in frame order. Its whole life is the choice, so a view may be dimmer or brighter than the best."""
    from blur.identity import EDGE_PX

    taken = list(tried)
    chosen: list[tuple[int, tuple]] = []
    found = [(score or 0, frame, box) for frame, box, seen, score in
             zip(track.frames, track.boxes, track.found, track.scores or (None,) * len(track.frames))
             if seen and box[0] >= EDGE_PX and box[1] >= EDGE_PX and box[2] <= width - EDGE_PX and box[3] <= height - EDGE_PX]
    for _, frame, box in sorted(found, key=lambda c: (-c[0], c[1])):
        if all(abs(frame - other) >= SECOND_LOOK_GAP for other in taken):
            chosen.append((frame, box))
            taken.append(frame)
            if len(chosen) == count:
                break
    return sorted(chosen)


def lives_with_margin(track: TrackSummary, margin: int, frames: int) -> list[tuple[int, tuple[int, int, int, int]]]:
    """(frame, box) for every frame of a track's life, from its first frame to its last (a frame
    it skipped at its box before), and `margin` frames before and after it (at its first and last
    box): the frames a newly hidden track is redacted in."""
    first, last = track.frames[0], track.frames[-1]
    life = [(f, track.boxes[0]) for f in range(max(0, first - margin), first)]
    for n, (frame, box) in enumerate(zip(track.frames, track.boxes)):
        life.append((frame, box))
        upto = track.frames[n + 1] if n + 1 < len(track.frames) else frame + 1
        life.extend((f, box) for f in range(frame + 1, upto))
    life.extend((f, track.boxes[-1]) for f in range(last + 1, min(frames, last + 1 + margin)))
    return life


def hide(data: bytes, hidden: dict[int, str], margin: int, tracks=None) -> bytes:
    """The stored index with the tracks in `hidden` (track -> why) hidden in every frame of their
    lives and `margin` frames either side (`lives_with_margin`), as a re-blur redacts them.
    `tracks` are those tracks' summaries, if the caller has them (else they are read from `data`):
    on the 300 s bench wall, reading the index whole a second time and writing it at gzip's level 9
    took 10.6 s of a 57.6 s re-blur. Only the frames of the hidden tracks are touched."""
    with _bulk():
        return _hide(data, hidden, margin, tracks)


def _hide(data: bytes, hidden: dict[int, str], margin: int, tracks) -> bytes:
    import orjson

    doc = _document(data, "the track index")
    if tracks is None:  # read from the document just parsed (`_index` leaves it as it was)
        tracks = [t for t in _index(doc, "the track index").tracks if t.track_id in hidden]
    frames = doc["frames"]
    added: dict[int, list] = {}
    by_id = {}
    for track in tracks:
        if track.track_id in hidden:
            by_id[track.track_id] = track
            for frame, box in lives_with_margin(track, margin, len(frames)):
                added.setdefault(frame, []).append((track.track_id, box))
    if set(by_id) != set(hidden):
        raise ValueError(f"tracks {sorted(set(hidden) - set(by_id))} to hide were not given")
    for frame, wanted in added.items():
        faces = frames[frame][1]
        there = {face[0] for face in faces}
        for face in faces:
            if face[0] in hidden:
                face[5] |= 1
        for track_id, box in wanted:
            if track_id not in there:
                faces.append([track_id, *box, 1, None])
        faces.sort(key=lambda face: face[0])
    for t in doc["tracks"]:
        if t["id"] in hidden:
            t["why"] = {hidden[t["id"]]: len(lives_with_margin(by_id[t["id"]], margin, len(frames)))}
    return gzip.compress(orjson.dumps(doc), compresslevel=6, mtime=0)  # the level the recording writes at
