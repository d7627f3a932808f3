"""USB cameras, without a camera: recorded sysfs trees and a fake OpenCV capture."""

from fractions import Fraction
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from capture import usb
from capture.errors import CameraDisconnected, CaptureError
from capture.types import SourceInfo
from capture.usb import UsbCamera, UsbSource, find_usb_camera, list_usb_cameras

from sysfs_tree import XHCI, sysfs, usb_device, video_node  # noqa: F401  (sysfs is a fixture)


FRONT = UsbCamera("/dev/video0", "046d", "0825", "A1B2C3D4", "UVC Camera (046d:0825)", "1-1.2")
LAPTOP = UsbCamera("/dev/video2", "04f2", "b6d9", None, "Integrated Camera: Integrated C", "3-6")
BACK = UsbCamera("/dev/video10", "046d", "0825", "9F8E7D6C", "UVC Camera (046d:0825)", "1-1.3")


# Enumeration


def test_lists_one_capture_node_per_usb_camera_in_device_number_order(sysfs):
    # Metadata nodes (video1, 3, 11) and the platform device (video4) are left out; video10 sorts after video2.
    assert list_usb_cameras(sysfs) == [FRONT, LAPTOP, BACK]


def test_camera_id_carries_the_serial_when_there_is_one():
    assert FRONT.camera_id == "usb:046d:0825:A1B2C3D4"
    assert LAPTOP.camera_id == "usb:04f2:b6d9"


def test_device_paths_are_under_the_given_dev_directory(sysfs, tmp_path):
    devices = [c.device for c in list_usb_cameras(sysfs, dev=tmp_path / "dev")]
    assert devices == [str(tmp_path / "dev" / n) for n in ("video0", "video2", "video10")]


def test_a_node_without_an_index_file_is_kept(tmp_path):
    # Kernels before 4.x had no index file; each node was then a capture node.
    root = tmp_path / "sys"
    usb_device(root, f"{XHCI}/usb2/2-1", "0c45", "6366")
    video_node(root, f"{XHCI}/usb2/2-1/2-1:1.0", "video0", "USB 2.0 Camera", index=None)
    assert list_usb_cameras(root) == [UsbCamera("/dev/video0", "0c45", "6366", None, "USB 2.0 Camera", "2-1")]


def test_no_video4linux_class_means_no_cameras(tmp_path):
    (tmp_path / "sys" / "class").mkdir(parents=True)
    assert list_usb_cameras(tmp_path / "sys") == []


# Finding one camera


def test_finds_a_camera_by_device_path(sysfs):
    assert find_usb_camera("/dev/video10", sysfs) == BACK


def test_finds_a_camera_by_id_with_serial(sysfs):
    assert find_usb_camera("usb:046d:0825:9F8E7D6C", sysfs) == BACK
    assert find_usb_camera("usb:046d:0825:A1B2C3D4", sysfs) == FRONT


def test_finds_a_camera_without_serial_by_vendor_and_product(sysfs):
    assert find_usb_camera("usb:04f2:b6d9", sysfs) == LAPTOP
    assert find_usb_camera("usb:04F2:B6D9", sysfs) == LAPTOP  # hex case does not matter


def test_two_identical_models_need_the_serial(sysfs):
    with pytest.raises(CaptureError) as caught:
        find_usb_camera("usb:046d:0825", sysfs)
    assert str(caught.value) == (
        "Camera usb:046d:0825 matches 2 cameras (/dev/video0, /dev/video10); name one by serial or device path."
    )


def test_a_missing_device_path_names_the_attached_cameras(sysfs):
    with pytest.raises(CaptureError) as caught:
        find_usb_camera("/dev/video3", sysfs)  # the laptop camera's metadata node is not a camera
    assert str(caught.value) == (
        "No camera at /dev/video3; attached cameras: /dev/video0 (UVC Camera (046d:0825)), "
        "/dev/video2 (Integrated Camera: Integrated C), /dev/video10 (UVC Camera (046d:0825))."
    )


def test_a_missing_id_when_none_are_attached(tmp_path):
    with pytest.raises(CaptureError) as caught:
        find_usb_camera("usb:046d:0825:A1B2C3D4", tmp_path / "sys")
    assert str(caught.value) == "No camera usb:046d:0825:A1B2C3D4 is attached; none are attached."


def test_a_wrong_serial_is_not_found(sysfs):
    with pytest.raises(CaptureError, match=r"^No camera usb:046d:0825:FFFFFFFF is attached; attached cameras: "):
        find_usb_camera("usb:046d:0825:FFFFFFFF", sysfs)


# Reading frames, through a fake cv2.VideoCapture


