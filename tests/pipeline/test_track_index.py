"""The track index: what the engine decided per face and frame, kept as boxes and numbers."""

import gzip
import json
from fractions import Fraction

import numpy as np
import pytest
from conftest import NobodyIdentity

from blur.engine import PrivacyEngine
from blur.policy import FacePolicy
from blur.types import Box, Detection, FaceRecord, FrameReport
from pipeline.track_index import SCHEMA, TrackIndex, TrackIndexError, from_bytes, hide


class Walker:
    """Finds one face walking right 4 px a frame, its confidence peaking at frame 20."""

    def __init__(self):
        self.n = 0

    def detect(self, image):
        n, self.n = self.n, self.n + 1
        return [Detection(Box(100 + 4 * n, 80, 140 + 4 * n, 130), 0.5 + 0.4 * (1 - abs(n - 20) / 40))]

    def close(self):
        pass


def test_the_index_of_a_recording_keeps_every_tracks_boxes_decisions_and_best_views_and_reads_back():
    # given an engine that redacts one face walking across 60 frames, and its reports indexed
    engine = PrivacyEngine(Walker(), policy=FacePolicy("all"))
    index = TrackIndex("20261203T120000Z-abcd", 640, 360, Fraction(1, 90000))
    out = []
    for i in range(60):
        out += engine.push(np.zeros((360, 640, 3), np.uint8), i)
    out += engine.flush()
    for image, i, report in out:
        index.add(3000 * i, report)
    data = index.to_bytes()
    # then it reads back: one track, a box in every frame that covers what was redacted there
    stored = from_bytes(data)
    assert stored.recording_id == "20261203T120000Z-abcd" and stored.time_base == Fraction(1, 90000)
    assert stored.pts == tuple(3000 * i for i in range(60))
    (track,) = stored.tracks
    assert track.frames == tuple(range(60)) and track.decision == "hidden" and track.why == {"all": 60}
    for frame, box in zip(track.frames, track.boxes):
        x0, y0, x1, y1 = box
        assert x0 <= 100 + 4 * frame and x1 >= 140 + 4 * frame and (y0, y1) == (80, 130)
    assert all(track.found)
    # with the confidence of each find, in thousandths (it peaks at frame 20)
    assert len(track.scores) == 60 and max(track.scores) == track.scores[20] == 900
    # and its best views are its most confident moments, apart from one another
    assert track.best[1] == 20 and len(track.best) == 3 and min(np.diff(track.best)) >= 15
    # with the box it was found at in each (what a re-blur chips, not a wider held box)
    assert track.views == tuple((100 + 4 * f, 80, 140 + 4 * f, 130) for f in track.best)
    # and the document holds only boxes and numbers (nothing a face could be rebuilt from)
    doc = json.loads(gzip.decompress(data))
    assert doc["schema"] == SCHEMA and set(doc) == {"schema", "recording_id", "width", "height", "time_base", "frames", "tracks"}
    assert set(doc["tracks"][0]) == {"id", "why", "best", "views"}
    assert all(isinstance(v, int) for _, faces in doc["frames"] for face in faces for v in face)


