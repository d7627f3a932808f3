"""A test pattern camera: moving colour bars and a frame counter, generated in memory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction

import cv2
import numpy as np

from capture.source import SourceBase
from capture.types import Frame, SourceInfo

BARS = np.array(
    [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)], np.uint8
)


class TestPattern(SourceBase):
    """Frames at `fps`, generated as fast as the source is read (wrap in PacedSource for real time)."""

    __test__ = False  # not a pytest test class

    def __init__(self, width: int = 1280, height: int = 720, fps: int = 30):
        super().__init__(SourceInfo("testpattern", width, height, Fraction(1, fps), Fraction(fps), None, None, None, live=False))
        columns = np.repeat(np.arange(len(BARS)), -(-width // len(BARS)))[:width]
        self._bars = np.ascontiguousarray(np.broadcast_to(BARS[columns], (height, width, 3)))

    def _items(self) -> Iterator[Frame]:
        index = 0
        while not self.stopping:
            image = np.roll(self._bars, index * 4, axis=1)
            cv2.putText(image, f"classcap {index:06d}", (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
            yield Frame(index, self.info.time_base, image, self.info.source_id, time.monotonic())
            index += 1
