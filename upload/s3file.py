"""A stored object as a read-only, seekable file object: ranged GETs, a little read-ahead, in memory.

PyAV reads a recording through it directly from storage, so re-blurring never downloads a
file: at most `cache_chunks × chunk_size` bytes of the object are held at a time.
"""

from __future__ import annotations

import io
from collections import OrderedDict

from botocore.exceptions import BotoCoreError, ClientError

from upload.retry import Retrier
from upload.storage import StorageSettings, explain


class S3ObjectReader(io.RawIOBase):
    def __init__(
        self,
        client,
        settings: StorageSettings,
        bucket: str,
        key: str,
        chunk_size: int = 4 * 1024 * 1024,
        cache_chunks: int = 4,
        retrier: Retrier | None = None,
    ):
        super().__init__()
        self._client, self._settings = client, settings
        self.bucket, self.key = bucket, key
        self.chunk_size, self.cache_chunks = chunk_size, cache_chunks
        self._retrier = retrier or Retrier(give_up_after_s=120)
        head = self._call("read the recording's size", lambda: client.head_object(Bucket=bucket, Key=key))
        self.size = head["ContentLength"]
        self.etag = head.get("ETag")
        self._pos = 0
        self._chunks: OrderedDict[int, bytes] = OrderedDict()
        self.bytes_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            index, offset = divmod(self._pos, self.chunk_size)
            chunk = self._chunk(index)
            n = min(len(view) - done, len(chunk) - offset)
            view[done : done + n] = chunk[offset : offset + n]
            done += n
            self._pos += n
        return done

    def _chunk(self, index: int) -> bytes:
        if index in self._chunks:
            self._chunks.move_to_end(index)
            return self._chunks[index]
        start = index * self.chunk_size
        end = min(self.size, start + self.chunk_size) - 1
        data = self._call(
            f"read bytes {start}–{end} of {self.key}",
            lambda: self._client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end}", IfMatch=self.etag)[
                "Body"
            ].read(),
        )
        self.bytes_fetched += len(data)
        self._chunks[index] = data
        while len(self._chunks) > self.cache_chunks:
            self._chunks.popitem(last=False)
        return data

    def _call(self, action: str, fn):
        def once():
            try:
                return fn()
            except (ClientError, BotoCoreError) as err:
                raise explain(err, self._settings, self.bucket, action) from err

        return self._retrier.call(action, once)
