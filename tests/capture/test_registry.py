"""Only school-issued cameras: ids, matching by serial, host and MAC."""

import pytest

from capture.errors import CaptureError
from capture.registry import ApprovedCameras, parse_camera_id


def test_camera_ids_parse_and_print_canonically():
    assert str(parse_camera_id("USB:046D:0825:Ab12")) == "usb:046d:0825:Ab12"  # serials keep their case
    assert str(parse_camera_id("usb:046d:0825")) == "usb:046d:0825"
    assert str(parse_camera_id("ip:Cam-3.School.lan@00:1A:2B:3C:4D:5E")) == "ip:cam-3.school.lan@00:1a:2b:3c:4d:5e"
    for bad in ("webcam", "usb:46d:825", "ip:", "usb:046d"):
        with pytest.raises(CaptureError, match="is not a camera id"):
            parse_camera_id(bad)


def test_usb_cameras_match_by_serial_and_a_serial_less_entry_approves_the_model():
    registry = ApprovedCameras(["usb:046d:0825:SCHOOL01"])
    assert registry.approves_usb("046D", "0825", "SCHOOL01")
    assert not registry.approves_usb("046d", "0825", "HOME99"), "the same model bought privately is not approved"
    assert not registry.approves_usb("046d", "0826", "SCHOOL01")
    assert ApprovedCameras(["usb:046d:0825"]).approves_usb("046d", "0825", None)
    with pytest.raises(CaptureError, match=r"/dev/video2 \(usb:046d:0825:HOME99\) is not an approved school camera.*cameras approve usb:046d:0825:HOME99"):
        registry.check_usb("/dev/video2", "046d", "0825", "HOME99")


def test_ip_cameras_match_by_name_or_address_and_by_mac_when_one_is_given(tmp_path):
    arp = tmp_path / "arp"
    arp.write_text(
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "127.0.0.1        0x1         0x2         00:1a:2b:3c:4d:5e     *        eth0\n"
    )
    assert ApprovedCameras(["ip:127.0.0.1"]).approves_host("localhost")  # a name resolving to the address
    assert ApprovedCameras(["ip:localhost"]).approves_host("127.0.0.1")
    assert not ApprovedCameras(["ip:10.9.9.9"]).approves_host("127.0.0.1")
    assert ApprovedCameras(["ip:127.0.0.1@00:1a:2b:3c:4d:5e"]).approves_host("127.0.0.1", arp_table=arp)
    impostor = ApprovedCameras(["ip:127.0.0.1@00:1a:2b:3c:4d:ff"])
    assert not impostor.approves_host("127.0.0.1", arp_table=arp), "another device on the camera's address is refused"
    with pytest.raises(CaptureError, match="IP camera at 127.0.0.1 is not an approved school camera"):
        impostor.check_host("127.0.0.1", arp_table=arp)
