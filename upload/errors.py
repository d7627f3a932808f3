"""Errors of the storage side. Messages are one sentence a technician can act on."""

from classcap.errors import ClasscapError


class UploadError(ClasscapError):
    """Base error of `upload/`: encoding, multipart upload, manifests, storage set-up."""


class StorageServerError(UploadError):
    """The embedded SeaweedFS server could not be started or stopped."""


class StorageUnreachable(UploadError, ConnectionError):
    """Storage stayed unreachable for longer than the retries wait."""
