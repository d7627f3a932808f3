"""Every source keeps the `Source` contract: it says what state it is in (starting, running,
reconnecting, ended, failed), ends soon after `stop()` from another thread, and a source that
wraps another shares the health of the one it wraps."""

import importlib
import inspect
import pkgutil
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

import capture
from capture.errors import CameraDisconnected, CaptureError
from capture.file import FileSource
from capture.iterable import IterableSource
from capture.paced import PacedSource
from capture.reconnect import ReconnectingSource
from capture.source import Source, SourceBase, SourceState
from capture.testpattern import TestPattern
from capture.types import Frame, SourceInfo

INFO = SourceInfo("fake:cam", 32, 24, Fraction(1, 30), Fraction(30), None, None, None, True)


def frames(n, fail_with=None, fps=200.0):
    for i in range(n):
        time.sleep(1 / fps)
        yield Frame(i, Fraction(1, 30), np.zeros((24, 32, 3), np.uint8), "fake:cam", time.monotonic())
    if fail_with is not None:
        raise fail_with


def test_every_source_class_in_capture_keeps_the_contract():
    classes = []
    for info in pkgutil.walk_packages(capture.__path__, "capture."):
        module = importlib.import_module(info.name)
        classes += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                    if cls.__module__ == info.name and hasattr(cls, "__iter__") and hasattr(cls, "close")]
    names = {cls.__name__ for cls in classes}
    assert {"FileSource", "UsbSource", "IpCameraSource", "ReconnectingSource", "WithMicrophone", "PacedSource",
            "TestPattern", "IterableSource"} <= names
    assert [cls.__name__ for cls in classes if not issubclass(cls, SourceBase) and cls is not Source] == []


def test_a_source_is_starting_until_its_first_frame_running_then_ended():
    source = IterableSource(INFO, frames(3))
    assert source.health.state is SourceState.STARTING
    it = iter(source)
    next(it)
    assert source.health.state is SourceState.RUNNING
    assert len(list(it)) == 2
    assert source.health.state is SourceState.ENDED and source.health.error is None


def test_a_source_that_raises_is_failed_and_says_why():
    source = IterableSource(INFO, frames(2, fail_with=CaptureError("Input x.mp4 ends early.")))
    with pytest.raises(CaptureError):
        list(source)
    assert source.health.state is SourceState.FAILED
    assert source.health.error == "Input x.mp4 ends early."


def test_a_camera_that_drops_out_is_reconnecting_until_it_delivers_again():
    class Camera(IterableSource):
        def __init__(self, n):
            super().__init__(INFO, frames(n, fail_with=CameraDisconnected("Camera fake stopped.")))

    cameras = [Camera(5), CaptureError("not back yet"), CaptureError("not back yet"), Camera(5)]

    def reopen():
        step = cameras.pop(0) if cameras else CaptureError("not back")
        if isinstance(step, Exception):
            raise step
        return step

    source = ReconnectingSource(reopen, give_up_after_s=0.6, backoff_s=0.1)
    seen = []
    watching = threading.Event()

    def watch():
        while not watching.is_set():
            if not seen or seen[-1] is not source.health.state:
                seen.append(source.health.state)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert len(list(source)) == 10
    finally:
        watching.set()
        watcher.join()
    # starting, running, away, back, away for good (the camera never came back the second time)
    assert seen[:5] == [SourceState.STARTING, SourceState.RUNNING, SourceState.RECONNECTING, SourceState.RUNNING,
                        SourceState.RECONNECTING]
    assert source.health.state is SourceState.ENDED
    assert source.health.reconnects == 1 and len(source.health.gaps) == 2
    assert "did not come back" in source.health.stopped_because


@pytest.mark.parametrize("make", [
    lambda: TestPattern(64, 48),
    lambda: IterableSource(INFO, frames(10_000)),
], ids=["test pattern", "iterable"])
def test_stop_from_another_thread_ends_an_endless_source_after_what_it_holds(make):
    source = make()
    threading.Timer(0.2, source.stop).start()
    started = time.monotonic()
    count = sum(1 for _ in source)
    assert count > 0 and time.monotonic() - started < 2
    assert source.health.state is SourceState.ENDED


def test_stop_ends_a_file_at_its_next_packet_keeping_what_was_read(tmp_path):
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 4, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    source = FileSource(path)
    read = []
    for frame in source:
        read.append(frame)
        if len(read) == 10:
            source.stop()
    source.close()
    assert 10 <= len(read) < 20
    assert source.health.state is SourceState.ENDED


def test_a_wrapper_shares_the_health_of_the_source_it_wraps():
    inner = IterableSource(INFO, frames(30, fps=10_000))
    paced = PacedSource(inner)
    assert paced.health is inner.health
    list(paced)
    assert paced.health.state is SourceState.ENDED
    paced.stop()
    assert inner.stopping, "stopping the wrapper stops what it wraps"
