"""Any iterable of frames as a source: generated clips, test patterns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from capture.source import SourceBase
from capture.types import AudioChunk, Frame, SourceInfo


class IterableSource(SourceBase):
    def __init__(self, info: SourceInfo, items: Iterable[Frame | AudioChunk], on_close: Callable[[], None] | None = None):
        super().__init__(info)
        self._given = items
        self._on_close = on_close

    def _items(self) -> Iterator[Frame | AudioChunk]:
        for item in self._given:
            if self.stopping:
                return
            yield item

    def close(self) -> None:
        if self._on_close:
            self._on_close()
