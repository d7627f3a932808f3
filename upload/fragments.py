"""Cut the encoder's fragmented-MP4 byte stream into multipart parts that end on fragment boundaries.

The muxer writes `ftyp`, an empty `moov`, then `moof`+`mdat` pairs. A part may end only just
before a `moof`, so the parts that reached storage always form a file that plays to a clean end.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from upload.errors import UploadError
from upload.types import Part

# S3 refuses parts under 5 MiB except the last one.
MIN_PART_SIZE = 5 * 1024 * 1024


class FragmentBuffer:
    """A write-only, non-seekable file object for PyAV that hands out Parts through `on_part`.

    Memory: holds at most one part size plus one fragment before handing a part on.
    """

    def __init__(self, on_part: Callable[[Part], None], part_size: int = MIN_PART_SIZE):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part size must be at least {MIN_PART_SIZE} bytes (the S3 minimum)")
        self._on_part = on_part
        self.part_size = part_size
        self._buf = bytearray()
        self._scan = 0  # offset in _buf of the next top-level box header not yet parsed
        self._boundaries: list[int] = []  # offsets in _buf where a `moof` starts
        self._next_part = 1
        self.bytes_written = 0
        self.peak_bytes = 0
        self.closed = False

    # -- the file-object surface PyAV uses
    def write(self, data: bytes) -> int:
        self._buf += data
        self.bytes_written += len(data)
        self.peak_bytes = max(self.peak_bytes, len(self._buf))
        self._parse()
        self._emit_full_parts()
        return len(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """End of stream: whatever is left is the last part (it may be under the S3 minimum)."""
        if self.closed:
            return
        self.closed = True
        if self._scan != len(self._buf):
            raise UploadError("The encoder's output ended in the middle of an MP4 box; the video would not play.")
        self._hand_out(len(self._buf), last=True)

    # -- internals
    def _parse(self) -> None:
        while len(self._buf) - self._scan >= 8:
            size, kind = struct.unpack_from(">I4s", self._buf, self._scan)
            if size == 1:
                if len(self._buf) - self._scan < 16:
                    return
                size = struct.unpack_from(">Q", self._buf, self._scan + 8)[0]
            elif size == 0 or size < 8:
                raise UploadError(f"The encoder wrote an MP4 box of unsupported size {size}.")
            # Everything before a `moof` header is complete, even while the moof's body arrives.
            if kind == b"moof" and (not self._boundaries or self._boundaries[-1] != self._scan):
                self._boundaries.append(self._scan)
            if len(self._buf) - self._scan < size:
                return  # body still arriving
            self._scan += size

    def _emit_full_parts(self) -> None:
        # The first boundary at or past the part size keeps parts close to it.
        while True:
            end = next((b for b in self._boundaries if b >= self.part_size), None)
            if end is None:
                return
            self._hand_out(end, last=False)

    def _hand_out(self, end: int, last: bool) -> None:
        data = bytes(self._buf[:end])
        del self._buf[:end]
        self._scan -= end
        self._boundaries = [b - end for b in self._boundaries if b > end]
        if data or last:
            part = Part(self._next_part, data, last)
            self._next_part += 1
            self._on_part(part)
