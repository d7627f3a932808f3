"""What flows from the encoder to storage."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    """One multipart-upload part: whole fMP4 fragments (the first part also holds the header)."""

    number: int  # 1-based, as S3 numbers parts
    data: bytes = field(repr=False)
    last: bool = False
