"""IP cameras against real servers on loopback: HTTP MJPEG (http.server) and RTSP (GStreamer).

The RTSP server needs Debian's gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good and
python3-gi; without them these tests fail, saying so, rather than skip.
"""

import itertools
import logging
import socket
import time
from contextlib import closing
from fractions import Fraction

import av.logging
import numpy as np
import pytest

from capture.errors import CameraDisconnected, CaptureError
from capture.ipcam import CameraClock, IpCameraSource
from fixtures.camera_servers import (
    MjpegServer,
    RtspServer,
    classroom_frames,
    free_port,
    pattern_frames,
    rgb,
)

SERVERS = {"http": MjpegServer, "rtsp": RtspServer}
PATHS = {"http": "/video", "rtsp": "/cam"}
PASSWORD = "s3cret-PW"
CREDENTIALS_SENTENCE = (
    "The camera at 127.0.0.1 refused the station's credentials; check the user name and password in station.toml."
)


def take(source, n):
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == n:
            return frames


def with_credentials(url, user, password):
    scheme, rest = url.split("://")
    return f"{scheme}://{user}:{password}@{rest}"


@pytest.mark.parametrize("kind", SERVERS)
def test_reads_live_classroom_frames(kind):
    with SERVERS[kind]() as server, closing(IpCameraSource(server.url)) as camera:
        info = camera.info
        assert info.source_id == f"ip:127.0.0.1:{server.port}{PATHS[kind]}"
        assert (info.width, info.height, info.time_base, info.frames, info.live) == (1280, 720, Fraction(1, 90000), None, True)
        assert info.frame_rate and info.audio_rate is None
        frames = take(camera, 12)
    assert all(f.image.shape == (720, 1280, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.source_id == info.source_id and f.time_base == info.time_base for f in frames)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert all(b.captured_at >= a.captured_at for a, b in itertools.pairwise(frames))
    # The picture is the classroom's, in RGB order: close to one of the clip's frames.
    source = [rgb(data).astype(np.int16) for data in classroom_frames()]
    last = frames[-1].image.astype(np.int16)
    assert min(np.abs(last - s).mean() for s in source) < 6


def test_a_station_that_reads_slowly_keeps_the_cameras_spacing():
    """Frames that waited in the socket are stamped when the camera took them, not on arrival:
    a station busy with the lesson reads at 8 frames/s here, and the video still advances at the
    camera's 30 frames/s, so a gap later in the stream shows at its real length."""
    with RtspServer() as server, closing(IpCameraSource(server.url)) as camera:
        frames = []
        for frame in camera:
            frames.append(frame)
            if len(frames) == 16:
                break
            time.sleep(0.125)
    steps = sorted(float((b.pts - a.pts) * b.time_base) for a, b in itertools.pairwise(frames[4:]))
    assert steps[len(steps) // 2] < 0.06, steps  # 1/30 s apart, as the camera sent them
    assert all(f.captured_at <= time.monotonic() for f in frames)


def test_the_camera_clock_is_never_ahead_of_the_station_and_survives_a_restarted_camera():
    clock, tb = CameraClock(), Fraction(1, 90000)
    assert clock.place(9000, tb, now=100.0) == 100.0  # anchored at the first frame
    # three frames 1/30 s apart that arrive together: their spacing is the camera's
    assert [clock.place(9000 + k * 3000, tb, now=100.5) for k in (1, 2, 3)] == pytest.approx([100 + k / 30 for k in (1, 2, 3)])
    assert clock.place(9000 + 90000, tb, now=100.6) == 100.6  # would be in the future: re-anchored
    assert clock.place(12000, tb, now=100.7) == 100.7  # the camera's clock went back: re-anchored
    assert clock.place(12000 + 3000, tb, now=101.0) == pytest.approx(100.7 + 1 / 30)
    assert clock.place(None, None, now=102.0) == 102.0  # no timestamp: the arrival


@pytest.mark.parametrize("kind", SERVERS)
def test_wrong_credentials_are_named_without_the_password(kind, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    level = av.logging.get_level()
    av.logging.set_level(av.logging.VERBOSE)  # FFmpeg's own log lines must not carry it either
    try:
        with SERVERS[kind](pattern_frames(), auth=("teacher", PASSWORD)) as server:
            for url in (with_credentials(server.url, "teacher", "wrong-" + PASSWORD), server.url):
                with pytest.raises(CaptureError) as caught:
                    IpCameraSource(url, timeout_s=2)
                assert str(caught.value) == CREDENTIALS_SENTENCE
                assert caught.value.__cause__ is None and caught.value.__suppress_context__
            with closing(IpCameraSource(with_credentials(server.url, "teacher", PASSWORD) + "?token=" + PASSWORD)) as camera:
                assert camera.host == "127.0.0.1"
                assert camera.info.source_id == f"ip:127.0.0.1:{server.port}{PATHS[kind]}"
                assert take(camera, 3)[-1].source_id == camera.info.source_id
    finally:
        av.logging.set_level(level)
    out, err = capfd.readouterr()
    assert PASSWORD not in out + err + caplog.text


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_closed_port_cannot_be_reached(scheme):
    started = time.monotonic()
    with pytest.raises(CaptureError, match=r"^Cannot reach the camera at 127\.0\.0\.1 \(Connection refused\)\.$") as caught:
        IpCameraSource(f"{scheme}://teacher:{PASSWORD}@127.0.0.1:{free_port()}/video", timeout_s=2)
    assert time.monotonic() - started < 2
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_silent_server_cannot_be_reached_within_the_timeout(scheme):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(CaptureError, match=r"^Cannot reach the camera at 127\.0\.0\.1 \(no answer within 1 s\)\.$"):
            IpCameraSource(f"{scheme}://127.0.0.1:{silent.getsockname()[1]}/video", timeout_s=1)
        assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("kind", SERVERS)
def test_server_stopped_mid_stream_disconnects_and_comes_back(kind):
    timeout_s = 2.0
    with SERVERS[kind](pattern_frames()) as server:
        url, port = server.url, server.port
        with closing(IpCameraSource(url, timeout_s=timeout_s)) as camera:
            frames = iter(camera)
            take(frames, 10)
            stopped = time.monotonic()
            server.stop()
            with pytest.raises(CameraDisconnected, match=r"^The camera at 127\.0\.0\.1 stopped sending video after \d+ frames"):
                take(frames, 1000)
            assert time.monotonic() - stopped < timeout_s + 2
            camera.close()  # idempotent

        server.start()  # the camera comes back on the same address
        assert (server.url, server.port) == (url, port)
        with closing(IpCameraSource(url, timeout_s=timeout_s)) as camera:
            assert len(take(camera, 10)) == 10


@pytest.mark.parametrize("kind", SERVERS)
def test_frozen_camera_disconnects_after_the_timeout(kind):
    timeout_s = 2.0
    with SERVERS[kind](pattern_frames()) as server, closing(IpCameraSource(server.url, timeout_s=timeout_s)) as camera:
        frames = iter(camera)
        take(frames, 10)
        frozen = time.monotonic()
        server.freeze()  # connections stay open, nothing more arrives
        with pytest.raises(CameraDisconnected, match=r"\(no answer within 2 s\)\.$"):
            take(frames, 1000)
        assert timeout_s - 0.5 < time.monotonic() - frozen < timeout_s + 2
