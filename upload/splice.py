"""Replace a few fragments of a stored recording and keep every other byte of it.

A recording is `ftyp` and `moov`, then one `moof`+`mdat` fragment per GOP (the encoder starts a
fragment at every keyframe, and every keyframe is an IDR), then `mfra`. A fragment's offsets are
counted from its own `moof` (`default_base_moof`), so one fragment can be swapped for another of
a different size and every other fragment stays as it was, byte for byte; only `mfra`'s table of
fragment offsets moves.

`read_layout` walks a stored file (any seekable file object: `S3ObjectReader` reads it from
storage in ranges) and returns where its fragments are and which frames they hold, reading the
`moof` boxes and skipping the media. `reencode` decodes one fragment, lets the caller redact its
frames and encodes them again with the recording's own encoder settings; the encoder's parameter
sets (`avcC`) must equal the stored ones byte for byte, or it raises `ParameterSetsDiffer` and the
caller re-encodes the whole video instead. `splice` yields the new file: the stored bytes, with
the re-encoded fragments in their places.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from upload.errors import UploadError

HEADER = struct.Struct(">I4s")
NON_SYNC = 0x10000  # sample_is_non_sync_sample, in a sample's flags


class SpliceError(UploadError):
    """A stored video whose layout cannot be changed fragment by fragment (re-encode it whole)."""


class ParameterSetsDiffer(SpliceError):
    """The encoder's parameter sets are not the stored video's: its fragments would not play in it."""


@dataclass(frozen=True)
class Sample:
    duration: int
    size: int
    flags: int
    cto: int = 0  # composition time offset


@dataclass(frozen=True)
class Run:
    """One track's samples in one fragment (its `traf`, with one `trun`)."""

    track_id: int
    tfhd: bytes
    tfdt: bytes
    trun_flags: int
    trun_version: int
    first_flags: int | None
    samples: tuple[Sample, ...]
    data_offset: int  # from the start of the fragment's moof

    @property
    def data_size(self) -> int:
        return sum(s.size for s in self.samples)


@dataclass(frozen=True)
class Fragment:
    offset: int  # of its moof in the file
    size: int  # moof and mdat
    moof_size: int
    mfhd: bytes
    runs: tuple[Run, ...]
    first_frame: int  # the video frames it holds: first_frame .. first_frame + frames - 1
    frames: int


@dataclass(frozen=True)
class Layout:
    size: int
    head_size: int  # ftyp and moov: copied as they are
    video_track: int
    avcc: bytes  # the stored parameter sets (the avcC box's body)
    fragments: tuple[Fragment, ...]
    tail_offset: int  # mfra (and anything after the last fragment)

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.fragments)

    def fragment_of(self, frame: int) -> int:
        """The index of the fragment that holds video frame `frame` (0-based, in output order)."""
        lo, hi = 0, len(self.fragments) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.fragments[mid].first_frame <= frame:
                lo = mid
            else:
                hi = mid - 1
        f = self.fragments[lo]
        if not f.first_frame <= frame < f.first_frame + f.frames:
            raise SpliceError(f"frame {frame} is in no fragment of the video ({self.frames} frames)")
        return lo


class SharedReader:
    """One seekable file object read by several threads (fragments re-encoded side by side): each
    read is its seek and its read under one lock."""

    def __init__(self, f):
        self._f = f
        self._lock = threading.Lock()

    def read_at(self, offset: int, size: int) -> bytes:
        with self._lock:
            self._f.seek(offset)
            return self._f.read(size)


def _read(f, offset: int, size: int) -> bytes:
    if isinstance(f, SharedReader):
        data = f.read_at(offset, size)
    else:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise SpliceError(f"the video ends at byte {offset + len(data)}, inside a box that should end at {offset + size}")
    return data


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(kind, offset, size) of each box in data[start:end]."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = HEADER.unpack_from(data, at)
        if size < 8 or at + size > end:
            raise SpliceError(f"the video has a damaged {kind!r} box at byte {at}")
        yield kind, at, size
        at += size
    if at != end:
        raise SpliceError("the video has bytes left over after its last box")


def _child(data: bytes, kind: bytes, start: int, end: int) -> tuple[int, int]:
    for k, at, size in _boxes(data, start, end):
        if k == kind:
            return at, size
    raise SpliceError(f"the video has no {kind.decode()} box where one belongs")


