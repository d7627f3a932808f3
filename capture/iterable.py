"""Any iterable of frames as a source: generated clips, test patterns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from capture.types import AudioChunk, Frame, SourceInfo


class IterableSource:
    def __init__(self, info: SourceInfo, items: Iterable[Frame | AudioChunk], on_close: Callable[[], None] | None = None):
        self.info = info
        self._items = items
        self._on_close = on_close

    def __iter__(self) -> Iterator[Frame | AudioChunk]:
        return iter(self._items)

    def close(self) -> None:
        if self._on_close:
            self._on_close()
