"""The approved-camera registry: only school-issued cameras may be opened.

A camera is named by an id:
- `usb:VID:PID:SERIAL` (vendor, product and serial from sysfs), or `usb:VID:PID` for a model
  that reports no serial (then every camera of that model is approved: say so to the school);
- `ip:HOST`, or `ip:HOST@MAC` to also require the camera's MAC address (read from the
  station's ARP table once connected, so a device that takes over the address is refused).

The registry itself is a list of such ids kept in the station config; `pipeline/` reads and
writes it. This module only decides.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from capture.errors import CaptureError

_USB = re.compile(r"^usb:([0-9a-f]{4}):([0-9a-f]{4})(?::(\S+))?$")
_IP = re.compile(r"^ip:([A-Za-z0-9.\-\[\]:]+?)(?:@((?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}))?$")


@dataclass(frozen=True)
class CameraId:
    kind: str  # "usb" | "ip"
    vendor: str | None = None
    product: str | None = None
    serial: str | None = None
    host: str | None = None
    mac: str | None = None

    def __str__(self) -> str:
        if self.kind == "usb":
            return f"usb:{self.vendor}:{self.product}" + (f":{self.serial}" if self.serial else "")
        return f"ip:{self.host}" + (f"@{self.mac}" if self.mac else "")


def parse_camera_id(text: str) -> CameraId:
    value = text.strip()
    if m := _USB.match(_lower_ids(value)):
        return CameraId("usb", vendor=m[1], product=m[2], serial=m[3])
    if m := _IP.match(value):
        return CameraId("ip", host=m[1].lower(), mac=m[2].lower() if m[2] else None)
    raise CaptureError(
        f"{text!r} is not a camera id; use usb:VENDOR:PRODUCT[:SERIAL] (see `classcap cameras list`) or ip:HOST[@MAC]."
    )


def _lower_ids(value: str) -> str:
    """Vendor and product ids are hex and case-free; a serial keeps its case."""
    parts = value.split(":", 3)
    if len(parts) >= 3 and parts[0].lower() == "usb":
        parts[:3] = [p.lower() for p in parts[:3]]
    return ":".join(parts)


class ApprovedCameras:
    def __init__(self, ids: list[str] | tuple[str, ...] = ()):
        self.ids = [parse_camera_id(i) for i in ids]

    def approves_usb(self, vendor: str, product: str, serial: str | None) -> bool:
        for cam in self.ids:
            if cam.kind == "usb" and (cam.vendor, cam.product) == (vendor.lower(), product.lower()):
                if cam.serial is None or cam.serial == serial:
                    return True
        return False

    def approves_host(self, host: str, arp_table: str | Path = "/proc/net/arp") -> bool:
        """Whether an IP camera at `host` is approved: by name or address, and by MAC if required."""
        names = {host.lower(), *_addresses(host)}
        for cam in self.ids:
            if cam.kind != "ip" or not (names & {cam.host, *_addresses(cam.host)}):
                continue
            if cam.mac is None or cam.mac in {_mac_of(a, arp_table) for a in _addresses(host)}:
                return True
        return False

    def check_usb(self, device: str, vendor: str, product: str, serial: str | None) -> None:
        if not self.approves_usb(vendor, product, serial):
            ident = f"usb:{vendor}:{product}" + (f":{serial}" if serial else "")
            raise CaptureError(
                f"Camera {device} ({ident}) is not an approved school camera; a technician can approve it with "
                f"`classcap cameras approve {ident}`."
            )

    def check_host(self, host: str, arp_table: str | Path = "/proc/net/arp") -> None:
        if not self.approves_host(host, arp_table):
            raise CaptureError(
                f"The IP camera at {host} is not an approved school camera; a technician can approve it with "
                f"`classcap cameras approve ip:{host}`."
            )


def _addresses(host: str | None) -> set[str]:
    if not host:
        return set()
    try:
        return {info[4][0] for info in socket.getaddrinfo(host.strip("[]"), None)}
    except (socket.gaierror, UnicodeError):
        return set()


def _mac_of(address: str, arp_table: str | Path) -> str | None:
    """The MAC the kernel has for `address` (the station has just talked to it), else None."""
    try:
        lines = Path(arp_table).read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[0] == address:
            return fields[3].lower()
    return None