def read_layout(f) -> Layout:
    """Where a stored fragmented MP4's fragments are, from its boxes (the media is not read)."""
    f.seek(0, io.SEEK_END)
    total = f.tell()
    at, head_size, moov = 0, None, None
    while at < total:  # ftyp, moov (and nothing else) before the first fragment
        size, kind = HEADER.unpack(_read(f, at, 8))
        if size < 8:
            raise SpliceError(f"the video has a box of size {size} at byte {at}")
        if kind == b"moov":
            moov = _read(f, at, size)
        elif kind == b"moof":
            head_size = at
            break
        elif kind != b"ftyp":
            raise SpliceError(f"the video has a {kind!r} box before its first fragment")
        at += size
    if moov is None or head_size is None:
        raise SpliceError("the video is not a fragmented MP4 (no moov, or no fragment)")
    video_track, avcc, defaults = _read_moov(moov)
    fragments, frame = [], 0
    while at < total:
        size, kind = HEADER.unpack(_read(f, at, 8))
        if kind != b"moof":
            break
        moof = _read(f, at, size)
        mdat_size, mdat_kind = HEADER.unpack(_read(f, at + size, 8))
        if mdat_kind != b"mdat" or mdat_size < 8:
            raise SpliceError(f"the fragment at byte {at} has no media after its moof")
        if at + size + mdat_size > total:
            raise SpliceError(f"the video ends at byte {total}, inside the fragment at byte {at}")
        runs = _read_moof(moof, defaults)
        mdhd_end = size + mdat_size
        for run in runs:
            if run.data_offset < size + 8 or run.data_offset + run.data_size > mdhd_end:
                raise SpliceError(f"the fragment at byte {at} points outside its own media")
        frames = sum(len(r.samples) for r in runs if r.track_id == video_track)
        mfhd_at, mfhd_size = _child(moof, b"mfhd", 8, size)
        fragments.append(Fragment(at, size + mdat_size, size, moof[mfhd_at:mfhd_at + mfhd_size], tuple(runs), frame, frames))
        frame += frames
        at += size + mdat_size
    tail = at
    while at < total:
        size, kind = HEADER.unpack(_read(f, at, 8))
        if kind not in (b"mfra", b"free", b"skip") or size < 8:
            raise SpliceError(f"the video has a {kind!r} box after its last fragment")
        if at + size > total:
            raise SpliceError(f"the video ends at byte {total}, inside its fragment table")
        at += size
    return Layout(total, head_size, video_track, avcc, tuple(fragments), tail)


def _read_moov(moov: bytes) -> tuple[int, bytes, dict]:
    video_track, avcc, defaults = None, None, {}
    for kind, at, size in _boxes(moov, 8):
        if kind == b"trak":
            tkhd_at, _ = _child(moov, b"tkhd", at + 8, at + size)
            version = moov[tkhd_at + 8]
            track_id = struct.unpack_from(">I", moov, tkhd_at + (28 if version == 1 else 20))[0]
            mdia_at, mdia_size = _child(moov, b"mdia", at + 8, at + size)
            hdlr_at, _ = _child(moov, b"hdlr", mdia_at + 8, mdia_at + mdia_size)
            if moov[hdlr_at + 16:hdlr_at + 20] != b"vide":
                continue
            if video_track is not None:
                raise SpliceError("the video has more than one video track")
            video_track = track_id
            minf_at, minf_size = _child(moov, b"minf", mdia_at + 8, mdia_at + mdia_size)
            stbl_at, stbl_size = _child(moov, b"stbl", minf_at + 8, minf_at + minf_size)
            stsd_at, stsd_size = _child(moov, b"stsd", stbl_at + 8, stbl_at + stbl_size)
            entry_at, entry_size = next(iter(_boxes(moov, stsd_at + 16, stsd_at + stsd_size)))[1:]
            if moov[entry_at + 4:entry_at + 8] != b"avc1":
                raise SpliceError(f"the video is {moov[entry_at + 4:entry_at + 8]!r}, not H.264 in avc1")
            avcc_at, avcc_size = _child(moov, b"avcC", entry_at + 86, entry_at + entry_size)
            avcc = moov[avcc_at + 8:avcc_at + avcc_size]
        elif kind == b"mvex":
            for k, t_at, _ in _boxes(moov, at + 8, at + size):
                if k == b"trex":
                    track_id, _, duration, size_, flags = struct.unpack_from(">5I", moov, t_at + 12)
                    defaults[track_id] = (duration, size_, flags)
    if video_track is None or avcc is None:
        raise SpliceError("the video has no H.264 video track")
    return video_track, avcc, defaults


