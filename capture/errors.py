"""Errors of the frame sources."""

from classcap.errors import ClasscapError


class CaptureError(ClasscapError):
    """A source could not be opened or read; the message is one sentence naming the source."""


class CameraDisconnected(CaptureError):
    """A live camera that was delivering frames stopped (unplugged, network lost, server gone).

    Raised from a source's iteration, never from opening it: a camera that cannot be opened at
    all is a plain CaptureError. Reconnecting sources catch this one and retry with backoff.
    """


class InputNotFound(CaptureError, FileNotFoundError):
    """The input file a command was given does not exist."""