def test_the_views_identity_was_asked_about_on_a_good_chip_are_best_views_before_more_confident_ones():
    # given the walking face under exclude, re-checked every 10 frames, whose chips are good only
    # once it has walked past x = 200 (frame 26 on), after its most confident moment (frame 20)
    asked = []

    def chipper(image, box):
        asked.append((box.x0, box.x0 > 200))
        return image[box.y0:box.y1, box.x0:box.x1], box.x0 > 200, False

    engine = PrivacyEngine(Walker(), policy=FacePolicy("exclude", NobodyIdentity(), chipper=chipper, wait_for_identity=True,
                                                       recheck_frames=10))
    index = TrackIndex("r", 640, 360, Fraction(1, 30))
    out = []
    for i in range(60):
        out += engine.push(np.zeros((360, 640, 3), np.uint8), i)
    out += engine.flush()
    marked = []
    for image, i, report in out:
        index.add(i, report)
        marked += [i for face in report.faces if face.good_view]
    # then the frames marked are the ones asked about on a good chip, and no other
    good_frames = [(x0 - 100) // 4 for x0, good in asked if good]
    assert marked == good_frames
    # and the index judges the track again on them first: a re-blur chips what cleared it
    (track,) = from_bytes(index.to_bytes()).tracks
    # (asked every 10 frames: 30, 40 and 50 were good; 30 and 50 are far enough apart to be two views)
    assert good_frames == [30, 40, 50] and {30, 50} <= set(track.best)


def test_a_tracks_boxes_in_one_frame_are_kept_as_one_box_hidden_if_any_was():
    index = TrackIndex("r", 640, 360, Fraction(1, 30))
    index.add(0, FrameReport(1, 1, False, (FaceRecord(7, Box(10, 10, 50, 60), True, False, None, "unknown"),
                                          FaceRecord(7, Box(20, 5, 55, 50), False, True, 0.8, "cleared"),
                                          FaceRecord(8, Box(200, 10, 240, 60), False, True, 0.7, "cleared"))))
    index.add(1, FrameReport(0, 0, False, (FaceRecord(9, Box(-12, -3, 20, 30), True, False, None, "unknown"),)))
    stored = from_bytes(index.to_bytes())
    seven, eight, nine = stored.tracks
    assert nine.boxes == ((-12, -3, 20, 30),)  # a held box may reach past the picture's edge
    assert (seven.boxes, seven.hidden, seven.found, seven.best) == (((10, 5, 55, 60),), (True,), (True,), (0,))
    assert seven.views == ((20, 5, 55, 50),)  # its best view is where it was found, not the held box around it
    assert (seven.decision, eight.decision, stored.pts) == ("hidden", "shown", (0, 1))


def test_a_damaged_or_foreign_index_is_refused_in_one_sentence():
    good = TrackIndex("r", 640, 360, Fraction(1, 30))
    good.add(0, FrameReport(1, 1, False, (FaceRecord(1, Box(0, 0, 10, 10), True, True, 0.9, "unknown"),)))
    doc = json.loads(gzip.decompress(good.to_bytes()))
    for bad, says in ((b"not gzip", "not a gzip"),
                      (gzip.compress(json.dumps({**doc, "schema": "classcap.tracks/9"}).encode()), "schema"),
                      (gzip.compress(json.dumps({**doc, "tracks": []}).encode()), "no summary"),
                      (gzip.compress(json.dumps({**doc, "frames": []}).encode()), "in no frame"),
                      (gzip.compress(json.dumps({**doc, "frames": [[0, [[1, 2]]]]}).encode()), "not a track index")):
        with pytest.raises(TrackIndexError, match=says) as err:
            from_bytes(bad, "recordings/x/tracks.json.gz")
        assert "\n" not in str(err.value) and "recordings/x/tracks.json.gz" in str(err.value)


def test_an_hour_of_a_forty_face_class_costs_the_index_a_few_megabytes_not_its_numbers():
    # given an hour (108,000 frames) of 40 faces, each track found every third frame
    index = TrackIndex("r", 1280, 720, Fraction(1, 90000))
    faces = [[FaceRecord(k, Box(30 * k + d, 200, 30 * k + 40 + d, 250), k % 3 == 0, found, 0.8 if found else None,
                         "excluded" if k % 3 == 0 else "cleared") for k in range(40)]
             for d in range(7) for found in (True, False, False)]
    for i in range(108_000):
        index.add(3000 * i, FrameReport(40, 14, False, tuple(faces[i % len(faces)])))
    # then what it holds grows by the compressed frames only: 4.3 million face-frames, whose
    # numbers alone (15 bytes each) would be 65 MB, in a few megabytes
    held = index.held_bytes
    data = index.to_bytes()
    assert held < 8 * 2**20 and len(data) < 8 * 2**20
    stored = from_bytes(data)
    assert len(stored.pts) == 108_000 and len(stored.tracks) == 40
    assert all(len(t.frames) == 108_000 and len(t.best) == 3 for t in stored.tracks)


def test_an_index_that_outgrows_its_bound_lets_go_of_what_it_holds_and_says_why():
    # given an index allowed 64 KiB, fed frames of 40 noisy faces until it is past that
    rng = np.random.default_rng(0)
    index = TrackIndex("r", 1280, 720, Fraction(1, 30), max_bytes=64 * 2**10)
    for i in range(3000):
        faces = tuple(FaceRecord(int(k), Box(*map(int, (x, 200, x + 40, 250))), True, True, float(rng.random()), "weak")
                      for k, x in zip(rng.integers(0, 10**6, 40), rng.integers(0, 1200, 40)))
        index.add(i, FrameReport(40, 40, False, faces))
        if index.failed:
            break
    # then it stopped there, holds nothing more, and the recording is told why
    assert index.failed and "outgrew its bound of 0.0625 MiB at frame" in index.failed
    assert index.held_bytes == 0 and index.frames < 3000


def test_more_views_are_the_most_confident_finds_clear_of_the_edge_apart_from_those_tried():
    from pipeline.track_index import SECOND_LOOK_GAP, TrackSummary, more_views

    # given a track found in every other frame of 100, more confidently as it goes, at the
    # picture's left edge from frame 90 on
    frames = tuple(range(100))
    boxes = tuple((0, 100, 40, 150) if f >= 90 else (100, 100, 140, 150) for f in frames)
    found = tuple(f % 2 == 0 for f in frames)
    scores = tuple(10 * f if f % 2 == 0 else None for f in frames)
    track = TrackSummary(7, frames, boxes, (False,) * 100, found, {"cleared": 100}, (88,), ((100, 100, 140, 150),), scores)
    # when three more views are asked for, its best view (88) having been tried
    views = more_views(track, track.best, 640, 360, count=3)
    # then they are the most confident finds off the edge, apart from 88 and from one another, in frame order
    assert SECOND_LOOK_GAP == 5
    assert views == [(70, (100, 100, 140, 150)), (76, (100, 100, 140, 150)), (82, (100, 100, 140, 150))]
    # and a track found only at the edge has none to give
    edge = TrackSummary(8, frames, ((0, 100, 40, 150),) * 100, (False,) * 100, found, {}, (), (), scores)
    assert more_views(edge, (), 640, 360) == []


def test_hiding_a_track_flags_every_frame_of_its_life_and_margin_and_leaves_the_rest_as_stored():
    # given two cleared tracks over 20 frames: 5 is seen in frames 5-9 (missed in 7), 6 throughout
    index = TrackIndex("r", 640, 360, Fraction(1, 30))
    for i in range(20):
        faces = [FaceRecord(6, Box(300, 10, 340, 60), False, True, 0.9, "cleared")]
        if 5 <= i <= 9 and i != 7:
            faces.insert(0, FaceRecord(5, Box(10 + i, 10, 50 + i, 60), False, True, 0.8, "cleared"))
        index.add(i, FrameReport(len(faces), 0, False, tuple(faces)))
    data = index.to_bytes()
    stored = from_bytes(data)
    five = next(t for t in stored.tracks if t.track_id == 5)
    # when track 5 is hidden (with its summary given, as a re-blur has it, or read from the index)
    body = hide(data, {5: "excluded"}, 2, [five])
    assert body == hide(data, {5: "excluded"}, 2)
    after = from_bytes(body)
    five, six = after.tracks
    # then it is hidden in frames 3-11: its life (the missed frame at its box before) and 2 either side
    assert five.frames == tuple(range(3, 12)) and all(five.hidden) and five.why == {"excluded": 9}
    assert five.boxes[:3] == ((15, 10, 55, 60),) * 3 and five.boxes[3] == (16, 10, 56, 60) == five.boxes[4]
    assert five.boxes[-3:] == ((19, 10, 59, 60),) * 3
    # and the other track, the frames and every best view are as stored
    assert six == next(t for t in stored.tracks if t.track_id == 6) and after.pts == stored.pts
    assert five.best == next(t for t in stored.tracks if t.track_id == 5).best
    # a hidden track the caller did not give is refused, not skipped
    with pytest.raises(ValueError):
        hide(data, {5: "excluded", 6: "excluded"}, 2, [five])
