"""One recording's video as one S3 multipart upload, aborted on any failure."""

from __future__ import annotations

import base64
import hashlib
import logging

from botocore.exceptions import BotoCoreError, ClientError

from upload.errors import UploadError
from upload.retry import Retrier
from upload.storage import StorageSettings, explain
from upload.types import Part

log = logging.getLogger(__name__)


class MultipartUpload:
    """`start()` opens the upload, `put(part)` sends a part, `complete()` makes the object visible.

    Used as a context manager: leaving it with an exception aborts the upload, so a failed
    recording never leaves a half object (or orphan parts) in the bucket.
    """

    def __init__(
        self, client, settings: StorageSettings, bucket: str, key: str, tags: dict[str, str], retrier: Retrier | None = None
    ):
        self._client = client
        self._settings = settings
        self._retrier = retrier or Retrier(give_up_after_s=0)
        self.bucket, self.key, self.tags = bucket, key, tags
        self.upload_id: str | None = None
        self._etags: dict[int, str] = {}
        self.bytes_sent = 0
        self._sha256 = hashlib.sha256()

    def __enter__(self) -> "MultipartUpload":
        self.start()
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self.abort()

    def start(self) -> None:
        tagging = "&".join(f"{k}={v}" for k, v in self.tags.items())
        response = self._call(
            "start the video upload",
            self._client.create_multipart_upload,
            Bucket=self.bucket,
            Key=self.key,
            ContentType="video/mp4",
            ServerSideEncryption="AES256",
            Tagging=tagging,
        )
        self.upload_id = response["UploadId"]

    def put(self, part: Part) -> None:
        if self.upload_id is None:
            raise UploadError("A part was sent before the video upload was started.")
        md5 = base64.b64encode(hashlib.md5(part.data).digest()).decode()
        response = self._call(
            f"upload part {part.number} of the video",
            self._client.upload_part,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=part.number,
            Body=part.data,
            ContentMD5=md5,
        )
        self._etags[part.number] = response["ETag"]
        self.bytes_sent += len(part.data)
        self._sha256.update(part.data)
        log.debug("part %d of %s uploaded (%d bytes, %d in all)", part.number, self.key, len(part.data), self.bytes_sent)

    def complete(self) -> None:
        parts = [{"PartNumber": n, "ETag": e} for n, e in sorted(self._etags.items())]
        try:
            self._call(
                "complete the video upload",
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
            log.debug("upload of %s completed from %d parts", self.key, len(parts))
        except UploadError as err:
            # A retried completion whose first try did land (only the answer was lost) finds the
            # upload gone: the object being there, at its full size, is the success it missed.
            if not (_code(err) == "NoSuchUpload" and self._object_size() == self.bytes_sent):
                raise
        self.upload_id = None

    def _object_size(self) -> int | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"]
        except (ClientError, BotoCoreError):
            return None

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def abort(self) -> None:
        if self.upload_id is None:
            return
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None
        except (ClientError, BotoCoreError) as err:
            # Nothing more can be done from here; `classcap storage recover` finds it later.
            log.error("could not abort the upload of %s: %s", self.key, err)

    def _call(self, action: str, method, **kwargs):
        def once():
            try:
                return method(**kwargs)
            except (ClientError, BotoCoreError) as err:
                raise explain(err, self._settings, self.bucket, action) from err

        return self._retrier.call(action, once)


def _code(err: UploadError) -> str:
    cause = err.__cause__
    return cause.response.get("Error", {}).get("Code", "") if isinstance(cause, ClientError) else ""
