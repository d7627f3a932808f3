"""The exclusion gallery's objects in the bucket: one encrypted object per pseudonymous person.

Storage knows nothing of faces: it moves opaque bytes (the privacy engine's serialised
embeddings) under `gallery/people/ID.json`, always with server-side encryption.
"""

from __future__ import annotations

import re

from botocore.exceptions import BotoCoreError, ClientError

from upload.errors import UploadError
from upload.storage import StorageSettings, explain

PREFIX = "gallery/people/"
PERSON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_person_id(person_id: str) -> str:
    if not PERSON_ID.match(person_id):
        raise UploadError(
            f"{person_id!r} is not a usable pseudonymous id; use 1–64 letters, digits, '.', '_' or '-' (never a pupil's name)."
        )
    return person_id


def key_of(person_id: str) -> str:
    return f"{PREFIX}{check_person_id(person_id)}.json"


def put_person(client, settings: StorageSettings, bucket: str, person_id: str, data: bytes) -> None:
    try:
        client.put_object(
            Bucket=bucket, Key=key_of(person_id), Body=data, ContentType="application/json", ServerSideEncryption="AES256"
        )
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "write the gallery") from err


def delete_person(client, settings: StorageSettings, bucket: str, person_id: str) -> bool:
    """Removes a person; False when there was nobody under that id."""
    key = key_of(person_id)
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise explain(err, settings, bucket, "read the gallery") from err
    except BotoCoreError as err:
        raise explain(err, settings, bucket, "read the gallery") from err
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "change the gallery") from err
    return True


def read_people(client, settings: StorageSettings, bucket: str) -> dict[str, bytes]:
    """Every person's object in the gallery, by id (empty when the gallery is empty)."""
    people: dict[str, bytes] = {}
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.endswith(".json"):
                    continue
                person_id = key[len(PREFIX) : -len(".json")]
                people[person_id] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as err:
        raise explain(err, settings, bucket, "read the gallery") from err
    if any(not PERSON_ID.match(p) for p in people):
        raise UploadError(f"The gallery in bucket {bucket} holds an object with an unusable id; check gallery/people/.")
    return people