def _read_moof(moof: bytes, defaults: dict) -> list[Run]:
    runs = []
    for kind, at, size in _boxes(moof, 8):
        if kind != b"traf":
            continue
        parts = {k: moof[a:a + s] for k, a, s in _boxes(moof, at + 8, at + size)}
        if set(parts) != {b"tfhd", b"tfdt", b"trun"} or sum(1 for _ in _boxes(moof, at + 8, at + size)) != 3:
            raise SpliceError(f"a fragment's track holds {sorted(k.decode() for k in parts)}, not one tfhd, tfdt and trun")
        tfhd, trun = parts[b"tfhd"], parts[b"trun"]
        flags = int.from_bytes(tfhd[9:12], "big")
        if flags & 0x1 or not flags & 0x20000:
            raise SpliceError("a fragment's offsets are not counted from its own moof")
        track_id = struct.unpack_from(">I", tfhd, 12)[0]
        duration, size_, sample_flags = defaults.get(track_id, (0, 0, 0))
        at_ = 16
        if flags & 0x2:
            at_ += 4
        if flags & 0x8:
            duration = struct.unpack_from(">I", tfhd, at_)[0]
            at_ += 4
        if flags & 0x10:
            size_ = struct.unpack_from(">I", tfhd, at_)[0]
            at_ += 4
        if flags & 0x20:
            sample_flags = struct.unpack_from(">I", tfhd, at_)[0]
        version, tflags = trun[8], int.from_bytes(trun[9:12], "big")
        count = struct.unpack_from(">I", trun, 12)[0]
        at_ = 16
        if not tflags & 0x1:
            raise SpliceError("a fragment's track does not say where its media is")
        data_offset = struct.unpack_from(">i", trun, at_)[0]
        at_ += 4
        first = None
        if tflags & 0x4:
            first = struct.unpack_from(">I", trun, at_)[0]
            at_ += 4
        samples = []
        for n in range(count):
            d, s, fl, c = duration, size_, sample_flags, 0
            if tflags & 0x100:
                d = struct.unpack_from(">I", trun, at_)[0]
                at_ += 4
            if tflags & 0x200:
                s = struct.unpack_from(">I", trun, at_)[0]
                at_ += 4
            if tflags & 0x400:
                fl = struct.unpack_from(">I", trun, at_)[0]
                at_ += 4
            if tflags & 0x800:
                c = struct.unpack_from(">i" if version else ">I", trun, at_)[0]
                at_ += 4
            if n == 0 and first is not None:
                fl = first
            samples.append(Sample(d, s, fl, c))
        runs.append(Run(track_id, tfhd, parts[b"tfdt"], tflags, version, first, tuple(samples), data_offset))
    return runs


# -- writing


def _box(kind: bytes, body: bytes) -> bytes:
    return HEADER.pack(8 + len(body), kind) + body


def _trun(samples: tuple[Sample, ...], data_offset: int) -> bytes:
    """A trun that says everything of each sample (the tfhd's defaults then do not matter)."""
    cto = any(s.cto for s in samples)
    flags = 0x1 | 0x100 | 0x200 | 0x400 | (0x800 if cto else 0)
    body = bytearray(struct.pack(">B3sIi", 1 if cto else 0, flags.to_bytes(3, "big"), len(samples), data_offset))
    for s in samples:
        body += struct.pack(">IIIi" if cto else ">III", *((s.duration, s.size, s.flags, s.cto) if cto else (s.duration, s.size, s.flags)))
    return _box(b"trun", bytes(body))


def _patched_trun(run: Run, data_offset: int, samples: tuple[Sample, ...] | None) -> bytes:
    if samples is None:  # the same samples, only their place in the media moves
        raw_flags = run.trun_flags
        body = bytearray(struct.pack(">B3sIi", run.trun_version, raw_flags.to_bytes(3, "big"), len(run.samples), data_offset))
        if raw_flags & 0x4:
            body += struct.pack(">I", run.first_flags)
        for s in run.samples:
            if raw_flags & 0x100:
                body += struct.pack(">I", s.duration)
            if raw_flags & 0x200:
                body += struct.pack(">I", s.size)
            if raw_flags & 0x400:
                body += struct.pack(">I", s.flags)
            if raw_flags & 0x800:
                body += struct.pack(">i" if run.trun_version else ">I", s.cto)
        return _box(b"trun", bytes(body))
    return _trun(samples, data_offset)


