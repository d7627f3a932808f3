"""What sources produce: frozen values, apart from the code that makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One video frame: RGB uint8 H×W×3, with its presentation time in `time_base` units."""

    pts: int
    time_base: Fraction
    image: np.ndarray = field(repr=False)
    source_id: str
    captured_at: float  # time.monotonic() when the source produced it, for latency figures


@dataclass(frozen=True)
class AudioChunk:
    """Planar float32 samples (channels × n), presentation time in `time_base` units."""

    pts: int
    time_base: Fraction
    samples: np.ndarray = field(repr=False)
    sample_rate: int
    layout: str


@dataclass(frozen=True)
class SourceInfo:
    source_id: str
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    frames: int | None  # declared frame count, when the container knows it
    audio_rate: int | None  # None: no audio
    audio_layout: str | None
    live: bool  # live sources drop the oldest raw frame under backpressure; files wait
