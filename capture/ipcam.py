"""An IP camera as a live frame source: RTSP (over TCP) or HTTP MJPEG, decoded in memory by PyAV.

Every network wait is bounded by `timeout_s`, twice over: FFmpeg's socket I/O timeout (the
``timeout`` option of the rtsp and http protocols, in microseconds) and PyAV's interrupt
callback. So a camera that cannot be reached fails the open, and one that stops delivering
(powered off, cable cut, server gone) ends the iteration with `CameraDisconnected` within about
`timeout_s`, never a hang.

Credentials in the URL are passed to FFmpeg and nowhere else: messages, `source_id` and logs
name the camera by host (and port and path), and FFmpeg's own errors, which quote the whole URL,
are not chained onto ours.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import urlsplit

import av
from av.codec.context import Flags2

from capture.errors import CameraDisconnected, CaptureError
from capture.source import SourceBase
from capture.types import Frame, SourceInfo

TIME_BASE = Fraction(1, 90000)
_UNREACHABLE = {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET, errno.EIO}


class CameraClock:
    """Places a camera's frames on the station's monotonic clock by the camera's own timestamps.

    A station that reads more slowly than the camera sends (its CPU busy with the lesson) finds
    frames waiting in the socket; stamped on arrival they would crowd together, and the end of a
    stream would seem to come seconds after the camera went away. Stamped by the camera's clock
    they keep their spacing, and the time a camera was away shows whole in the video. The clock
    is anchored at the first frame and moved to the present whenever the camera's time would
    put a frame in the future or before the one before it (a camera that restarted its clock).
    """

    def __init__(self):
        self._anchor: tuple[float, float] | None = None  # (station time, camera seconds)
        self._last = float("-inf")

    def place(self, pts: int | None, time_base: Fraction | None, now: float) -> float:
        if pts is None or not time_base:
            return now
        camera_s = float(pts * time_base)
        if self._anchor is not None:
            at = self._anchor[0] + camera_s - self._anchor[1]
            if self._last <= at <= now:
                self._last = at
                return at
        self._anchor, self._last = (now, camera_s), now
        return now


class IpCameraSource(SourceBase):
    """Opens `url` (rtsp://, http:// or https:// multipart MJPEG) and yields its frames as RGB."""

    def __init__(self, url: str, timeout_s: float = 5.0):
        self._container = None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts = port = None
        if not parts or parts.scheme.lower() not in ("rtsp", "http", "https") or not parts.hostname:
            raise CaptureError("A camera URL must look like rtsp://HOST/path or http://HOST/path.")
        self.host = parts.hostname
        netloc = (f"[{self.host}]" if ":" in self.host else self.host) + (f":{port}" if port else "")
        self.source_id = f"ip:{netloc}{parts.path}"  # no user, password or query string
        self.timeout_s = timeout_s
        # nobuffer: start from the newest frame, not from the second or so read while probing
        options = {"timeout": str(int(timeout_s * 1_000_000)), "fflags": "nobuffer"}
        if parts.scheme.lower() == "rtsp":
            format_name, options["rtsp_transport"] = None, "tcp"
        else:
            format_name = "mpjpeg"
        # RTP carries the camera's capture times; FFmpeg's MJPEG demuxer only counts frames
        self._camera_timed = format_name is None
        started = time.monotonic()
        try:
            self._container = av.open(url, format=format_name, options=options, timeout=timeout_s)
        except av.FFmpegError as err:
            timed_out = time.monotonic() - started >= timeout_s
            raise self._open_error(err, timed_out) from None  # FFmpeg's message quotes the URL, password and all
        video = self._container.streams.video
        cc = video[0].codec_context if video else None
        if not cc or not cc.width or not cc.height:
            self.close()
            raise CaptureError(f"The camera at {self.host} sent no video at {parts.path or '/'}; check the URL in station.toml.")
        self._video = video[0]
        # FFmpeg's RTSP demuxer can hand over a frame's H.264 slices as separate packets (seen
        # with GStreamer servers and multi-slice encoders); "chunks" lets the decoder join them.
        self._video.codec_context.flags2 |= Flags2.chunks
        info = SourceInfo(
            source_id=self.source_id,
            width=cc.width,
            height=cc.height,
            time_base=TIME_BASE,
            frame_rate=self._video.average_rate or Fraction(30),
            frames=None,
            audio_rate=None,
            audio_layout=None,
            live=True,
        )
        super().__init__(info)

    def _items(self) -> Iterator[Frame]:
        if self._container is None:
            raise CaptureError(f"The camera at {self.host} was closed.")
        t0, last_pts, delivered = None, -1, 0
        clock = CameraClock() if self._camera_timed else None
        try:
            asked = time.monotonic()
            for packet in self._container.demux(self._video):
                if self.stopping:
                    return
                # A read that timed out may first hand back the frame FFmpeg's parser still held,
                # and wait a second `timeout_s` before failing: the wait itself is the verdict.
                if time.monotonic() - asked >= self.timeout_s:
                    raise self._gone(delivered, f"no answer within {self.timeout_s:g} s")
                for frame in packet.decode():
                    now = time.monotonic()
                    at = clock.place(frame.pts, frame.time_base, now) if clock else now
                    t0 = at if t0 is None else t0
                    last_pts = max(last_pts + 1, round((at - t0) * 90000))
                    delivered += 1
                    yield Frame(last_pts, TIME_BASE, frame.to_ndarray(format="rgb24"), self.source_id, at)
                asked = time.monotonic()
        except av.FFmpegError as err:
            raise self._gone(delivered, _reason(err, self.timeout_s)) from None
        raise self._gone(delivered, "the stream ended")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _gone(self, delivered: int, reason: str) -> CameraDisconnected:
        return CameraDisconnected(f"The camera at {self.host} stopped sending video after {delivered} frames ({reason}).")

    def _open_error(self, err: av.FFmpegError, timed_out: bool) -> CaptureError:
        if isinstance(err, av.HTTPUnauthorizedError):
            return CaptureError(
                f"The camera at {self.host} refused the station's credentials; check the user name and password in station.toml."
            )
        if timed_out:
            err = av.TimeoutError(errno.ETIMEDOUT, "")  # rtsp reports a silent server as invalid data
        if isinstance(err, (av.ExitError, av.TimeoutError)) or err.errno in _UNREACHABLE:
            resolves = err.errno != errno.EIO or _resolves(self.host)  # FFmpeg reports a failed lookup as EIO
            return CaptureError(
                f"Cannot reach the camera at {self.host} ({_reason(err, self.timeout_s) if resolves else 'its name does not resolve'})."
            )
        return CaptureError(
            f"The camera at {self.host} did not send a video stream ({_reason(err, self.timeout_s)}); check the URL in station.toml."
        )


def _reason(err: av.FFmpegError, timeout_s: float) -> str:
    if isinstance(err, (av.ExitError, av.TimeoutError)):
        return f"no answer within {timeout_s:g} s"
    return (err.strerror or type(err).__name__).rstrip(".")


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
        return True
    except OSError:
        return False