def rebuild_fragment(fragment: Fragment, stored: bytes, video_track: int, samples: tuple[Sample, ...], media: bytes) -> bytes:
    """The fragment with its video samples replaced (`media` their bytes, in order) and every other
    track's samples as they were; sequence number and decode times are kept."""
    if len(stored) != fragment.size:
        raise SpliceError("the stored fragment is not the size its layout says")
    if sum(s.size for s in samples) != len(media):
        raise SpliceError("the new samples' sizes do not add up to their media")
    datas, news = [], []
    for run in fragment.runs:
        if run.track_id == video_track:
            datas.append(media)
            news.append(samples)
        else:
            datas.append(stored[run.data_offset:run.data_offset + run.data_size])
            news.append(None)

    def moof(offsets):
        trafs = b"".join(
            _box(b"traf", run.tfhd + run.tfdt + _patched_trun(run, off, new))
            for run, off, new in zip(fragment.runs, offsets, news)
        )
        return _box(b"moof", fragment.mfhd + trafs)

    size = len(moof([0] * len(datas)))  # a trun's size does not depend on its offset
    offsets, at = [], size + 8
    for data in datas:
        offsets.append(at)
        at += len(data)
    return moof(offsets) + _box(b"mdat", b"".join(datas))


def rebuild_tail(tail: bytes, moved: dict[int, int]) -> bytes:
    """`mfra` with each fragment's offset where it now is (`moved`: old offset -> new)."""
    out = bytearray()
    for kind, at, size in _boxes(tail):
        box = bytearray(tail[at:at + size])
        if kind == b"mfra":
            for k, t_at, t_size in _boxes(tail, at + 8, at + size):
                if k != b"tfra":
                    continue
                local = t_at - at
                version = box[local + 8]
                sizes = struct.unpack_from(">I", box, local + 16)[0]
                extra = ((sizes >> 4) & 3) + 1 + ((sizes >> 2) & 3) + 1 + (sizes & 3) + 1
                count = struct.unpack_from(">I", box, local + 20)[0]
                width = 8 if version == 1 else 4
                entry = local + 24
                for _ in range(count):
                    off_at = entry + width
                    old = int.from_bytes(box[off_at:off_at + width], "big")
                    if old not in moved:
                        raise SpliceError(f"the video's fragment table points at byte {old}, where no fragment starts")
                    box[off_at:off_at + width] = moved[old].to_bytes(width, "big")
                    entry += 2 * width + extra
        out += box
    return bytes(out)


def splice(f, layout: Layout, replacement: Callable[[int], bytes | None]) -> Iterator[tuple[int | None, bytes]]:
    """The new file, piece by piece as (fragment index or None, bytes): the stored head, each
    fragment as stored or `replacement(index)` where that is not None (made when its turn comes,
    so that only one new fragment is held at a time), and the fragment table moved to match."""
    yield None, _read(f, 0, layout.head_size)
    at, moved = layout.head_size, {}
    for n, fragment in enumerate(layout.fragments):
        moved[fragment.offset] = at
        data = replacement(n)
        if data is None:
            data = _read(f, fragment.offset, fragment.size)
        at += len(data)
        yield n, data
    yield None, rebuild_tail(_read(f, layout.tail_offset, layout.size - layout.tail_offset), moved)


def compare(new_f, new: Layout, old: Layout, old_hashes: dict[int, str], replaced: set[int]) -> list[str]:
    """What is wrong with a spliced file against the one it came from: every fragment must hold the
    same tracks with the same decode times and sample durations (so every frame keeps its
    timestamp), every fragment not replaced must be byte-identical (`old_hashes`: fragment index ->
    SHA-256 of the stored one), and every replaced one must decode to all its frames."""
    problems = []
    if new.head_size != old.head_size or len(new.fragments) != len(old.fragments):
        return [f"the new video has {len(new.fragments)} fragments, the stored one {len(old.fragments)}"]
    for n, (a, b) in enumerate(zip(old.fragments, new.fragments)):
        timing = [(r.track_id, r.tfdt, [s.duration for s in r.samples]) for r in a.runs]
        if timing != [(r.track_id, r.tfdt, [s.duration for s in r.samples]) for r in b.runs]:
            problems.append(f"fragment {n} has other samples or timestamps than the stored one")
        elif n not in replaced and hashlib.sha256(_read(new_f, b.offset, b.size)).hexdigest() != old_hashes[n]:
            problems.append(f"fragment {n} should be unchanged and is not")
        elif n in replaced:
            try:
                decode_fragment(new_f, new, n)
            except (SpliceError, av.FFmpegError) as err:
                problems.append(f"the re-encoded fragment {n} does not decode ({err})")
    return problems


