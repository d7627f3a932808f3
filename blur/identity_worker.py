"""The identity worker: one separate process that embeds face chips and matches them to the gallery.

The ResNet pass (about 8 ms a face on onnxruntime; 100-150 ms in dlib's own build, which held
the GIL) never runs in the frame process: it cuts small aligned chips (`FaceEmbedder.chip`)
and hands them here, where chips that wait together are embedded in one pass. The process
is started with "spawn", never "fork": the parent runs MediaPipe and onnxruntime thread pools,
and a forked copy of their locks can deadlock.

Both queues are bounded: at most `max_pending` chips are in flight (submitted, result not yet
polled), so `submit` refuses instead of queueing without end, and the results can never exceed
that many either. A refused submit is the caller's backlog signal: keep the track blurred and
try again later. Not thread-safe: one thread (the privacy stage) owns a worker.

Any failure in the process (an exception, a crash, a kill) makes every later poll, wait or submit
raise PrivacyError: the caller fails closed and may start a new worker.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass

import numpy as np

from blur.errors import ModelError, PrivacyError
from blur.identity import CHIP_SIZE, FaceEmbedder, Gallery, IdentityMatch, model_hashes

START_TIMEOUT_S = 60.0  # a cold spawn imports numpy, OpenCV and dlib and loads 30 MB of models
STOP_TIMEOUT_S = 5.0
_TICK_S = 0.1  # how often a blocked wait looks at whether the process is still alive
# Chips waiting together are embedded in one pass of the network: 6.6 ms a chip in a batch
# against 8.2 ms one at a time (onnxruntime, one thread, here).
BATCH = 8


@dataclass(frozen=True)
class WorkerStats:
    """Time the worker spent per chip (ResNet + match), for metrics and the bench."""

    embedded: int
    embed_ms_mean: float
    embed_ms_max: float


def _serve(gallery: Gallery, requests, results, stop, niceness: int) -> None:
    """The worker process: load the models, then embed and match chips until told to stop."""
    os.nice(niceness)  # 0 leaves the priority as it is
    try:
        embedder = FaceEmbedder()
        embedder.embed_chip(np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.uint8))  # load the ResNet now
        hashes = model_hashes()
        second = None
        if gallery.uses_sface:  # without SFace embeddings in the gallery, SFace could change no answer
            from blur.models import model_hashes as file_hashes
            from blur.sface import SFACE, SFaceEmbedder

            second = SFaceEmbedder()
            hashes |= file_hashes([SFACE])
        results.put(("ready", hashes))
    except ModelError as err:
        results.put(("error", "model", str(err)))
        return
    except Exception as err:  # noqa: BLE001 - anything else is reported, then the process ends
        results.put(("error", "privacy", f"The identity worker could not load its models: {err!r}."))
        return
    parent = mp.parent_process()
    while True:
        try:
            item = requests.get(timeout=0.5)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return  # orphaned: nobody will ever read a result
            continue
        if item is None:
            return
        if stop.is_set():
            continue  # closing: drain what is queued without embedding it
        batch, last = [item], False
        while len(batch) < BATCH:  # what else is waiting goes through the network in the same pass
            try:
                item = requests.get_nowait()
            except queue.Empty:
                break
            if item is None:
                last = True  # told to stop: answer this batch first
                break
            batch.append(item)
        try:
            start = time.perf_counter()
            matches = answer(embedder, second, gallery, batch)
            elapsed = (time.perf_counter() - start) / len(batch)
        except Exception as err:  # noqa: BLE001 - reported to the parent, then the process ends
            tracks = ("track " if len(batch) == 1 else "tracks ") + ", ".join(str(request[0]) for request in batch)
            results.put(("error", "privacy", f"The identity worker failed on {tracks}: {err!r}."))
            return
        for (track_id, _, _), match in zip(batch, matches):
            results.put(("match", track_id, match, elapsed))
        if last:
            return


def answer(embedder: FaceEmbedder, second, gallery: Gallery, batch) -> list[IdentityMatch]:
    """The gallery's answers for a batch of (track id, chip, small): dlib on every chip, and
    SFace (`second`, when the gallery uses it) too on the chips whose answer it could change
    (small faces, and faces just beyond the staff threshold: `Gallery.wants_sface`)."""
    chips = np.stack([chip for _, chip, _ in batch])
    embeddings = embedder.embed_chips(chips)
    wanted = [i for i, (_, _, is_small) in enumerate(batch) if gallery.wants_sface(embeddings[i], is_small)]
    sface = dict(zip(wanted, second.embed_chips(chips[wanted]))) if second is not None and wanted else {}
    return [gallery.match(e, sface.get(i), small=batch[i][2]) for i, e in enumerate(embeddings)]


class IdentityWorker:
    """Embeds and matches face chips in one spawned process; results come back by track id.

    The constructor blocks until the process has loaded its models (about 1-2 s), so a missing
    or damaged model raises ModelError here rather than on the first face. `niceness` lowers the
    process's CPU priority (live work: the frames come first).
    """

    def __init__(self, gallery: Gallery, max_pending: int = 8, start_timeout: float = START_TIMEOUT_S, niceness: int = 0):
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1.")
        self.max_pending = max_pending
        self.gallery_version = gallery.version
        ctx = mp.get_context("spawn")
        self._requests = ctx.Queue(maxsize=max_pending)
        self._results = ctx.Queue(maxsize=max_pending + 1)  # + the one error that ends the process
        self._stop = ctx.Event()
        self._process = ctx.Process(
            target=_serve, args=(gallery, self._requests, self._results, self._stop, niceness),
            name="classcap-identity", daemon=True,
        )
        self._in_flight = 0
        self._failure: PrivacyError | None = None
        self._closed = False
        self._times: list[float] = []
        self._process.start()
        try:
            self.model_hashes = self._await_ready(start_timeout)
        except BaseException:
            self.close()
            raise

    def _await_ready(self, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._results.get(timeout=_TICK_S)
            except queue.Empty:
                if not self._process.is_alive():
                    raise PrivacyError(
                        f"The identity worker exited while starting (exit code {self._process.exitcode})."
                    ) from None
                if time.monotonic() > deadline:
                    raise PrivacyError(f"The identity worker did not start within {timeout:.0f} s.") from None
                continue
            if message[0] == "ready":
                return message[1]
            self._handle(message)  # an error: raises

    @property
    def backlog(self) -> int:
        """Chips submitted whose results have not been polled yet."""
        return self._in_flight

    @property
    def pid(self) -> int | None:
        """The worker process id (None once closed)."""
        return None if self._closed else self._process.pid

    @property
    def stats(self) -> WorkerStats:
        times = self._times
        if not times:
            return WorkerStats(0, 0.0, 0.0)
        return WorkerStats(len(times), 1000 * sum(times) / len(times), 1000 * max(times))

    def submit(self, track_id: int, chip: np.ndarray, small: bool = False) -> bool:
        """Queue a chip without blocking; False when `max_pending` chips are already in flight.

        A `small` face (narrower than `blur.identity.MIN_FACE_PX`) is judged by SFace as well."""
        self._check_usable()
        if not isinstance(chip, np.ndarray) or chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
            raise ValueError(f"A face chip is a {CHIP_SIZE}×{CHIP_SIZE}×3 uint8 array (FaceEmbedder.chip).")
        if self._in_flight >= self.max_pending:
            return False
        try:
            self._requests.put_nowait((int(track_id), chip, bool(small)))
        except queue.Full:
            return False
        self._in_flight += 1
        return True

    def has_room(self) -> bool:
        """Would `submit` take one more chip now? (Live work cuts a chip only when it would.)"""
        return self._in_flight < self.max_pending

    def poll(self) -> list[tuple[int, IdentityMatch]]:
        """Results that have arrived, without blocking."""
        self._check_usable()
        out = self._drain()
        self._check_alive()
        return out

    def wait(self, track_ids, timeout: float) -> list[tuple[int, IdentityMatch]]:
        """Block until a result for each of `track_ids` has arrived, or `timeout` seconds passed.

        Returns every result that arrived meanwhile, for these ids or others, so none is lost.
        """
        self._check_usable()
        wanted = {int(t) for t in track_ids}
        deadline = time.monotonic() + timeout
        out = self._drain()
        while True:
            wanted -= {t for t, _ in out}
            remaining = deadline - time.monotonic()
            if not wanted or remaining <= 0:
                self._check_alive()
                return out
            try:
                message = self._results.get(timeout=min(remaining, _TICK_S))
            except queue.Empty:
                self._check_alive()
                continue
            out += self._handle(message)

    def close(self) -> None:
        """Stop the process and wait for it; results still in flight are dropped."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._process.is_alive():
            try:
                self._requests.put(None, timeout=1.0)
            except queue.Full:
                pass
            self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        # A process that died mid-read leaves chips in the pipe; don't let exit wait to flush them.
        self._requests.cancel_join_thread()
        self._requests.close()
        self._results.close()
        self._process.close()

    def __enter__(self) -> "IdentityWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -----------------------------------------------------------------------------------------

    def _drain(self) -> list[tuple[int, IdentityMatch]]:
        out = []
        while True:
            try:
                message = self._results.get_nowait()
            except queue.Empty:
                return out
            out += self._handle(message)

    def _handle(self, message) -> list[tuple[int, IdentityMatch]]:
        if message[0] == "match":
            _, track_id, match, elapsed = message
            self._in_flight -= 1
            self._times.append(elapsed)
            del self._times[:-1000]  # a running window, not a growing list
            return [(track_id, match)]
        _, kind, text = message
        self._failure = (ModelError if kind == "model" else PrivacyError)(text)
        raise self._failure

    def _check_usable(self) -> None:
        if self._closed:
            raise PrivacyError("The identity worker is closed.")
        if self._failure is not None:
            raise self._failure

    def _check_alive(self) -> None:
        if self._process.is_alive():
            return
        # Whatever it sent before dying is already in the pipe: an error message explains more.
        self._drain()
        self._failure = PrivacyError(
            f"The identity worker process exited unexpectedly (exit code {self._process.exitcode})."
        )
        raise self._failure
