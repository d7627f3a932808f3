"""The station's microphone (an ALSA device through PyAV), joined to a camera on one clock.

Sound never delays video: the microphone is read by its own thread into a short bounded
buffer, and the joined source hands out whatever sound has arrived each time a video frame
does. If the buffer overflows (the pipeline stalled) the oldest sound is dropped and counted,
and the next chunk is placed by the clock, so sound and picture stay in step.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from capture.errors import CaptureError
from capture.source import SourceBase
from capture.types import AudioChunk, Frame

log = logging.getLogger(__name__)

# PyAV's wheel bundles alsa-lib built to look for its configuration under a build path; point
# it at the system's, where device names such as "default", "hw:1,0" and "null" are defined.
_SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


# The station's "test pattern" for sound: a 1 kHz tone made by FFmpeg and delivered at the real
# rate in 20 ms periods, as a microphone delivers; checks a station's sound path with no microphone.
TEST_TONE = "testtone"
_TONE_GRAPH = "sine=frequency=1000:sample_rate={rate},arealtime,asetnsamples=n={period},aformat=channel_layouts={layout}"


class AlsaMicrophone:
    """Opens an ALSA capture device (or `testtone`); `chunks()` yields (monotonic end time,
    fltp samples), at least 10 ms of sound a chunk."""

    min_chunk_s = 0.01

    def __init__(self, device: str = "default", sample_rate: int = 48000, channels: int = 2):
        if "ALSA_CONFIG_PATH" not in os.environ and _SYSTEM_ALSA_CONF.is_file():
            os.environ["ALSA_CONFIG_PATH"] = str(_SYSTEM_ALSA_CONF)
        self.device = device
        try:
            if device == TEST_TONE:
                layout = "mono" if channels == 1 else "stereo"
                graph = _TONE_GRAPH.format(rate=sample_rate, period=sample_rate // 50, layout=layout)
                self._container = av.open(graph, format="lavfi")
            else:
                self._container = av.open(
                    device, format="alsa", options={"sample_rate": str(sample_rate), "channels": str(channels)}
                )
        except av.FFmpegError as err:
            raise CaptureError(f"Cannot open the microphone {device!r} ({err.strerror or err}); `arecord -L` lists the devices.") from err
        stream = self._container.streams.audio[0]
        self.sample_rate = stream.rate or sample_rate
        # ALSA reports an unnamed "2 channels" layout; the AAC encoder wants a named one
        self.layout = "mono" if (stream.channels or channels) == 1 else "stereo"
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.sample_rate)

    def chunks(self) -> Iterator[tuple[float, np.ndarray]]:
        # Some devices hand over a few samples at a time (ALSA's `null` device: one); sound is
        # passed on in chunks of at least `min_chunk_s`, so the work per chunk stays small.
        pending: list[np.ndarray] = []
        held, enough = 0, max(1, round(self.min_chunk_s * self.sample_rate))
        for frame in self._container.decode(audio=0):
            arrived = time.monotonic()
            for out in self._resampler.resample(frame):
                pending.append(out.to_ndarray())
                held += out.samples
            if held >= enough:
                yield arrived, pending[0] if len(pending) == 1 else np.concatenate(pending, axis=1)
                pending, held = [], 0

    def close(self) -> None:
        self._container.close()


class WithMicrophone(SourceBase):
    """A video source (camera or test source) with the station microphone's sound added."""

    def __init__(self, video, microphone: AlsaMicrophone, buffer_s: float = 2.0):
        self.video, self.microphone = video, microphone
        # the camera's health (its gaps and state) is the recording's; the microphone adds to it
        super().__init__(replace(video.info, audio_rate=microphone.sample_rate, audio_layout=microphone.layout), wraps=video)
        self._buffer: deque = deque(maxlen=max(4, int(buffer_s * 50)))  # ALSA periods are ~10–25 ms
        self._stop = threading.Event()  # the microphone thread's
        self._thread: threading.Thread | None = None

    # stop(): after the next frame, the sound up to it is handed out and iteration ends

    def _listen(self) -> None:
        try:
            for item in self.microphone.chunks():
                if self._stop.is_set():
                    return
                if len(self._buffer) == self._buffer.maxlen:
                    self.health.dropped_audio_chunks += 1
                self._buffer.append(item)
        except Exception as err:  # the lesson's video goes on; the manifest says the sound stopped
            self.health.audio_error = f"The microphone {self.microphone.device!r} stopped ({err})."
            log.error(self.health.audio_error)

    def _items(self) -> Iterator[Frame | AudioChunk]:
        rate = self.microphone.sample_rate
        tb = Fraction(1, rate)
        self._thread = threading.Thread(target=self._listen, name="microphone", daemon=True)
        self._thread.start()
        origin: float | None = None  # monotonic time of video pts 0
        self._next_pts: int | None = None
        last_video_s = 0.0
        for item in self.video:
            if isinstance(item, AudioChunk):
                continue  # a test clip's own sound is replaced by the microphone's
            if origin is None:
                origin = item.captured_at - float(item.pts * item.time_base)
            last_video_s = float(item.pts * item.time_base)
            yield item
            yield from self._drain(origin, rate, tb)
            if self.stopping:
                break
        if origin is None:
            return
        # The picture has ended; sound captured up to its last frame is still on its way out of
        # ALSA's buffer (a period or two): wait for it briefly so both end together.
        deadline = time.monotonic() + 1.0
        while self._next_pts is not None and self._next_pts < last_video_s * rate and time.monotonic() < deadline:
            time.sleep(0.02)
            yield from self._drain(origin, rate, tb, until=round(last_video_s * rate) + rate // 30)

    def _drain(self, origin: float, rate: int, tb: Fraction, until: int | None = None) -> Iterator[AudioChunk]:
        """Hands out the sound that has arrived, placed on the video's clock.

        What waits in the buffer is placed together, ending where its last chunk arrived: sound
        that comes in a burst (a device's backlog after a stall, or what it held from before the
        first frame) was captured before it arrived, not all at once. Placed chunk by chunk, a
        burst of five periods put the clock 0.1 s behind the sound, the sound was moved back onto
        itself, and the muxer refused it (EINVAL) and ended the recording. Timestamps never go
        back: sound running ahead of the clock is trimmed where it overlaps what went out.
        """
        batch = [self._buffer.popleft() for _ in range(len(self._buffer))]
        if not batch:
            return
        start = round((batch[-1][0] - origin) * rate) - sum(samples.shape[1] for _, samples in batch)
        skip = 0
        if self._next_pts is None or start > self._next_pts + rate // 10:
            self._next_pts = start  # the first sound, or sound was lost (dropped chunks): the clock places it
        elif start < self._next_pts - rate // 10:
            skip = self._next_pts - start  # the device's clock runs fast: drop what overlaps
        for _, samples in batch:
            if skip:
                cut = min(skip, samples.shape[1])
                samples, skip = samples[:, cut:], skip - cut
                if not samples.shape[1]:
                    continue
            n = samples.shape[1]
            if self._next_pts < 0:  # sound from before the first frame
                drop = min(-self._next_pts, n)
                samples, n, self._next_pts = samples[:, drop:], n - drop, self._next_pts + drop
                if n <= 0:
                    continue
            if until is not None and self._next_pts >= until:
                return  # sound from after the last frame
            yield AudioChunk(self._next_pts, tb, samples, rate, self.info.audio_layout)
            self._next_pts += n

    def close(self) -> None:
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join(timeout=2)  # it sees the flag at its next chunk (a few ms)
            self.microphone.close()
        finally:
            self.video.close()
