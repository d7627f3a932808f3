"""Fragment surgery: one GOP re-encoded and spliced in, every other fragment and the audio copied
byte for byte, every timestamp kept."""

import dataclasses
import hashlib
import io
import struct
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.upload.test_encoder import encode
from upload.encoder import EncoderSettings
from upload.splice import ParameterSetsDiffer, SharedReader, SpliceError, compare, read_layout, reencode, splice

SETTINGS = EncoderSettings(320, 240, Fraction(1, 60), Fraction(30), audio_rate=48000)
DARK = (slice(50, 100), slice(0, 100))


@pytest.fixture(scope="module")
def stored():
    # 150 frames at 30 fps (a fragment every 2 s) and 5 s of audio, as a recording is stored
    return b"".join(p.data for p in encode(150, SETTINGS, audio_seconds=5.0))


def darken(frame, image):
    image[DARK] = 0


def decoded(data):
    with av.open(io.BytesIO(data)) as container:
        video = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    with av.open(io.BytesIO(data)) as container:
        audio = [f.pts for f in container.decode(audio=0)]
    return video, audio


def hashes(data, layout):
    return {n: hashlib.sha256(data[f.offset:f.offset + f.size]).hexdigest() for n, f in enumerate(layout.fragments)}


def test_a_spliced_fragment_changes_only_its_own_frames(stored):
    # given a stored recording of several fragments
    layout = read_layout(io.BytesIO(stored))
    assert len(layout.fragments) >= 3 and layout.frames == 150
    target = 1
    first, count = layout.fragments[target].first_frame, layout.fragments[target].frames
    # when its second fragment is re-encoded with a dark box and spliced in
    fragment = reencode(io.BytesIO(stored), layout, target, SETTINGS, darken)
    new = b"".join(data for _, data in splice(io.BytesIO(stored), layout, lambda n: fragment if n == target else None))
    new_layout = read_layout(io.BytesIO(new))
    # then the new file passes the check a re-blur makes before it replaces anything
    assert compare(io.BytesIO(new), new_layout, layout, hashes(stored, layout), {target}) == []
    # and every other fragment is byte-identical to the stored one, the changed one is not
    before, after = hashes(stored, layout), hashes(new, new_layout)
    assert [n for n in before if before[n] != after[n]] == [target]
    # and every video frame and audio frame keeps its timestamp
    (old_video, old_audio), (new_video, new_audio) = decoded(stored), decoded(new)
    assert [p for p, _ in new_video] == [p for p, _ in old_video]
    assert new_audio == old_audio and len(new_audio) > 200
    # and the box is dark in exactly the frames of that fragment; the others decode as before
    for n, ((_, old), (_, image)) in enumerate(zip(old_video, new_video)):
        if first <= n < first + count:
            assert image[DARK].mean() < 20, n
        else:
            assert np.array_equal(image, old), n


def test_fragments_re_encoded_side_by_side_from_one_reader_are_the_ones_made_one_at_a_time(stored):
    # given a stored recording, encoded with one thread as a station records
    from concurrent.futures import ThreadPoolExecutor

    one_thread = dataclasses.replace(SETTINGS, threads=1)
    layout = read_layout(io.BytesIO(stored))
    alone = [reencode(io.BytesIO(stored), layout, n, one_thread, darken) for n in range(len(layout.fragments))]
    # when every fragment is re-encoded at once, all reading one file object through SharedReader
    # (one that waits between a seek and its read, as a read from storage does)
    class Slow(io.BytesIO):
        def read(self, size=-1):
            time.sleep(0.002)
            return super().read(size)

    shared = SharedReader(Slow(stored))
    with ThreadPoolExecutor(len(layout.fragments)) as pool:
        together = list(pool.map(lambda n: reencode(shared, layout, n, one_thread, darken), range(len(layout.fragments))))
    # then each is byte for byte the fragment re-encoded alone (a read interleaved with another
    # thread's seek would give another fragment's bytes, and a failed decode or other frames)
    assert together == alone
    assert len(set(alone)) == len(alone)


def test_the_fragment_table_points_at_the_moved_fragments(stored):
    # given a fragment re-encoded to another size (black content compresses to fewer bytes)
    layout = read_layout(io.BytesIO(stored))
    fragment = reencode(io.BytesIO(stored), layout, 0, SETTINGS, lambda frame, image: image.fill(0))
    assert len(fragment) != layout.fragments[0].size
    new = b"".join(data for _, data in splice(io.BytesIO(stored), layout, lambda n: fragment if n == 0 else None))
    # then every random-access entry of the tail (mfra/tfra) names the offset of a moof box
    tail = new[read_layout(io.BytesIO(new)).tail_offset:]
    assert tail[4:8] == b"mfra"
    at, offsets = 8, []
    while at < len(tail):
        size, kind = struct.unpack_from(">I4s", tail, at)
        if kind == b"tfra":
            version = tail[at + 8]
            sizes = struct.unpack_from(">I", tail, at + 16)[0]
            count = struct.unpack_from(">I", tail, at + 20)[0]
            width = 16 if version else 8
            row = width + sum(((sizes >> s) & 3) + 1 for s in (4, 2, 0))
            for k in range(count):
                offsets.append(struct.unpack_from(">Q" if version else ">I", tail, at + 24 + k * row + width // 2)[0])
        at += size
    assert offsets and all(new[o + 4:o + 8] == b"moof" for o in offsets)
    assert sorted(set(offsets)) == sorted(f.offset for f in read_layout(io.BytesIO(new)).fragments
                                          if any(r.track_id == layout.video_track for r in f.runs))


def test_other_encoder_settings_are_refused(stored):
    # given settings that give other parameter sets (ultrafast turns CABAC off)
    layout = read_layout(io.BytesIO(stored))
    other = dataclasses.replace(SETTINGS, preset="ultrafast")
    # then the fragment is refused rather than spliced into a stream it would not decode in
    with pytest.raises(ParameterSetsDiffer):
        reencode(io.BytesIO(stored), layout, 1, other, darken)


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.9, 0.999])
def test_a_truncated_recording_is_a_splice_error_wherever_it_was_cut(stored, cut):
    with pytest.raises(SpliceError):
        read_layout(io.BytesIO(stored[: int(len(stored) * cut)]))
