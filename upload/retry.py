"""Retrying storage calls through outages: exponential backoff with full jitter.

Only failures that a wait can cure are retried (storage unreachable, timeouts, 5xx, throttling);
a refused credential or a missing bucket is reported at once, in one sentence.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from upload.errors import StorageUnreachable, UploadError

log = logging.getLogger(__name__)

TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500", "502", "504"}


def is_transient(err: BaseException) -> bool:
    cause = err.__cause__ if isinstance(err, UploadError) and err.__cause__ else err
    if isinstance(cause, (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)):
        return True
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.get("Code", "") in TRANSIENT_CODES or status >= 500
    if isinstance(cause, BotoCoreError):  # urllib3 protocol errors and the like: the link, not the request
        return "connect" in str(cause).lower() or "connection" in str(cause).lower()
    return isinstance(cause, (ConnectionError, TimeoutError))


@dataclass
class Outages:
    """What the retries saw, for the manifest and the station's health display."""

    retries: int = 0
    outages: int = 0
    longest_s: float = 0.0
    current_since: float | None = None  # monotonic start of the outage in progress
    last_success: float | None = None
    log: list = field(default_factory=list)  # (seconds, first error) of each outage, at most 50

    @property
    def unreachable_for(self) -> float:
        return time.monotonic() - self.current_since if self.current_since else 0.0


class Retrier:
    def __init__(
        self,
        give_up_after_s: float = 1800.0,
        first_wait_s: float = 0.5,
        max_wait_s: float = 20.0,
        stop: threading.Event | None = None,
    ):
        self.give_up_after_s = give_up_after_s
        self.first_wait_s, self.max_wait_s = first_wait_s, max_wait_s
        self.stop = stop or threading.Event()
        self.outages = Outages()

    def call(self, action: str, fn: Callable[[], object]):
        """`fn()` until it succeeds, a non-transient error, or `give_up_after_s` of failures."""
        started: float | None = None
        first_error = ""
        attempt = 0
        while True:
            try:
                result = fn()
            except Exception as err:
                if not is_transient(err) or self.give_up_after_s <= 0:
                    raise
                now = time.monotonic()
                if started is None:
                    started, first_error = now, str(err)
                    self.outages.outages += 1
                    self.outages.current_since = now
                    log.warning("storage unreachable while trying to %s (%s); retrying", action, err)
                if now - started >= self.give_up_after_s:
                    self._end_outage(started, first_error)
                    raise StorageUnreachable(
                        f"Storage stayed unreachable for {now - started:.0f} s while trying to {action}; gave up ({err})."
                    ) from err
                attempt += 1
                self.outages.retries += 1
                wait = random.uniform(0, min(self.max_wait_s, self.first_wait_s * 2**attempt))
                if self.stop.wait(wait):
                    raise
                continue
            if started is not None:
                self._end_outage(started, first_error)
                log.warning("storage is back after %.1f s; %s succeeded", time.monotonic() - started, action)
            self.outages.last_success = time.monotonic()
            return result

    def _end_outage(self, started: float, first_error: str) -> None:
        seconds = time.monotonic() - started
        self.outages.longest_s = max(self.outages.longest_s, round(seconds, 3))
        self.outages.current_since = None
        if len(self.outages.log) < 50:
            self.outages.log.append({"seconds": round(seconds, 3), "error": first_error})
