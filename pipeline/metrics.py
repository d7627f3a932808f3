"""Prometheus metrics of a running recording, on loopback, and JSON-lines logs.

Metrics are read from the recording when Prometheus scrapes (a custom collector): nothing is
copied on the frame path. Logs carry the station and the recording id, never a student's name,
face or image: only the pseudonymous gallery id ever appears.
"""

from __future__ import annotations

import json
import logging
import time

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, StateSetMetricFamily

from capture.source import SourceState

LOG_CONTEXT: dict[str, str] = {}  # station, recording_id: set by the composition root


class RecordingCollector:
    def __init__(self, recording, window_s: float = 5.0):
        self.recording = recording
        self.window_s = window_s
        self._samples: list[tuple[float, int, int]] = []  # (time, frames in, frames out)

    def _rates(self, frames_in: int, frames_out: int) -> tuple[float, float]:
        now = time.monotonic()
        self._samples.append((now, frames_in, frames_out))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.pop(0)
        t0, in0, out0 = self._samples[0]
        if now - t0 < 0.5:
            return 0.0, 0.0
        return (frames_in - in0) / (now - t0), (frames_out - out0) / (now - t0)

    def collect(self):
        r = self.recording
        c = r.counters
        fps_in, fps_out = self._rates(c.frames_in, c.frames_out)
        yield GaugeMetricFamily("classcap_fps_in", "Frames captured per second, over the last few seconds", value=fps_in)
        yield GaugeMetricFamily("classcap_fps_out", "Frames blurred and encoded per second, over the last few seconds", value=fps_out)
        for name, help_text, value in (
            ("classcap_frames_in", "Frames captured", c.frames_in),
            ("classcap_frames_out", "Frames blurred and encoded", c.frames_out),
            ("classcap_dropped_frames", "Raw frames dropped because the privacy stage was behind", r.dropped_frames()),
            ("classcap_faces_detected", "Faces detected", c.faces_detected),
            ("classcap_faces_redacted", "Faces redacted", c.faces_redacted),
            ("classcap_fail_closed_frames", "Frames redacted whole or with every face hidden (fail closed)", c.fail_closed_frames),
            ("classcap_upload_retries", "Storage calls retried", r.retrier.outages.retries),
            ("classcap_parts_uploaded", "Multipart parts uploaded", c.parts),
            ("classcap_reconnects", "Camera reconnects", r.source.health.reconnects),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        state = r.source.health.state
        yield StateSetMetricFamily("classcap_source_state", "The camera's state: starting, running, reconnecting, ended, failed",
                                   value={s.value: s is state for s in SourceState})
        policy = r.engine.policy
        backlog = sum(t.outstanding for t in getattr(policy, "tracks", {}).values())
        yield GaugeMetricFamily("classcap_identity_backlog", "Face chips waiting for the identity worker", value=backlog)
        yield CounterMetricFamily("classcap_identity_backlog_events", "Identity requests refused because the worker was behind",
                                  value=policy.backlog_events)
        yield GaugeMetricFamily("classcap_upload_buffer_bytes", "Encoded video waiting in memory for storage", value=r.upload_buffer_bytes())
        yield GaugeMetricFamily("classcap_storage_unreachable_seconds", "How long storage has been unreachable (0: reachable)",
                                value=r.retrier.outages.unreachable_for)
        last = r.retrier.outages.last_success
        yield GaugeMetricFamily(
            "classcap_last_successful_upload_timestamp_seconds", "Unix time of the last successful storage call",
            value=(time.time() - (time.monotonic() - last)) if last else 0.0,
        )


class MetricsServer:
    """Serves one recording's metrics on 127.0.0.1:`port` until `close()`."""

    def __init__(self, recording, port: int):
        self.registry = CollectorRegistry()
        self.registry.register(RecordingCollector(recording))
        self._server, self._thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self.port = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, event, and the station and recording."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **LOG_CONTEXT,
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, sort_keys=True)
