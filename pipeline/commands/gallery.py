"""`classcap gallery`: the exclusion gallery, kept as embeddings under pseudonymous ids.

Images given to `add` are read into memory, their one face is embedded, and the image is
dropped: only the embeddings and the id reach the bucket (encrypted). Never a photo, never a name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from blur.centerface import CenterFaceDetector
from blur.models import model_path
from pipeline import settings
from pipeline.commands.common import config_option, print_result
from pipeline.config import ConfigError
from pipeline.engine_factory import STRONG_MODEL, load_gallery
from upload.gallery_store import check_person_id, delete_person, put_person
from upload.storage import check_bucket, make_client

ENROL_MAX_SIDE = 1280  # larger photos are scaled down before looking for the face


def _storage(args):
    station = settings.station_of(args)
    bucket = settings.bucket(station, getattr(args, "bucket", None))
    storage = settings.storage(station)
    client = make_client(storage)
    check_bucket(client, storage, bucket)
    return bucket, storage, client


def read_face_image(path: Path) -> np.ndarray:
    """An RGB image from a file, held in memory only."""
    if not path.is_file():
        raise ConfigError(f"Image {path} does not exist.")
    image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f"{path} is not an image file classcap can read (use JPEG or PNG).")
    scale = ENROL_MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def embed_enrolment(paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (dlib, SFace) embedding pair per image; refuses images with no face or more than one."""
    from blur.identity import Enroller

    enroller = Enroller()
    embeddings = []
    for path in paths:
        image = read_face_image(path)
        detector = CenterFaceDetector(model_path(STRONG_MODEL), image.shape[1], image.shape[0], min_score=0.5)
        faces = [d for d in detector.detect(image) if d.box.width >= 20]
        detector.close()
        if not faces:
            raise ConfigError(f"{path} shows no face classcap can find; use a clear, front-facing photo of the person.")
        if len(faces) > 1:
            raise ConfigError(f"{path} shows {len(faces)} faces; use a photo of this one person only.")
        embeddings.append(enroller.embed(image, faces[0].box))
        del image  # the photo goes no further than this loop
    return embeddings


def gallery_add(args) -> int:
    from blur.identity import GalleryEntry, entry_bytes

    person_id = check_person_id(args.id)
    bucket, storage, client = _storage(args)
    pairs = embed_enrolment([Path(p) for p in args.images])
    embeddings, sface = [d for d, _ in pairs], [s for _, s in pairs]
    current = {e.person_id: e for e in load_gallery(client, storage, bucket).entries}
    if person_id in current:
        if current[person_id].role != args.role:
            raise ConfigError(
                f"{person_id} is already in the gallery as {current[person_id].role}; remove them first to change the role."
            )
        embeddings = list(current[person_id].matrix()) + embeddings
        sface = list(current[person_id].sface_matrix()) + sface
    entry = GalleryEntry(person_id, args.role, np.stack(embeddings), np.stack(sface))
    put_person(client, storage, bucket, person_id, entry_bytes(entry))
    gallery = load_gallery(client, storage, bucket)
    print(f"{person_id} ({args.role}) now has {len(embeddings)} face embedding(s); the photos were not kept.")
    print_result({"person_id": person_id, "role": args.role, "embeddings": len(embeddings),
                  "sface_embeddings": len(sface), "gallery_version": gallery.version})
    return 0


def gallery_list(args) -> int:
    from blur.identity import MIN_FACE_PX

    bucket, storage, client = _storage(args)
    gallery = load_gallery(client, storage, bucket)
    people = [{"person_id": e.person_id, "role": e.role, "embeddings": len(e.embeddings),
               "sface_embeddings": len(e.sface)} for e in gallery.entries]
    for p in sorted(people, key=lambda p: p["person_id"]):
        print(f"{p['person_id']:<24} {p['role']:<9} {p['embeddings']} embedding(s)")
    if not people:
        print(f"the gallery of bucket {bucket} is empty", file=sys.stderr)
    older = sorted(p["person_id"] for p in people if not p["sface_embeddings"])
    if older:
        print(f"{', '.join(older)} enrolled before classcap checked small faces with a second model: until "
              f"added again from a photo (`classcap gallery add`), faces under {MIN_FACE_PX} px wide stay blurred.",
              file=sys.stderr)
    print_result({"bucket": bucket, "gallery_version": gallery.version, "people": people})
    return 0


def gallery_remove(args) -> int:
    person_id = check_person_id(args.id)
    bucket, storage, client = _storage(args)
    if not delete_person(client, storage, bucket, person_id):
        raise ConfigError(f"{person_id} is not in the gallery of bucket {bucket}.")
    gallery = load_gallery(client, storage, bucket)
    print(f"{person_id} removed from the gallery; recordings made before keep their redaction.")
    print_result({"person_id": person_id, "removed": True, "gallery_version": gallery.version})
    return 0


def add_parser(commands) -> None:
    gallery = commands.add_parser("gallery", help="the exclusion gallery (embeddings under pseudonymous ids)")
    gallery_cmds = gallery.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")
    add = gallery_cmds.add_parser("add", help="enrol a person from one or more photos (the photos are not kept)")
    add.add_argument("--id", required=True, help="pseudonymous id (never a name)")
    add.add_argument("--role", required=True, choices=("excluded", "staff"))
    add.add_argument("images", nargs="+", metavar="IMAGE")
    add.set_defaults(run=gallery_add)
    listing = gallery_cmds.add_parser("list", help="who is in the gallery")
    listing.set_defaults(run=gallery_list)
    remove = gallery_cmds.add_parser("remove", help="take a person out of the gallery")
    remove.add_argument("--id", required=True)
    remove.set_defaults(run=gallery_remove)
    for sub in (add, listing, remove):
        sub.add_argument("--bucket", help="bucket whose gallery to use (default: $CLASSCAP_BUCKET or the station's)")
        config_option(sub)
