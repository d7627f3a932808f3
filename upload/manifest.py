"""The recording's manifest: the audit trail, written beside the video at start and at the end."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from upload.retry import Retrier
from upload.storage import StorageSettings, explain

SCHEMA = "classcap.manifest/1"
STATUSES = ("recording", "complete", "recovered", "failed")


def put_manifest(
    client, settings: StorageSettings, bucket: str, key: str, manifest: dict, tags: dict[str, str], retrier: Retrier | None = None
) -> None:
    if manifest.get("status") not in STATUSES:
        raise ValueError(f"manifest status must be one of {STATUSES}")
    body = json.dumps({"schema": SCHEMA, **manifest}, indent=2, sort_keys=True).encode()

    def once():
        try:
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ServerSideEncryption="AES256",
                Tagging="&".join(f"{k}={v}" for k, v in tags.items()),
            )
        except (ClientError, BotoCoreError) as err:
            raise explain(err, settings, bucket, "write the manifest") from err

    (retrier or Retrier(give_up_after_s=0)).call("write the manifest", once)


def get_manifest(client, bucket: str, key: str) -> dict:
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
