"""HTTP range requests answered from the bucket: the player's only way to the video.

One range per request (what a browser's `<video>` asks for); the bytes are read from storage in
CHUNK pieces and passed on as they come, so a reader holds at most one chunk, and nothing is
written anywhere.
"""

from __future__ import annotations

import re

CHUNK = 256 * 1024
MAX_RANGE = 8 * 1024 * 1024  # an open-ended range is answered with at most this much; the player asks again
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class BadRange(ValueError):
    """A Range header that cannot be answered (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte, inclusive, of a single `bytes=` range within `size` bytes; None: no
    Range header (the whole video). Raises BadRange for anything else."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or size <= 0:
        raise BadRange("only one bytes=FIRST-LAST range is served")
    first, last = match.groups()
    if not first and not last:
        raise BadRange("an empty range")
    if not first:  # the last N bytes
        n = int(last)
        if n == 0:
            raise BadRange("a suffix of zero bytes")
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else min(size - 1, start + MAX_RANGE - 1)
    if start >= size or end < start:
        raise BadRange("the range is outside the video")
    return start, min(end, size - 1)


def read_range(client, bucket: str, key: str, first: int, last: int):
    """The bytes first..last of the object, CHUNK at a time."""
    body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")["Body"]
    try:
        while chunk := body.read(CHUNK):
            yield chunk
    finally:
        body.close()
