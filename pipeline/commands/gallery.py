"""`classcap gallery`: the exclusion gallery, kept as embeddings under pseudonymous ids.

Images given to `add` are read into memory, their one face is embedded, and the image is
dropped: only the embeddings and the id reach the bucket (encrypted). Never a photo, never a name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pipeline import settings
from pipeline.commands.common import config_option, print_result
from pipeline.config import ConfigError
from pipeline.enrolment import embed_enrolment
from pipeline.engine_factory import load_gallery
from upload.gallery_store import check_person_id, delete_person, put_person
from upload.storage import check_bucket, make_client


def _storage(args):
    station = settings.station_of(args)
    bucket = settings.bucket(station, getattr(args, "bucket", None))
    storage = settings.storage(station)
    client = make_client(storage)
    check_bucket(client, storage, bucket)
    return bucket, storage, client


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