# -- re-encoding one fragment


def decode_frames(f, layout: Layout, index: int, wanted: set[int] | None = None) -> dict[int, np.ndarray]:
    """RGB frames of one fragment by frame number (counted from the video's start): those in
    `wanted` (decoding stops after the last of them), or all of them."""
    fragment = layout.fragments[index]
    data = _read(f, 0, layout.head_size) + _read(f, fragment.offset, fragment.size)
    last = max(wanted) if wanted else fragment.first_frame + fragment.frames - 1
    images: dict[int, np.ndarray] = {}
    frame = fragment.first_frame
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for decoded in container.decode(stream):
            if wanted is None or frame in wanted:
                images[frame] = decoded.to_ndarray(format="rgb24")
            if frame == last:
                return images
            frame += 1
    raise SpliceError(f"fragment {index} decoded to {frame - fragment.first_frame} frames, not its {fragment.frames}")


def decode_fragment(f, layout: Layout, index: int) -> tuple[list[np.ndarray], list[int], Fraction]:
    """The RGB frames of one fragment, with their timestamps (in the stored stream's time base)."""
    fragment = layout.fragments[index]
    data = _read(f, 0, layout.head_size) + _read(f, fragment.offset, fragment.size)
    images, stamps = [], []
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        for frame in container.decode(stream):
            images.append(frame.to_ndarray(format="rgb24"))
            stamps.append(frame.pts)
    if len(images) != fragment.frames:
        raise SpliceError(f"fragment {index} decoded to {len(images)} frames, not its {fragment.frames}")
    return images, stamps, time_base


def reencode(f, layout: Layout, index: int, settings, edit: Callable[[int, np.ndarray], None]) -> bytes:
    """Fragment `index` decoded, `edit(frame, image)` applied to each of its frames (in place;
    `frame` counts from the start of the video), encoded again with `settings`
    (`upload.encoder.EncoderSettings`, without audio) and rebuilt as a fragment of this file.

    Raises ParameterSetsDiffer when the encoder's parameter sets are not the stored video's."""
    from dataclasses import replace

    from upload.encoder import FragmentedMP4Encoder
    from upload.fragments import FragmentBuffer

    fragment = layout.fragments[index]
    images, stamps, stored_base = decode_fragment(f, layout, index)
    chunks: list[bytes] = []
    sink = FragmentBuffer(lambda part: chunks.append(part.data), part_size=1 << 40)
    encoder = FragmentedMP4Encoder(sink, replace(settings, audio_rate=None))
    try:
        for n, (image, stamp) in enumerate(zip(images, stamps)):
            edit(fragment.first_frame + n, image)
            encoder.encode_video(image, round(stamp * stored_base / settings.time_base))
        encoder.close()
    except BaseException:
        encoder.abort()
        raise
    fresh = io.BytesIO(b"".join(chunks))
    new = read_layout(fresh)
    if new.avcc != layout.avcc:
        raise ParameterSetsDiffer(
            "the encoder's parameter sets differ from the stored video's (another encoder version or settings)")
    samples, media = [], []
    for frag in new.fragments:
        data = _read(fresh, frag.offset, frag.size)
        for run in frag.runs:
            if run.track_id == new.video_track:
                at = run.data_offset
                for s in run.samples:
                    samples.append(s)
                    media.append(data[at:at + s.size])
                    at += s.size
    if len(samples) != fragment.frames:
        raise SpliceError(f"the encoder gave {len(samples)} frames for a fragment of {fragment.frames}")
    durations = [s.duration for r in fragment.runs if r.track_id == layout.video_track for s in r.samples]
    kept = tuple(Sample(d, s.size, s.flags, s.cto) for d, s in zip(durations, samples))
    if not kept or kept[0].flags & NON_SYNC:
        raise SpliceError("the re-encoded fragment does not start with a keyframe")
    stored = _read(f, fragment.offset, fragment.size)
    return rebuild_fragment(fragment, stored, layout.video_track, kept, b"".join(media))
