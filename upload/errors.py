"""Errors of the storage side. Messages are one sentence a technician can act on."""


class UploadError(Exception):
    """Base error of `upload/`: encoding, multipart upload, manifests, storage set-up."""


class StorageServerError(UploadError):
    """The embedded SeaweedFS server could not be started or stopped."""
