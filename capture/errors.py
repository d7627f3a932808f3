"""Errors of the frame sources."""


class CaptureError(Exception):
    """A source could not be opened or read; the message is one sentence naming the source."""
