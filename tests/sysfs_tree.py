"""Recorded sysfs trees: a classroom station's cameras as the kernel shows them, for tests
that need USB cameras on a machine that has none."""

import os

import pytest

XHCI = "devices/pci0000:00/0000:00:14.0"


def usb_device(sysfs, path, vendor, product, serial=None):
    """A USB device directory as the kernel shows it (values newline-terminated, hex lowercase)."""
    directory = sysfs / path
    directory.mkdir(parents=True)
    (directory / "idVendor").write_text(f"{vendor}\n")
    (directory / "idProduct").write_text(f"{product}\n")
    (directory / "busnum").write_text(f"{directory.name.split('-')[0].removeprefix('usb')}\n")
    if serial is not None:
        (directory / "serial").write_text(f"{serial}\n")


def video_node(sysfs, parent, node, name, index=0):
    """A video4linux node under `parent`, and its /sys/class link, relative like the kernel's."""
    directory = sysfs / parent / "video4linux" / node
    directory.mkdir(parents=True)
    (directory / "name").write_text(f"{name}\n")
    if index is not None:
        (directory / "index").write_text(f"{index}\n")
    (directory / "dev").write_text(f"81:{node.removeprefix('video')}\n")
    (directory / "device").symlink_to(os.path.relpath(sysfs / parent, directory))
    link = sysfs / "class" / "video4linux" / node
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(directory, link.parent))  # ../../devices/pci0000:00/...


@pytest.fixture
def sysfs(tmp_path):
    """A classroom station: two identical webcams on a hub, a laptop camera without a serial,
    and the vivid test driver (a platform device, not USB)."""
    root = tmp_path / "sys"
    usb_device(root, f"{XHCI}/usb1", "1d6b", "0002", serial="0000:00:14.0")  # root hub
    usb_device(root, f"{XHCI}/usb1/1-1", "05e3", "0608")  # a 4-port hub
    usb_device(root, f"{XHCI}/usb1/1-1/1-1.2", "046d", "0825", serial="A1B2C3D4")
    video_node(root, f"{XHCI}/usb1/1-1/1-1.2/1-1.2:1.0", "video0", "UVC Camera (046d:0825)", index=0)
    video_node(root, f"{XHCI}/usb1/1-1/1-1.2/1-1.2:1.0", "video1", "UVC Camera (046d:0825)", index=1)
    usb_device(root, f"{XHCI}/usb3", "1d6b", "0003", serial="0000:00:14.0")
    usb_device(root, f"{XHCI}/usb3/3-6", "04f2", "b6d9")
    video_node(root, f"{XHCI}/usb3/3-6/3-6:1.0", "video2", "Integrated Camera: Integrated C", index=0)
    video_node(root, f"{XHCI}/usb3/3-6/3-6:1.0", "video3", "Integrated Camera: Integrated C", index=1)
    video_node(root, "devices/platform/vivid.0", "video4", "vivid-000-vid-cap", index=0)
    usb_device(root, f"{XHCI}/usb1/1-1/1-1.3", "046d", "0825", serial="9F8E7D6C")
    video_node(root, f"{XHCI}/usb1/1-1/1-1.3/1-1.3:1.0", "video10", "UVC Camera (046d:0825)", index=0)
    video_node(root, f"{XHCI}/usb1/1-1/1-1.3/1-1.3:1.0", "video11", "UVC Camera (046d:0825)", index=1)
    return root
