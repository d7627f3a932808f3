"""The teacher's page, on loopback (`classcap station serve` runs it).

Pick the policy, confirm the notice, start and stop; see a preview of the *redacted* output
(frames taken after the privacy stage, never from the camera), the elapsed time, and the upload's
health in plain words. Errors are sentences a teacher can act on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

from pipeline.config import STAFF_ID, ConfigError
from pipeline.settings import bucket_or_none
from pipeline.station import NOTICE, StationConfig

log = logging.getLogger(__name__)

POLICIES = {
    "all": "Blur every face",
    "exclude": "Blur students on the exclusion list",
    "allow": "Blur everyone except enrolled staff",
}
PREVIEW_WIDTH = 1280  # the page shows it at half size; loopback has the bandwidth


class StationController:
    """Owns at most one recording thread: starts it, stops it, reports its state and errors."""

    def __init__(self, station: StationConfig, source_uri: str | None = None, bucket: str | None = None,
                 say=log.warning, progress=None):
        self.station = station
        self._say, self._progress = say, progress  # for the recordings, as run_recording takes them
        self.source_uri = source_uri or station.source
        self.bucket = bucket_or_none(station, bucket)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._recording = None
        self._preview = None  # the latest *redacted* frame (RGB), set by the encode stage
        self.state = "idle"  # idle | starting | recording | finishing
        self.error: str | None = None
        self.last_result: dict | None = None
        self.started_at: float | None = None
        self.policy: str | None = None
        self.staff_id: str | None = None  # who is teaching: the recording's owner in the library

    # -- teacher actions
    def start(self, policy: str, notice_confirmed: bool, background: bool = False, staff_id: str | None = None) -> None:
        if policy not in POLICIES:
            raise ConfigError("Choose how faces are blurred before starting.")
        if not notice_confirmed:
            raise ConfigError(f'Tell the class "{NOTICE}", tick the box, then press Start.')
        staff_id = (staff_id or "").strip()
        if not staff_id:  # the recording would belong to nobody: only the data lead could see it
            raise ConfigError("Enter who is teaching (the staff id you sign in to the library with), then press Start.")
        if not STAFF_ID.fullmatch(staff_id):
            raise ConfigError(f"{staff_id!r} is not a staff id: use the id you sign in to the library with.")
        if not self.station.site or not self.station.room:
            raise ConfigError("This station has no site and room yet; ask your IT technician to set it up.")
        if not self.bucket:
            raise ConfigError("This station has no storage set up yet; ask your IT technician.")
        with self._lock:
            if self.state != "idle":
                raise ConfigError("A recording is already running; stop it first.")
            self.state, self.error, self.last_result = "starting", None, None
            self.policy = policy + (",background" if background else "")
            self.staff_id = staff_id
            self._preview = None
            self._thread = threading.Thread(target=self._record, name="station-recording", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            if self._recording is not None and self.state == "recording":
                self.state = "finishing"
                self._recording.finish()

    def close(self) -> None:
        """Server shutdown: finish any recording and wait for its upload."""
        self.stop()
        thread = self._thread
        if thread is not None:
            thread.join()

    # -- the recording thread
    def _record(self) -> None:
        from pipeline.live import LiveRequest, plan_live, run_live
        from classcap.clock import utc_stamp

        try:
            # the same recording `classcap record` makes: camera, microphone, buffer, metrics
            plan = plan_live(self.station, LiveRequest(policy=self.policy, source=self.source_uri, bucket=self.bucket,
                                                        staff_id=self.staff_id))
            notice_at = utc_stamp()
            self.last_result = run_live(plan, notice_at, live_control=self._control, on_redacted=self._keep_preview,
                                        progress=self._progress, say=self._say)
        except Exception as err:  # shown on the page as a sentence
            log.exception("the recording failed")
            self.error = _teacher_sentence(err)
        finally:
            with self._lock:
                self.state, self._recording, self.started_at = "idle", None, None

    @contextmanager
    def _control(self, recording):
        with self._lock:
            self._recording = recording
            self.state = "recording"
            self.started_at = time.monotonic()
        yield

    def _keep_preview(self, frame) -> None:
        self._preview = frame  # a reference to a redacted frame; it is never written anywhere

    # -- what the page shows
    def preview_jpeg(self) -> tuple[bytes, float] | None:
        """The latest redacted frame as JPEG (encoded in memory), and its time in the recording."""
        frame = self._preview
        if frame is None:
            return None
        image = frame.image
        h, w = image.shape[:2]
        if w > PREVIEW_WIDTH:
            image = cv2.resize(image, (PREVIEW_WIDTH, round(h * PREVIEW_WIDTH / w)), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        return (jpeg.tobytes(), float(frame.pts * frame.time_base)) if ok else None

    def status(self) -> dict:
        recording = self._recording
        elapsed = time.monotonic() - self.started_at if self.started_at else 0
        status = {
            "state": self.state,
            "policy": self.policy,
            "staff_id": self.staff_id,
            "elapsed_s": round(elapsed, 1),
            "notice": NOTICE,
            "site": self.station.site,
            "room": self.station.room,
            "error": self.error,
            "health": self._health(recording),
        }
        if recording is not None:
            status["frames"] = recording.counters.frames_out
            status["camera"] = recording.source.health.state.value
            status["recording_id"] = recording.recording_id
        if self.last_result:
            status["last_recording"] = {k: self.last_result.get(k) for k in ("recording_id", "frames_out", "video_key")}
            status["stopped_because"] = self.last_result.get("stopped_because")
        return status

    def _health(self, recording) -> str:
        if recording is None:
            if self.state == "starting":
                return "Getting ready: loading the face detectors and checking storage."
            if self.error:
                return "Not recording."
            if self.last_result:
                return "The last recording was uploaded safely."
            return "Ready to record."
        outages = recording.retrier.outages
        if outages.current_since:
            waiting = recording.upload_buffer_bytes() / 2**20
            return (f"Storage can't be reached right now ({outages.unreachable_for:.0f} s). The video is kept safe in "
                    f"memory ({waiting:.0f} MB waiting) and uploads when the connection is back.")
        if self.state == "finishing":
            return "Finishing: uploading the end of the lesson. Please wait."
        if recording.source.health.waiting_for_camera:
            return "The camera has stopped sending pictures; waiting for it to come back."
        return "Recording and uploading normally."


def _teacher_sentence(err: BaseException) -> str:
    text = str(err).strip() or "Something went wrong."
    if not text.endswith("."):
        text += "."
    return f"{text} If this keeps happening, tell your IT technician."


# -- the web side


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>classcap — lesson recording</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 760px; margin: 2em auto; color: #222; }
 h1 { font-size: 1.4em; } fieldset { border: 1px solid #ccc; margin: 1em 0; }
 button { font-size: 1.1em; padding: .5em 1.4em; margin-right: .6em; }
 button:disabled { opacity: .35; } #start { background: #1b7f3b; color: white; } #stop { background: #b3261e; color: white; }
 #error { color: #b3261e; font-weight: bold; } #preview { width: 640px; background: #eee; min-height: 360px; display: block; }
 .state { font-size: 1.2em; font-weight: bold; }
</style></head>
<body>
<h1>Lesson recording — <span id="where"></span></h1>
<p class="state"><span id="state">…</span> <span id="elapsed"></span></p>
<p id="health"></p>
<p id="error" role="alert"></p>
<fieldset><legend>Who is teaching</legend>
 <label>Your staff id (as you sign in to the library) <input id="staff" autocomplete="username" maxlength="64"></label>
</fieldset>
<fieldset><legend>Who is blurred</legend>
 POLICY_OPTIONS
 <label><input type="checkbox" id="background"> Also blur the room behind the people in front</label>
</fieldset>
<fieldset><legend>Tell the class</legend>
 <p>Say to the class: <strong>“NOTICE”</strong></p>
 <label><input type="checkbox" id="notice"> I have told the class</label>
</fieldset>
<p><button id="start">Start recording</button><button id="stop">Stop</button></p>
<p>What is being recorded (faces already blurred):</p>
<img id="preview" alt="blurred preview">
<script>
const $ = (id) => document.getElementById(id);
async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
  const data = await r.json();
  $("error").textContent = r.ok ? "" : data.error;
}
$("start").onclick = () => post("/start", {
  policy: document.querySelector("input[name=policy]:checked")?.value,
  background: $("background").checked, notice_confirmed: $("notice").checked, staff_id: $("staff").value });
$("stop").onclick = () => post("/stop");
function fmt(s) { s = Math.floor(s); return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
async function refresh() {
  try {
    const s = await (await fetch("/status")).json();
    $("where").textContent = (s.site || "?") + ", " + (s.room || "?");
    const words = {idle: "Not recording", starting: "Starting…", recording: "● Recording", finishing: "Finishing…"};
    $("state").textContent = words[s.state] || s.state;
    $("elapsed").textContent = s.state === "recording" ? fmt(s.elapsed_s) : "";
    $("health").textContent = s.health + (s.stopped_because ? " " + s.stopped_because : "");
    if (s.error) $("error").textContent = s.error;
    $("start").disabled = s.state !== "idle"; $("stop").disabled = s.state !== "recording";
    if (s.state === "recording") $("preview").src = "/preview.jpg?t=" + Date.now();
  } catch (e) { $("health").textContent = "The station is not answering."; }
}
setInterval(refresh, 700); refresh();
</script></body></html>
"""


