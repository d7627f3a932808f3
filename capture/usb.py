"""USB cameras: found through sysfs, read with OpenCV's V4L2 backend, frames kept in memory."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2

from capture.errors import CameraDisconnected, CaptureError
from capture.source import SourceBase
from capture.types import Frame, SourceInfo

TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class UsbCamera:
    device: str  # "/dev/video0"
    vendor: str  # idVendor, 4 lowercase hex digits: "046d"
    product: str  # idProduct: "0825"
    serial: str | None  # many cheap webcams have none
    name: str  # the V4L2 name: "UVC Camera (046d:0825)"
    bus_path: str  # the USB port chain: "1-1.2"

    @property
    def camera_id(self) -> str:
        """Stable across reboots and ports when the camera has a serial: "usb:046d:0825:SERIAL"."""
        base = f"usb:{self.vendor}:{self.product}"
        return f"{base}:{self.serial}" if self.serial else base


def list_usb_cameras(sysfs: str | Path = "/sys", dev: str | Path = "/dev") -> list[UsbCamera]:
    """The attached USB cameras, one per camera (its capture node), in device-number order."""
    nodes = Path(sysfs) / "class" / "video4linux"  # absent: no video devices at all
    root = Path(sysfs).resolve()
    cameras = []
    for node in sorted(nodes.glob("video*"), key=_number):
        # UVC cameras have a second node for metadata; the capture node has index 0.
        if _read(node / "index") not in (None, "0"):
            continue
        usb = _usb_device(node.resolve(), root)
        if usb is None:  # not a USB device (a platform or PCI capture device)
            continue
        cameras.append(
            UsbCamera(
                device=str(Path(dev) / node.name),
                vendor=_read(usb / "idVendor").lower(),
                product=_read(usb / "idProduct").lower(),
                serial=_read(usb / "serial") or None,
                name=_read(node / "name") or node.name,
                bus_path=usb.name,
            )
        )
    return cameras


def find_usb_camera(spec: str, sysfs: str | Path = "/sys", dev: str | Path = "/dev") -> UsbCamera:
    """The camera named by a device path ("/dev/video0") or an id ("usb:046d:0825[:SERIAL]")."""
    cameras = list_usb_cameras(sysfs, dev)
    if spec.startswith("usb:"):
        parts = spec.split(":", 3)  # a serial may itself contain colons
        if len(parts) not in (3, 4):
            raise CaptureError(f"Camera {spec} is not a USB id of the form usb:VID:PID or usb:VID:PID:SERIAL.")
        wanted = parts[1:3]
        matches = [
            c
            for c in cameras
            if [c.vendor, c.product] == [p.lower() for p in wanted] and (len(parts) == 3 or c.serial == parts[3])
        ]
        what = f"No camera {spec} is attached"
    else:
        matches = [c for c in cameras if Path(c.device).resolve() == Path(spec).resolve()]
        what = f"No camera at {spec}"
    if not matches:
        raise CaptureError(f"{what}; {_attached(cameras)}.")
    if len(matches) > 1:
        devices = ", ".join(c.device for c in matches)
        raise CaptureError(f"Camera {spec} matches {len(matches)} cameras ({devices}); name one by serial or device path.")
    return matches[0]


class UsbSource(SourceBase):
    """Live frames from a USB camera at a fixed size, as RGB arrays in memory.

    Opening fails (CaptureError) when the camera is busy or cannot deliver the requested size;
    a camera that stops delivering frames (unplugged) raises CameraDisconnected from iteration.
    """

    def __init__(
        self,
        camera: UsbCamera,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        open_capture: Callable[[str, int], object] | None = None,
    ):
        self.camera = camera
        self._label = f"Camera {camera.device} ({camera.name})"
        self._capture = (open_capture or cv2.VideoCapture)(camera.device, cv2.CAP_V4L2)
        self._closed = False
        if not self._capture.isOpened():
            self.close()
            raise CaptureError(f"{self._label} could not be opened; is another program using it?")
        self._capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a stale queue
        actual = (round(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), round(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if actual != (width, height):
            self.close()
            raise CaptureError(f"{self._label} cannot deliver {width}×{height}; it offers {actual[0]}×{actual[1]}.")
        info = SourceInfo(
            source_id=camera.camera_id,
            width=width,
            height=height,
            time_base=TIME_BASE,
            frame_rate=Fraction(fps),
            frames=None,
            audio_rate=None,
            audio_layout=None,
            live=True,
        )
        super().__init__(info)

    def _items(self) -> Iterator[Frame]:
        t0 = None
        last_pts = -1
        delivered = 0
        while not self.stopping:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                if self._closed:  # closed from another thread to stop the capture
                    return
                self.close()
                if delivered == 0:
                    raise CameraDisconnected(f"{self._label} opened but delivered no frames.")
                raise CameraDisconnected(f"{self._label} stopped delivering frames after {delivered}; it was unplugged or failed.")
            t = time.monotonic()
            if t0 is None:
                t0 = t
            # Arrival time on a 90 kHz clock; two frames within one tick still get distinct pts.
            pts = max(round((t - t0) * 90000), last_pts + 1)
            last_pts = pts
            delivered += 1
            yield Frame(pts, TIME_BASE, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.info.source_id, t)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._capture.release()


def _usb_device(path: Path, root: Path) -> Path | None:
    """The nearest ancestor of a sysfs device path that is a USB device (has idVendor and idProduct)."""
    for parent in path.parents:
        if parent == root or root not in parent.parents:
            return None
        if (parent / "idVendor").is_file() and (parent / "idProduct").is_file():
            return parent
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _number(node: Path) -> int:
    match = re.search(r"\d+$", node.name)
    return int(match.group()) if match else -1


def _attached(cameras: list[UsbCamera]) -> str:
    if not cameras:
        return "none are attached"
    return "attached cameras: " + ", ".join(f"{c.device} ({c.name})" for c in cameras)
