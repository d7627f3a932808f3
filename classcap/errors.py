"""The root of classcap's errors.

Every error classcap raises for a user to act on is a `ClasscapError`, with a message of one
sentence: `CaptureError` (sources), `PrivacyError` (the privacy engine), `UploadError` (storage)
and `ConfigError` (settings) derive from it, each in its own package. Where one of them means
what a built-in error means, it is that error too, as PyAV's are: a missing input file is a
`CaptureError` and a `FileNotFoundError`, storage that stays unreachable is an `UploadError` and
a `ConnectionError`, a setting out of range is a `ConfigError` and a `ValueError`. The command
line catches `ClasscapError` and prints its sentence; anything else is a bug and keeps its
traceback.
"""


class ClasscapError(Exception):
    """An error a user can act on; its message is one sentence that says what to do."""
