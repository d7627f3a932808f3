"""The generated classroom (from `fixtures/`) as a camera: frames and audio made in memory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction

from capture.iterable import IterableSource
from capture.types import AudioChunk, Frame, SourceInfo


def classroom_source(classroom) -> IterableSource:
    spec = classroom.spec
    rate = classroom.sample_rate
    info = SourceInfo(
        source_id=f"generated:classroom-seed{spec.seed}",
        width=spec.width,
        height=spec.height,
        time_base=Fraction(1, spec.fps),
        frame_rate=Fraction(spec.fps),
        frames=classroom.n_frames,
        audio_rate=rate if spec.with_audio else None,
        audio_layout="mono" if spec.with_audio else None,
        live=False,
    )

    def items() -> Iterator[Frame | AudioChunk]:
        blocks = classroom.audio(1024) if spec.with_audio else iter(())
        samples = 0
        for frame in classroom.frames():
            yield Frame(frame.index, info.time_base, frame.image, info.source_id, time.monotonic())
            # Audio up to the end of this frame, so the two streams stay interleaved in time.
            until = (frame.index + 1) * rate // spec.fps
            while samples < until and (block := next(blocks, None)) is not None:
                yield AudioChunk(samples, Fraction(1, rate), block.reshape(1, -1), rate, "mono")
                samples += block.shape[0]

    return IterableSource(info, items())
