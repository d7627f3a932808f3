"""The track index: what the engine decided per face and frame, kept as boxes and numbers."""

import gzip
import json
from fractions import Fraction

import numpy as np
import pytest

from blur.engine import PrivacyEngine
from blur.policy import FacePolicy
from blur.types import Box, Detection, FaceRecord, FrameReport
from pipeline.track_index import SCHEMA, TrackIndex, TrackIndexError, from_bytes


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
    # and its best views are its most confident moments, apart from one another
    assert track.best[1] == 20 and len(track.best) == 3 and min(np.diff(track.best)) >= 15
    # and the document holds only boxes and numbers (nothing a face could be rebuilt from)
    doc = json.loads(gzip.decompress(data))
    assert doc["schema"] == SCHEMA
    assert set(doc["tracks"][0]) == {"id", "frames", "boxes", "hidden", "found", "why", "best"}
    assert all(isinstance(v, int) for t in doc["tracks"] for k in ("frames", "boxes", "hidden", "found") for v in t[k])


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
    assert (seven.decision, eight.decision, stored.pts) == ("hidden", "shown", (0, 1))


def test_a_damaged_or_foreign_index_is_refused_in_one_sentence():
    good = TrackIndex("r", 640, 360, Fraction(1, 30))
    good.add(0, FrameReport(1, 1, False, (FaceRecord(1, Box(0, 0, 10, 10), True, True, 0.9, "unknown"),)))
    doc = json.loads(gzip.decompress(good.to_bytes()))
    for bad, says in ((b"not gzip", "not a gzip"),
                      (gzip.compress(json.dumps({**doc, "schema": "classcap.tracks/9"}).encode()), "schema"),
                      (gzip.compress(json.dumps({**doc, "pts": []}).encode()), "timestamps"),
                      (gzip.compress(json.dumps({**doc, "tracks": [{**doc["tracks"][0], "boxes": [1, 2]}]}).encode()), "boxes")):
        with pytest.raises(TrackIndexError, match=says) as err:
            from_bytes(bad, "recordings/x/tracks.json.gz")
        assert "\n" not in str(err.value) and "recordings/x/tracks.json.gz" in str(err.value)
