"""Play a recorded clip as if it were a camera: frames arrive at their own times, not faster.

Used by `classcap bench` and the demo to measure live behaviour: the source is marked live, so
under backpressure the pipeline drops the oldest raw frame instead of waiting, and each frame's
capture time is when it "arrives", which is what latency is measured from.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

from capture.source import SourceBase
from capture.types import AudioChunk, Frame


class PacedSource(SourceBase):
    """A camera's clock: a frame comes out at its time. A camera queues a few frames (V4L2 drivers
    keep about four buffers), so a frame up to `queued` intervals late is still delivered; one
    later than that (the source could not produce it in time) is skipped and counted, as a
    camera's frame is lost when nobody reads it. So timestamps follow the wall clock."""

    queued = 4

    def __init__(self, source):
        self._source = source
        super().__init__(replace(source.info, live=True, source_id=f"paced:{source.info.source_id}"), wraps=source)
        rate = source.info.frame_rate or 30
        self._interval = 1 / float(rate)

    def _items(self) -> Iterator[Frame | AudioChunk]:
        start = None
        for item in self._source:
            if isinstance(item, Frame):
                at = float(item.pts * item.time_base)
                if start is None:
                    start = time.monotonic() - at
                delay = start + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif -delay > self.queued * self._interval:
                    self.health.skipped += 1
                    continue
                item = replace(item, captured_at=time.monotonic(), source_id=self.info.source_id)
            yield item

    def close(self) -> None:
        self._source.close()
