"""A live camera that may drop out: reopen it with backoff and keep one continuous recording.

The first open is not retried: a camera that cannot be opened at all (unknown device, wrong
password, unreachable host) is the technician's to fix, reported in one sentence. Once frames
have flowed, a `CameraDisconnected` starts a gap: the camera is reopened with exponential
backoff, and when it delivers again the recording goes on in the same stream. Timestamps come
from the station's clock, so the gap shows in the video as the time it lasted (variable frame
rate), and each gap is listed with its UTC start and end. A camera that stays away longer than
`give_up_after_s` ends the iteration cleanly: the recording is finished, not lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from fractions import Fraction

import cv2

from capture.errors import CameraDisconnected, CaptureError
from capture.source import Gap, SourceBase, SourceState
from capture.types import Frame
from classcap.clock import utc_stamp

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)


class ReconnectingSource(SourceBase):
    """Wraps `open_camera()` (returns a live source) and hides disconnects behind retries; its
    health lists each gap and is `reconnecting` while it waits for the camera."""

    def __init__(
        self,
        open_camera: Callable[[], object],
        give_up_after_s: float = 120.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ):
        self._open = open_camera
        self.give_up_after_s = give_up_after_s
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._camera = open_camera()  # not retried: see the module doc
        super().__init__(replace(self._camera.info, time_base=TIME_BASE, live=True))

    def _items(self) -> Iterator[Frame]:
        """Ends at the next frame after `stop()`, or at once during a wait for the camera."""
        t0: float | None = None
        last_pts = -1
        while not self.stopping:
            try:
                for item in self._camera:
                    if self.stopping:
                        return
                    if not isinstance(item, Frame):
                        continue  # cameras' own audio is not used; the station's microphone is
                    if t0 is None:
                        t0 = item.captured_at
                    pts = max(last_pts + 1, round((item.captured_at - t0) / TIME_BASE))
                    last_pts = pts
                    yield replace(item, pts=pts, time_base=TIME_BASE, image=self._fit(item.image), source_id=self.info.source_id)
                reason = "the camera's stream ended"
            except CameraDisconnected as err:
                reason = str(err)
            self._close_camera()
            if self.stopping or not self._reconnect(reason):
                return

    def _reconnect(self, reason: str) -> bool:
        started, started_utc = time.monotonic(), utc_stamp()
        log.warning("camera %s lost (%s); reconnecting", self.info.source_id, reason)
        health = self.health
        health.state = SourceState.RECONNECTING
        wait = self.backoff_s
        while True:
            remaining = self.give_up_after_s - (time.monotonic() - started)
            if remaining <= 0 or self._stopping.wait(min(wait, remaining)):
                health.gaps.append(Gap(started_utc, None, round(time.monotonic() - started, 3), reason))
                if not self.stopping:
                    health.stopped_because = (
                        f"The camera {self.info.source_id} did not come back within {self.give_up_after_s:g} s; "
                        "the recording was finished with what was captured."
                    )
                    log.error(health.stopped_because)
                return False
            wait = min(wait * 2, self.max_backoff_s)
            try:
                self._camera = self._open()
            except CaptureError as err:
                log.info("camera %s not back yet: %s", self.info.source_id, err)
                continue
            health.gaps.append(Gap(started_utc, utc_stamp(), round(time.monotonic() - started, 3), reason))
            log.warning("camera %s is back after %.1f s", self.info.source_id, time.monotonic() - started)
            return True

    def _fit(self, image):
        """A camera that comes back at another size is scaled to the recording's size."""
        h, w = image.shape[:2]
        if (w, h) == (self.info.width, self.info.height):
            return image
        return cv2.resize(image, (self.info.width, self.info.height), interpolation=cv2.INTER_AREA)

    def _close_camera(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.close()
            except Exception as err:  # a dead camera may fail to close; the gap is what matters
                log.debug("closing the lost camera failed: %s", err)

    def close(self) -> None:
        self.stop()
        self._close_camera()
