"""`classcap cameras list | approve ID | revoke ID`: the station's approved-camera registry.

The registry lives in the station config (`[cameras] approved = [...]`); approve and revoke
rewrite only that section.
"""

from __future__ import annotations

import os
from pathlib import Path

from capture.errors import CaptureError
from capture.registry import ApprovedCameras, parse_camera_id
from pipeline.commands.common import config_option, print_result
from pipeline.config import ConfigError
from pipeline.live import SYSFS_ROOT
from pipeline.station import load_station, save_approved_cameras


def _config_path(args) -> Path:
    path = args.config or os.environ.get("CLASSCAP_STATION_CONFIG")
    if not path:
        raise ConfigError("No station config given; pass --config station.toml or set CLASSCAP_STATION_CONFIG.")
    return Path(path)


def cameras_list(args) -> int:
    from capture.usb import list_usb_cameras

    path = args.config or os.environ.get("CLASSCAP_STATION_CONFIG")
    station = load_station(path)
    approved = ApprovedCameras(station.approved_cameras)
    attached = list_usb_cameras(sysfs=SYSFS_ROOT)
    rows = []
    for cam in attached:
        ok = approved.approves_usb(cam.vendor, cam.product, cam.serial)
        rows.append({"device": cam.device, "id": cam.camera_id, "name": cam.name, "attached": True, "approved": ok})
    attached_ids = {r["id"] for r in rows}
    for cam in approved.ids:
        if str(cam) not in attached_ids:
            where = "network camera" if cam.kind == "ip" else "not attached"
            rows.append({"device": where, "id": str(cam), "name": "", "attached": cam.kind == "ip", "approved": True})
    if not rows:
        print("No USB camera is attached and no camera is approved.")
    else:
        print(f"{'DEVICE':<16} {'APPROVED':<9} {'ID':<34} NAME")
        for r in rows:
            print(f"{r['device']:<16} {'yes' if r['approved'] else 'NO':<9} {r['id']:<34} {r['name']}")
    if any(not r["approved"] for r in rows):
        print("An unapproved camera cannot record; approve a school-issued one with `classcap cameras approve ID`.")
    print_result({"cameras": rows, "config": str(path) if path else None})
    return 0


def _resolve(spec: str) -> str:
    """A camera id from an id or a /dev/video path (looked up in sysfs)."""
    if spec.startswith("/dev/"):
        from capture.usb import find_usb_camera

        return find_usb_camera(spec, sysfs=SYSFS_ROOT).camera_id
    try:
        return str(parse_camera_id(spec))
    except CaptureError as err:
        raise ConfigError(str(err)) from err


def cameras_approve(args) -> int:
    path = _config_path(args)
    station = load_station(path) if path.exists() else None
    ids = [str(parse_camera_id(i)) for i in (station.approved_cameras if station else ())]
    new = _resolve(args.camera)
    if new in ids:
        print(f"{new} is already approved in {path}.")
    else:
        save_approved_cameras(path, [*ids, new])
        print(f"approved {new} in {path}.")
    print_result({"approved": [*ids, new] if new not in ids else ids, "config": str(path)})
    return 0


def cameras_revoke(args) -> int:
    path = _config_path(args)
    station = load_station(path)
    ids = [str(parse_camera_id(i)) for i in station.approved_cameras]
    gone = _resolve(args.camera)
    if gone not in ids:
        raise ConfigError(f"{gone} is not in the approved cameras of {path}; `classcap cameras list` shows them.")
    kept = [i for i in ids if i != gone]
    save_approved_cameras(path, kept)
    print(f"revoked {gone}: it can no longer record at this station.")
    print_result({"approved": kept, "config": str(path)})
    return 0


def add_parser(commands) -> None:
    cameras = commands.add_parser("cameras", help="which cameras are attached and which are approved school cameras")
    cameras_cmds = cameras.add_subparsers(dest="cameras_command", required=True, metavar="ACTION")
    cam_list = cameras_cmds.add_parser("list", help="attached USB cameras and the approved registry")
    cam_list.set_defaults(run=cameras_list)
    approve = cameras_cmds.add_parser("approve", help="approve a school-issued camera")
    approve.set_defaults(run=cameras_approve)
    revoke = cameras_cmds.add_parser("revoke", help="withdraw a camera's approval")
    revoke.set_defaults(run=cameras_revoke)
    for sub in (approve, revoke):
        sub.add_argument("camera", help="usb:VID:PID[:SERIAL], /dev/videoN, or ip:HOST[@MAC]")
    for sub in (cam_list, approve, revoke):
        config_option(sub)
