"""Encode redacted frames to fragmented MP4 (H.264 + AAC) straight into memory.

The `mp4` muxer can only write to a non-seekable sink when the output is fragmented; with
`frag_keyframe` every keyframe starts a fragment, so the GOP length is also the fragment length.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

from upload.errors import UploadError
from upload.fragments import FragmentBuffer

MUX_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "flush_packets": "1",  # hand bytes to the part buffer as soon as they are muxed
    # The default shifts video by AAC's priming delay; this keeps every frame's time as captured.
    "avoid_negative_ts": "make_non_negative",
}


@dataclass(frozen=True)
class EncoderSettings:
    width: int
    height: int
    time_base: Fraction  # of the incoming frames' pts; kept so timestamps survive untouched
    frame_rate: Fraction = Fraction(30)
    crf: int = 23
    preset: str = "veryfast"
    keyframe_seconds: float = 2.0  # fragment length: bounds what a crash can lose before a part
    threads: int = 0  # 0: libx264 picks
    audio_rate: int | None = None  # None: no audio track
    audio_layout: str = "stereo"
    audio_bitrate: int = 96_000
    x264_params: str = ""  # "" for X264_PARAMS (a recording's own, read back from its manifest, otherwise)

    def record(self):
        """What the manifest keeps of these settings (`upload.manifest.EncodingRecord`)."""
        from upload.manifest import EncodingRecord

        rate = Fraction(self.frame_rate)
        return EncodingRecord(
            codec="h264", time_base=(self.time_base.numerator, self.time_base.denominator),
            frame_rate=(rate.numerator, rate.denominator), crf=self.crf, preset=self.preset, tune=TUNE,
            x264_params=self.x264_params or X264_PARAMS, keyframe_seconds=self.keyframe_seconds, threads=self.threads,
        )

    @classmethod
    def from_record(cls, record, width: int, height: int) -> "EncoderSettings":
        """The settings a recording was encoded with (video only); a ValueError if this encoder cannot
        encode that way."""
        if record.codec != "h264" or record.tune != TUNE:
            raise ValueError(f"the video was encoded as {record.codec} tuned for {record.tune}, which this classcap does not")
        return cls(width=width, height=height, time_base=Fraction(*record.time_base), frame_rate=Fraction(*record.frame_rate),
                   crf=record.crf, preset=record.preset, keyframe_seconds=record.keyframe_seconds, threads=record.threads,
                   x264_params=record.x264_params)


# stitchable: x264 writes the same parameter sets whatever the content, so that a fragment encoded
# again on its own (a re-blur of one GOP, `upload/splice.py`) fits between the stored ones.
X264_PARAMS = "partitions=i8x8,i4x4:stitchable=1"
TUNE = "zerolatency"


class FragmentedMP4Encoder:
    def __init__(self, sink: FragmentBuffer, settings: EncoderSettings):
        self.settings = settings
        self._sink = sink
        self._container = av.open(sink, mode="w", format="mp4", options=MUX_OPTIONS)
        video = self._container.add_stream("libx264", rate=settings.frame_rate)
        video.width, video.height = settings.width, settings.height
        video.pix_fmt = "yuv420p"
        video.time_base = settings.time_base
        video.codec_context.time_base = settings.time_base
        video.codec_context.gop_size = max(1, round(float(settings.frame_rate) * settings.keyframe_seconds))
        # zerolatency: no lookahead or B-frame delay, so a frame reaches the part buffer at once.
        # (Its macroblock-tree rate control back on, with a 5-frame lookahead, made files 2.8×
        # smaller at crf 23 but only by spending fewer bits: at equal PSNR it saved 15 %, for
        # 167 ms more latency. Measured on the generated classroom; not taken.)
        # partitions: x264 searches intra 8×8/4×4 but no inter sub-partitions (veryfast also tries
        # p8x8). On real40 (the 40-face real-photograph clip, 1280×720, one thread): 8.1 against
        # 9.5 ms of CPU a frame, the same 2.77 Mbit/s at crf 23, Y-PSNR 40.72 against 40.78 dB.
        # (superfast saves as much again but needs 39 % more bits; me=dia saved 0.2 ms more.)
        video.options = {
            "crf": str(settings.crf),
            "preset": settings.preset,
            "tune": TUNE,
            "x264-params": settings.x264_params or X264_PARAMS,
        }
        if settings.threads:
            video.codec_context.thread_count = settings.threads
        self._video = video
        self._audio = None
        if settings.audio_rate:
            audio = self._container.add_stream("aac", rate=settings.audio_rate)
            audio.layout = settings.audio_layout
            audio.bit_rate = settings.audio_bitrate
            self._audio = audio
        self.frames_encoded = 0
        self._last_pts: int | None = None

    def encode_video(self, image: np.ndarray, pts: int) -> None:
        """Encode one frame; with zerolatency its packet is in the sink when this returns."""
        if self._last_pts is not None and pts <= self._last_pts:
            # Sources hand out increasing timestamps; dropping a frame here would be silent loss.
            raise ValueError(f"frame timestamp {pts} is not after the previous one ({self._last_pts})")
        self._last_pts = pts
        frame = video_frame(image)
        frame.pts = pts
        frame.time_base = self.settings.time_base
        self._mux(self._video.encode(frame))
        self.frames_encoded += 1

    def encode_audio(self, samples: np.ndarray, pts: int, time_base: Fraction, sample_rate: int, layout: str) -> None:
        if self._audio is None:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = pts
        frame.time_base = time_base
        self._mux(self._audio.encode(frame))

    def close(self) -> None:
        """Flush the encoders and the muxer; the sink then holds the file's last fragment."""
        self._mux(self._video.encode(None))
        if self._audio is not None:
            self._mux(self._audio.encode(None))
        self._container.close()
        self._sink.close()

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:
            pass

    def _mux(self, packets) -> None:
        try:
            self._container.mux(packets)
        except av.FFmpegError as err:
            raise UploadError(f"The encoder could not write the video stream ({err}).") from err


def video_frame(image: np.ndarray) -> av.VideoFrame:
    """An RGB uint8 frame as the encoder's yuv420p frame.

    OpenCV's BT.601 conversion costs half the CPU of PyAV's (3.4 vs 7.3 ms a 720p frame,
    measured; the decoded colours are as close to the original), CPU the detectors need.
    (libx264 takes yuv420p only at even sides, so every frame that reaches it has them.)
    """
    return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