def render_page() -> bytes:
    options = "\n ".join(
        f'<label><input type="radio" name="policy" value="{k}"{" checked" if k == "all" else ""}> {v}</label><br>'
        for k, v in POLICIES.items()
    )
    return PAGE.replace("POLICY_OPTIONS", options).replace("NOTICE", NOTICE).encode()


def make_handler(controller: StationController):
    page = render_page()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # requests go to the debug log, not the teacher's terminal
            log.debug("station page: " + fmt, *args)

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if getattr(self, "_frame_time", None) is not None:  # which frame the preview shows
                self.send_header("X-Frame-Time", f"{self._frame_time:.6f}")
                self._frame_time = None
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value) -> None:
            self._send(status, json.dumps(value).encode(), "application/json")

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/":
                self._send(200, page, "text/html; charset=utf-8")
            elif path == "/status":
                self._json(200, controller.status())
            elif path == "/preview.jpg":
                preview = controller.preview_jpeg()
                if preview is None:
                    self._send(HTTPStatus.NO_CONTENT, b"", "image/jpeg")
                else:
                    self._frame_time = preview[1]
                    self._send(200, preview[0], "image/jpeg")
            else:
                self._json(404, {"error": "There is no such page."})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                return self._json(400, {"error": "The page sent something the station did not understand; reload it."})
            try:
                if self.path == "/start":
                    controller.start(body.get("policy"), bool(body.get("notice_confirmed")), bool(body.get("background")),
                                     body.get("staff_id") if isinstance(body.get("staff_id"), str) else None)
                elif self.path == "/stop":
                    controller.stop()
                else:
                    return self._json(404, {"error": "There is no such action."})
            except ConfigError as err:
                return self._json(409, {"error": str(err)})
            self._json(200, controller.status())

    return Handler


class PageServer(ThreadingHTTPServer):
    """The page on 127.0.0.1:port (0: any free port), serving on its own thread from the start."""

    daemon_threads = True

    def __init__(self, controller: StationController, port: int):
        super().__init__(("127.0.0.1", port), make_handler(controller))
        self.controller = controller
        self._serving = threading.Thread(target=self.serve_forever, name="station-page", daemon=True)
        self._serving.start()

    def close(self) -> None:
        """Finish any recording (its upload included), then stop serving."""
        self.controller.close()
        self.shutdown()
        self.server_close()
        self._serving.join(timeout=5)
