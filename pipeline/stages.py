"""Bounded queues and owned threads: the machinery the composition root wires stages with."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from enum import Enum


class EndOfStream:
    """The sentinel that follows a source's last item down every queue."""

    def __repr__(self) -> str:
        return "END"


END = EndOfStream()


class Stopped(Exception):
    """Raised inside a stage when the supervisor has asked every stage to stop."""


class Backpressure(Enum):
    WAIT = "wait"  # files: the source waits for room; nothing is ever dropped
    DROP_OLDEST = "drop_oldest"  # live cameras: the oldest raw frame goes, and is counted


class BoundedQueue:
    """A queue with a fixed capacity that records its high-water mark and any drops."""

    def __init__(self, name: str, maxsize: int, stop: threading.Event):
        if maxsize < 1:
            raise ValueError(f"queue {name} needs room for at least one item")
        self.name = name
        self.maxsize = maxsize
        self._q: queue.Queue = queue.Queue(maxsize)
        self._stop = stop
        self.high_water = 0
        self.dropped = 0
        self.dropped_by_kind: Counter = Counter()  # what was dropped: frames and audio apart

    def put(self, item, policy: Backpressure = Backpressure.WAIT) -> None:
        while True:
            if self._stop.is_set():
                raise Stopped(self.name)
            try:
                self._q.put(item, timeout=0.1)
                break
            except queue.Full:
                if policy is Backpressure.DROP_OLDEST and item is not END:
                    try:
                        oldest = self._q.get_nowait()
                        self.dropped += 1
                        self.dropped_by_kind[type(oldest).__name__] += 1
                    except queue.Empty:
                        pass
        self.high_water = max(self.high_water, self._q.qsize())

    def get(self):
        while True:
            if self._stop.is_set():
                raise Stopped(self.name)
            try:
                return self._q.get(timeout=0.1)
            except queue.Empty:
                continue

    def qsize(self) -> int:
        return self._q.qsize()


class Supervisor:
    """Owns the stage threads: starts them, stops them all when one fails, re-raises its error.

    Two ways to end: `cancel()` (or a stage's error) stops every stage where it is; `finish()`
    ends the stream cleanly, by calling what `on_finish` registered (the recording registers
    its source's `stop`), so what was captured flows through every stage to the end.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.finishing = threading.Event()
        self._on_finish: list[Callable[[], None]] = []
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def on_finish(self, do: Callable[[], None]) -> None:
        self._on_finish.append(do)

    def finish(self) -> None:
        """End the stream cleanly (any thread; the first call acts, later ones do nothing)."""
        with self._lock:
            if self.finishing.is_set():
                return
            self.finishing.set()
        for do in self._on_finish:
            do()

    def queue(self, name: str, maxsize: int) -> BoundedQueue:
        return BoundedQueue(name, maxsize, self.stop)

    def spawn(self, name: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except Stopped:
                pass  # asked to stop because another stage failed; that stage's error is the one raised
            except BaseException as err:  # noqa: BLE001 - recorded and re-raised by run()
                with self._lock:
                    self._errors.append(err)
                self.stop.set()

        thread = threading.Thread(target=run, name=f"classcap-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def cancel(self) -> None:
        self.stop.set()

    def join(self) -> None:
        """Wait for every stage; raise the first error any of them hit."""
        try:
            for thread in self._threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
        except BaseException:
            self.stop.set()  # Ctrl-C while waiting: stop the stages, then let it propagate
            for thread in self._threads:
                thread.join(timeout=10)
            raise
        if self._errors:
            raise self._errors[0]
