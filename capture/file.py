"""A video file as a frame source, decoded in memory by PyAV."""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av

from capture.errors import CaptureError, InputNotFound
from capture.source import SourceBase
from capture.types import AudioChunk, Frame, SourceInfo


class FileSource(SourceBase):
    """Decodes video (and optionally audio) from a file, in presentation order, keeping timestamps.

    Opening probes the file, so a missing, non-video or unreadable file fails before anything
    is written to storage.
    """

    def __init__(self, path: str | Path | BinaryIO, with_audio: bool = True, name: str | None = None):
        if hasattr(path, "read"):  # a clip already in memory (a benchmark's, say)
            self.path = Path(name or "clip.mp4")
            source = path
        else:
            self.path = Path(path)
            if not self.path.exists():
                raise InputNotFound(f"Input file {self.path} does not exist.")
            if not self.path.is_file():
                raise CaptureError(f"Input {self.path} is not a regular file.")
            source = str(self.path)
        try:
            self._container = av.open(source, mode="r")
        except av.FFmpegError as err:
            raise CaptureError(f"Input {self.path} is not a readable video file ({_reason(err)}).") from err
        if not self._container.streams.video:
            self._container.close()
            raise CaptureError(f"Input {self.path} has no video stream.")
        self._video = self._container.streams.video[0]
        self._video.thread_type = "AUTO"
        audio = self._container.streams.audio
        self._audio = audio[0] if (with_audio and audio) else None
        self._resampler = av.AudioResampler(format="fltp") if self._audio else None
        cc = self._video.codec_context
        if not cc.width or not cc.height:
            self._container.close()
            raise CaptureError(f"Input {self.path} has a video stream without a frame size; the file is damaged.")
        super().__init__(SourceInfo(
            source_id=f"file:{self.path.name}",
            width=cc.width,
            height=cc.height,
            time_base=self._video.time_base or Fraction(1, 90000),
            frame_rate=self._video.average_rate,
            frames=self._video.frames or None,
            audio_rate=self._audio.rate if self._audio else None,
            audio_layout=self._audio.layout.name if self._audio else None,
            live=False,
        ))
        self._last_pts: int | None = None
        rate = self.info.frame_rate or Fraction(30)
        self._tick = max(1, round(1 / (rate * self.info.time_base)))  # one frame's duration in pts units
        self.repaired_timestamps = 0

    def _items(self) -> Iterator[Frame | AudioChunk]:
        """The file's frames and sound; after `stop()` (the teacher pressed stop, SIGINT) it ends
        at the next packet, and what was handed out is kept."""
        streams = [self._video] + ([self._audio] if self._audio else [])
        decoded = 0
        try:
            for packet in self._container.demux(*streams):
                if self.stopping:
                    return
                for frame in packet.decode():
                    if packet.stream is self._video:
                        decoded += 1
                        yield self._video_frame(frame)
                    else:
                        yield from self._audio_chunks(frame)
        except av.FFmpegError as err:
            raise CaptureError(f"Input {self.path} could not be decoded after {decoded} frames ({_reason(err)}).") from err
        if decoded == 0:
            raise CaptureError(f"Input {self.path} contains no decodable video frames.")
        if self.info.frames and decoded < self.info.frames:
            raise CaptureError(
                f"Input {self.path} ends early: {decoded} of its {self.info.frames} frames could be decoded; the file is truncated or damaged."
            )

    def _audio_chunks(self, frame: av.AudioFrame) -> Iterator[AudioChunk]:
        # Planar float is what the AAC encoder takes, so convert once here.
        for planar in self._resampler.resample(frame):
            yield AudioChunk(planar.pts, planar.time_base, planar.to_ndarray(), planar.sample_rate, planar.layout.name)

    def _video_frame(self, frame: av.VideoFrame) -> Frame:
        image = frame.to_ndarray(format="rgb24")
        pts = frame.pts
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            # A damaged or odd file: keep the frame, one tick after the previous one, and count it.
            pts = 0 if self._last_pts is None else self._last_pts + self._tick
            self.repaired_timestamps += 1
        self._last_pts = pts
        return Frame(pts, self.info.time_base, image, self.info.source_id, time.monotonic())

    def close(self) -> None:
        self._container.close()


def _reason(err: av.FFmpegError) -> str:
    return (getattr(err, "strerror", None) or str(err)).rstrip(".")
