"""What every frame source is: the `Source` contract, its state, and the health it reports.

A source is iterated once for its frames (and sound), can be told to stop from any thread, and
is closed at the end. While it runs it keeps a `SourceHealth`: its state (starting, running,
reconnecting, ended, failed) and what went wrong on the way (camera gaps, frames it could not
hand over in time, a microphone that stopped). The recording's manifest, the metrics and the
station page read that record; a source that wraps another (pacing, reconnecting, adding the
microphone) shares the health of the one it wraps, so nothing is forwarded by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from capture.types import AudioChunk, Frame, SourceInfo


class SourceState(str, Enum):
    STARTING = "starting"  # opened, no frame handed out yet
    RUNNING = "running"  # frames are flowing
    RECONNECTING = "reconnecting"  # the camera dropped out; waiting for it to come back
    ENDED = "ended"  # the stream is over: the end of a file, stop(), or a camera that never came back
    FAILED = "failed"  # the source raised; `SourceHealth.error` says why


@dataclass
class Gap:
    """A time the camera was away: UTC start and end (None: it never came back), and why."""

    started_at: str
    ended_at: str | None
    seconds: float
    reason: str


@dataclass
class SourceHealth:
    state: SourceState = SourceState.STARTING
    error: str | None = None  # why it failed
    gaps: list[Gap] = field(default_factory=list)  # each camera outage, in order
    skipped: int = 0  # frames the camera delivered that could not be handed over in time
    stopped_because: str | None = None  # the source ended the recording itself (camera gone too long)
    audio_error: str | None = None  # the microphone stopped; the video went on
    dropped_audio_chunks: int = 0  # microphone sound lost because nobody read it in time

    @property
    def reconnects(self) -> int:
        return sum(1 for gap in self.gaps if gap.ended_at is not None)

    @property
    def waiting_for_camera(self) -> bool:
        return self.state is SourceState.RECONNECTING


class Source(Protocol):
    info: SourceInfo
    health: SourceHealth

    def __iter__(self) -> Iterator[Frame | AudioChunk]: ...

    def stop(self) -> None:
        """End the stream soon, after what is already captured; callable from any thread."""

    def close(self) -> None:
        """Release the device or file; the iteration is over or abandoned."""


class SourceBase:
    """The state keeping every source shares. A subclass yields its items from `_items()`,
    checking `stopping` where it can end early; iterating keeps `health.state` true. A source
    that `wraps` another shares its health, and stopping it stops the one it wraps."""

    def __init__(self, info: SourceInfo, wraps: Source | None = None):
        self.info = info
        self._wraps = wraps
        self.health = wraps.health if wraps is not None else SourceHealth()
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
        if self._wraps is not None:
            self._wraps.stop()

    def _items(self) -> Iterator[Frame | AudioChunk]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame | AudioChunk]:
        health = self.health
        try:
            for item in self._items():
                if health.state is not SourceState.RUNNING and isinstance(item, Frame):
                    health.state = SourceState.RUNNING
                yield item
        except GeneratorExit:  # the reader went away: not a failure of the source
            health.state = SourceState.ENDED
            raise
        except BaseException as err:
            health.state, health.error = SourceState.FAILED, str(err) or type(err).__name__
            raise
        health.state = SourceState.ENDED

    def close(self) -> None:
        pass
