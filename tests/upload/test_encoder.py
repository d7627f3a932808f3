"""The encoder muxes fragmented MP4 into memory; the part buffer cuts it only between fragments."""

import io
import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from upload.encoder import EncoderSettings, FragmentedMP4Encoder
from upload.errors import UploadError
from upload.fragments import MIN_PART_SIZE, FragmentBuffer


def moving_frames(n, width=320, height=240, seed=0, noise=False):
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, (height, width * 2, 3), dtype=np.uint8)
    for i in range(n):
        if noise:  # fresh noise every frame: nothing to predict, so the stream is large
            yield rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        else:
            yield texture[:, i * 4 % width : i * 4 % width + width].copy()


def top_level_boxes(data: bytes):
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size == 1:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
        yield kind.decode(), offset, size
        offset += size


def encode(n, settings, part_size=MIN_PART_SIZE, audio_seconds=0.0, noise=False):
    parts = []
    encoder = FragmentedMP4Encoder(FragmentBuffer(parts.append, part_size), settings)
    for i, image in enumerate(moving_frames(n, settings.width, settings.height, noise=noise)):
        encoder.encode_video(image, i * 2)  # time base 1/60, frames every 2 ticks
    for k in range(int(audio_seconds * 48000 / 1024)):
        tone = np.sin(np.arange(k * 1024, (k + 1) * 1024) * 2 * np.pi * 440 / 48000).astype(np.float32)
        encoder.encode_audio(np.stack([tone, tone]) * 0.2, k * 1024, Fraction(1, 48000), 48000, "stereo")
    encoder.close()
    return parts


def test_encoded_stream_decodes_with_the_same_frames_and_times():
    # given 60 frames stamped every 2 ticks of 1/60 s (30 fps) with a second of audio
    settings = EncoderSettings(320, 240, Fraction(1, 60), Fraction(30), audio_rate=48000)
    # when they are encoded into memory
    parts = encode(60, settings, audio_seconds=2.0)
    data = b"".join(p.data for p in parts)
    # then the file decodes to 60 frames at the original times, with an AAC track
    with av.open(io.BytesIO(data)) as container:
        assert [s.codec_context.name for s in container.streams] == ["h264", "aac"]
        container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    assert len(times) == 60
    assert times == pytest.approx([i / 30 for i in range(60)], abs=1e-3)


def test_parts_are_at_least_the_minimum_and_end_on_fragment_boundaries():
    # given a clip whose encoding is several part sizes long (noise compresses badly)
    settings = EncoderSettings(640, 360, Fraction(1, 60), Fraction(30), crf=18, keyframe_seconds=0.2)
    parts = encode(160, settings, noise=True)
    assert len(parts) >= 3
    # then every part but the last is ≥ 5 MiB and the next part starts with a fragment
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert [p.last for p in parts] == [False] * (len(parts) - 1) + [True]
    assert all(len(p.data) >= MIN_PART_SIZE for p in parts[:-1])
    assert parts[0].data[4:8] == b"ftyp"
    assert all(p.data[4:8] == b"moof" for p in parts[1:])
    # and every prefix of parts is a file that plays to a clean end (what recovery relies on)
    for k in range(1, len(parts)):
        prefix = b"".join(p.data for p in parts[:k])
        assert list(top_level_boxes(prefix))[-1][0] == "mdat"
        with av.open(io.BytesIO(prefix)) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0


def test_part_buffer_refuses_parts_below_the_s3_minimum():
    with pytest.raises(ValueError):
        FragmentBuffer(lambda part: None, part_size=MIN_PART_SIZE - 1)


def test_part_buffer_rejects_a_stream_that_ends_inside_a_box():
    buffer = FragmentBuffer(lambda part: None)
    buffer.write(struct.pack(">I4s", 100, b"moof") + b"x" * 10)
    with pytest.raises(UploadError):
        buffer.close()


def test_decoded_frames_keep_the_colours_of_what_was_encoded():
    width, height = 320, 240
    # given flat patches of strong colours (a wrong colour matrix or range shifts them by tens)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (240, 240, 240), (16, 16, 16), (143, 131, 110)]
    image = np.zeros((height, width, 3), np.uint8)
    for k, colour in enumerate(colours):
        image[:, k * width // len(colours) : (k + 1) * width // len(colours)] = colour
    parts = []
    encoder = FragmentedMP4Encoder(FragmentBuffer(parts.append, MIN_PART_SIZE), EncoderSettings(width, height, Fraction(1, 30), crf=10))
    for i in range(3):
        encoder.encode_video(image, i)
    encoder.close()
    # when the stream is decoded
    with av.open(io.BytesIO(b"".join(p.data for p in parts))) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    # then each patch's centre has its colour, within rounding
    for k, colour in enumerate(colours):
        x = (2 * k + 1) * width // (2 * len(colours))
        assert np.abs(decoded[height // 2, x].astype(int) - colour).max() <= 6, (colour, decoded[height // 2, x])