class FakeCapture:
    """Has the methods UsbSource uses; offers one frame size and plays the given BGR frames, then fails."""

    def __init__(self, frames=(), offers=(64, 48), opened=True):
        self.frames = list(frames)
        self.offers = offers
        self.opened = opened
        self.props = {}
        self.released = 0
        self.opened_with = None

    def open(self, device, api):
        self.opened_with = (device, api)
        return self

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        sizes = {cv2.CAP_PROP_FRAME_WIDTH: self.offers[0], cv2.CAP_PROP_FRAME_HEIGHT: self.offers[1]}
        return float(sizes.get(prop, self.props.get(prop, 0)))

    def read(self):
        if self.frames and not self.released:
            return True, self.frames.pop(0)
        return False, None  # what OpenCV returns when the device is gone

    def release(self):
        self.released += 1


def bgr(n=1, width=64, height=48):
    return [np.full((height, width, 3), i, np.uint8) for i in range(n)]


def source(fake, width=64, height=48):
    return UsbSource(FRONT, width=width, height=height, fps=30, open_capture=fake.open)


def test_opens_the_device_with_v4l2_asking_for_mjpg_size_rate_and_a_one_frame_buffer():
    fake = FakeCapture(offers=(1280, 720))
    camera = UsbSource(FRONT, open_capture=fake.open)
    assert fake.opened_with == ("/dev/video0", cv2.CAP_V4L2)
    assert fake.props == {
        cv2.CAP_PROP_FOURCC: cv2.VideoWriter_fourcc(*"MJPG"),
        cv2.CAP_PROP_FRAME_WIDTH: 1280,
        cv2.CAP_PROP_FRAME_HEIGHT: 720,
        cv2.CAP_PROP_FPS: 30,
        cv2.CAP_PROP_BUFFERSIZE: 1,
    }
    assert camera.info == SourceInfo(
        "usb:046d:0825:A1B2C3D4", 1280, 720, Fraction(1, 90000), Fraction(30), None, None, None, live=True
    )
    assert fake.released == 0


def test_frames_are_converted_from_bgr_to_rgb():
    image = np.zeros((48, 64, 3), np.uint8)
    image[5, 7] = (10, 20, 30)  # blue, green, red as OpenCV delivers them
    frame = next(iter(source(FakeCapture([image]))))
    assert frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3)
    assert tuple(frame.image[5, 7]) == (30, 20, 10)
    assert frame.source_id == "usb:046d:0825:A1B2C3D4" and frame.time_base == Fraction(1, 90000)


def test_a_camera_that_cannot_deliver_the_size_is_refused_and_released():
    fake = FakeCapture(offers=(640, 480))
    with pytest.raises(CaptureError) as caught:
        source(fake, width=1280, height=720)
    assert str(caught.value) == "Camera /dev/video0 (UVC Camera (046d:0825)) cannot deliver 1280×720; it offers 640×480."
    assert fake.released == 1


def test_a_camera_that_cannot_be_opened_is_a_capture_error_not_a_disconnect():
    with pytest.raises(CaptureError) as caught:
        source(FakeCapture(opened=False))
    assert not isinstance(caught.value, CameraDisconnected)
    assert str(caught.value) == (
        "Camera /dev/video0 (UVC Camera (046d:0825)) could not be opened; is another program using it?"
    )


def test_unplugging_mid_stream_raises_camera_disconnected_after_the_delivered_frames():
    fake = FakeCapture(bgr(3))
    stream = iter(source(fake))
    assert [int(next(stream).image[0, 0, 0]) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(CameraDisconnected, match=r"^Camera /dev/video0 \(UVC Camera \(046d:0825\)\) stopped"):
        next(stream)
    assert fake.released == 1


def test_a_camera_that_delivers_nothing_raises_camera_disconnected():
    with pytest.raises(CameraDisconnected, match="/dev/video0"):
        next(iter(source(FakeCapture([]))))


def test_pts_follow_arrival_on_a_90khz_clock_and_strictly_increase(monkeypatch):
    arrivals = [100.0, 100.1, 100.1, 100.2, 100.2000001]  # two pairs arrive within one tick
    monkeypatch.setattr(usb, "time", SimpleNamespace(monotonic=iter(arrivals).__next__))
    frames = list(zip(range(5), source(FakeCapture(bgr(5)))))
    assert [f.pts for _, f in frames] == [0, 9000, 9001, 18000, 18001]
    assert [f.captured_at for _, f in frames] == arrivals


def test_close_releases_once_and_ends_iteration_quietly():
    fake = FakeCapture(bgr(3))
    camera = source(fake)
    frames = iter(camera)
    next(frames)
    camera.close()  # as a stopping pipeline does from another thread
    camera.close()
    assert fake.released == 1
    assert list(frames) == []  # not CameraDisconnected: nobody unplugged anything
