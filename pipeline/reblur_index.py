"""Re-blur one recording from its track index (`pipeline/reblur.py` calls it first).

1. **Judge again only what was shown.** The index lists every face track with what was decided;
   a hidden track is already blurred in the stored video and stays so. Each track that was shown
   is chipped at its best views, which are the only frames decoded (each from the start of its
   fragment), embedded and matched against today's gallery with the live rules
   (`blur.policy.still_shown`): any match hides it, and under `exclude` it stays shown only on a
   good view clearly far from every excluded student. A track none of whose best views was good
   is looked at again, on up to `SECOND_LOOK_VIEWS` more frames of its life (`more_views`); one
   that still cannot be judged is hidden.
   A shown track that starts where a newly hidden one ended (the same seat, within the policy's
   ghost time) is hidden with it, as live.
2. **Re-encode only the fragments that change.** Every frame of a newly hidden track's life, and
   MARGIN_FRAMES either side, is redacted; only the fragments (GOPs) holding those frames are
   decoded, redacted and encoded again with the recording's own encoder settings, and their
   parameter sets must be the stored ones byte for byte (`upload/splice.py`). Every other fragment
   and the audio are copied as they are.
3. **Verify** the new object before the manifest points at it: same fragments, timestamps and
   sample durations, every untouched fragment byte-identical to the stored one, every re-encoded
   one decoding to all its frames, and its SHA-256 what was sent.

Whatever makes this impossible (no index, no encoder record, a layout that cannot be spliced,
parameter sets that differ) raises `NeedsFullPass`, and the caller re-encodes the whole video.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from blur.policy import parse_policy, same_place, still_shown
from blur.types import Box
from classcap.errors import ClasscapError
from pipeline.track_index import TrackIndexError, from_bytes, hide, key_beside, lives_with_margin, more_views

log = logging.getLogger(__name__)

MARGIN_FRAMES = 3  # redacted before a newly hidden track's first frame and after its last
GHOST_FRAMES = 300  # as `blur.policy.FacePolicy.ghost_frames`
PART_SIZE = 8 * 1024 * 1024
REENCODE_WORKERS = 4  # fragments re-encoded at once, at most (and no more than the cores)


class NeedsFullPass(ClasscapError):
    """This recording cannot be re-blurred from its index; the sentence says why (the caller
    re-encodes the whole video instead, and says so)."""


@dataclass
class Plan:
    """What an index-driven re-blur of one recording would change."""

    layout: object  # upload.splice.Layout of the stored video
    index_bytes: bytes
    tracks: int
    judged: int  # shown tracks judged again
    hidden: dict[int, str] = field(default_factory=dict)  # newly hidden track -> why
    hidden_tracks: list = field(default_factory=list)  # their summaries (`TrackSummary`), for `hide`
    redactions: dict[int, list[tuple[int, int, int, int]]] = field(default_factory=dict)  # frame -> boxes
    fragments: list[int] = field(default_factory=list)  # indices of the fragments to re-encode
    views_decoded: int = 0
    looked_again: int = 0  # shown tracks none of whose best views was good, judged on more of their life
    seconds: float = 0.0

    @property
    def frames_to_encode(self) -> int:
        return sum(self.layout.fragments[n].frames for n in self.fragments)


def plan(client, settings, bucket: str, manifest, gallery, reader) -> Plan:
    """Judge the recording's shown tracks against `gallery`; reads the index and the frames of their
    best views only (`reader`: the stored video, a seekable file object)."""
    from upload.splice import SpliceError, read_layout

    started = time.monotonic()
    record = manifest.tracks_index
    if record is None:
        raise NeedsFullPass("it has no track index")
    if manifest.encoding is None:
        raise NeedsFullPass("its manifest does not say how its video was encoded")
    face_policy, _ = parse_policy(manifest.policy or "all")
    try:
        data = client.get_object(Bucket=bucket, Key=record.key)["Body"].read()
    except (ClientError, BotoCoreError) as err:
        raise NeedsFullPass(f"its track index could not be read ({err})") from err
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise NeedsFullPass("its track index is not the one its manifest names (the checksum differs)")
    try:
        stored = from_bytes(data, f"the track index {record.key}")
        layout = read_layout(reader)
    except (TrackIndexError, SpliceError) as err:
        raise NeedsFullPass(str(err).rstrip(".")) from err
    if layout.frames != len(stored.pts):
        raise NeedsFullPass(f"its index has {len(stored.pts)} frames and its video {layout.frames}")
    shown = [t for t in stored.tracks if not all(t.hidden)]
    result = Plan(layout, data, tracks=len(stored.tracks), judged=len(shown))
    if face_policy in ("exclude", "allow") and shown:
        networks = _networks(gallery)
        answers, result.views_decoded = _judge(reader, layout, {t.track_id: _best(t) for t in shown}, gallery, networks)
        # A second look, over its whole life, at each track none of whose best views was good: on the
        # 300 s bench wall 9 of the 11 tracks hidden were people nobody excluded, each of whose three
        # views measured 10.8-11.9 decoded (the gate is 12; a chip decoded from the stored video
        # measures a little less contrast than it did live), while every one of them had found
        # frames that chipped good. Hiding such a track re-encodes every fragment of its life; a
        # look costs one decoded frame. The rules do not change: any match hides, only a good view clears.
        again = {t.track_id: more_views(t, t.best, stored.width, stored.height) for t in shown
                 if _said_nothing(answers[t.track_id])}
        again = {track_id: views for track_id, views in again.items() if views}
        if again:
            more, decoded = _judge(reader, layout, again, gallery, networks)
            for track_id, views in more.items():
                answers[track_id].extend(views)
            result.views_decoded += decoded
            result.looked_again = len(again)
        for track in shown:
            keep, why = still_shown(face_policy, answers.get(track.track_id, ()))
            if not keep:
                result.hidden[track.track_id] = why
        _inherit(stored.tracks, shown, result.hidden)
    elif shown:  # `all` hides every face; nothing can have been shown (an older engine's index)
        result.hidden = {t.track_id: face_policy for t in shown}
    result.hidden_tracks = [t for t in stored.tracks if t.track_id in result.hidden]
    for track in result.hidden_tracks:
        for frame, box in lives_with_margin(track, MARGIN_FRAMES, layout.frames):
            result.redactions.setdefault(frame, []).append(box)
    result.fragments = sorted({layout.fragment_of(frame) for frame in result.redactions})
    result.seconds = time.monotonic() - started
    return result


def _best(track) -> list[tuple[int, tuple]]:
    """A track's best views, (frame, box found there)."""
    at = dict(zip(track.frames, track.boxes))
    return list(zip(track.best, track.views or [at[f] for f in track.best]))


def _said_nothing(answers) -> bool:
    """No view matched an excluded student and none was good: nothing could be said of the track."""
    return not any(getattr(m, "role", None) == "excluded" or (m is not None and good) for m, good, _ in answers)


def _networks(gallery):
    """The embedders a judgement uses (dlib's, and SFace where the gallery has it). Nothing else runs
    meanwhile: the networks get every core (on the 43-face wall, embedding was 9 of a judgement's
    15 s on one thread)."""
    from blur.identity import MIN_SMALL_FACE_PX, FaceEmbedder

    threads = os.cpu_count() or 1
    second = None
    if gallery.uses_sface:
        from blur.sface import SFaceEmbedder

        second = SFaceEmbedder(threads=threads)
    return FaceEmbedder(min_face_px=MIN_SMALL_FACE_PX, threads=threads), second


def _judge(reader, layout, views: dict[int, list], gallery, networks) -> tuple[dict[int, list], int]:
    """(track -> [(match, good chip, small face)], frames decoded): every view (frame, box) in
    `views` (track -> views) chipped and matched; a view that cannot be chipped counts as (None,
    False, small). The next fragment is decoded while this one's chips are embedded (decoding was
    4 s of 15)."""
    from upload.splice import decode_frames

    wanted: dict[int, list[tuple[int, Box]]] = {}  # frame -> (track, box)
    for track_id, chosen in views.items():
        for frame, box in chosen:
            wanted.setdefault(frame, []).append((track_id, Box(*box)))
    embedder, second = networks
    answers: dict[int, list] = {track_id: [] for track_id in views}
    by_fragment: dict[int, list[int]] = {}
    for frame in wanted:
        by_fragment.setdefault(layout.fragment_of(frame), []).append(frame)
    decoded = 0
    order = sorted(by_fragment)
    with ThreadPoolExecutor(1, thread_name_prefix="judge-decode") as decoder:  # one fragment ahead, no more
        ahead = decoder.submit(decode_frames, reader, layout, order[0], set(by_fragment[order[0]])) if order else None
        for i, n in enumerate(order):
            images = ahead.result()
            ahead = (decoder.submit(decode_frames, reader, layout, order[i + 1], set(by_fragment[order[i + 1]]))
                     if i + 1 < len(order) else None)
            decoded += len(images)
            _answer_fragment(images, wanted, embedder, second, gallery, answers)
    return answers, decoded


def _answer_fragment(images, wanted, embedder, second, gallery, answers) -> None:
    """Chip every wanted view in one fragment's decoded frames and match the chips, into `answers`."""
    from blur.identity import MIN_FACE_PX
    from blur.identity_worker import answer

    batch, goods = [], []
    for frame, image in images.items():
        for track_id, box in wanted[frame]:
            small = box.width < MIN_FACE_PX
            try:
                chip, quality = embedder.chip_and_quality(image, box)
            except ValueError:  # too small to identify: this view says nothing
                answers[track_id].append((None, False, small))
                continue
            batch.append((track_id, chip, small))
            goods.append(quality.can_clear)
    if batch:
        for (track_id, _, small), good, match in zip(batch, goods, answer(embedder, second, gallery, batch)):
            answers[track_id].append((match, good, small))


def _inherit(tracks, shown, hidden: dict[int, str]) -> None:
    """A shown track that starts where a hidden-for-exclusion track ended, within GHOST_FRAMES, is
    hidden too: someone who looked away comes back as a new track in the same seat."""
    ended = sorted(((t.frames[-1], Box(*t.boxes[-1])) for t in tracks if hidden.get(t.track_id) == "excluded"),
                   key=lambda e: e[0])
    if not ended:
        return
    for track in sorted(shown, key=lambda t: t.frames[0]):
        if track.track_id in hidden:
            continue
        first, box = track.frames[0], Box(*track.boxes[0])
        if any(0 < first - at <= GHOST_FRAMES and same_place(box, b) for at, b in ended):
            hidden[track.track_id] = "excluded"
            ended.append((track.frames[-1], Box(*track.boxes[-1])))


def apply(client, settings, bucket: str, target: str, manifest, the_plan: Plan, reader, tags: dict, style: str = "pixelate"):
    """Re-encode the plan's fragments, upload the spliced video as `target` and its index beside it,
    and verify the object; returns (VideoRecord, IndexRecord). Raises NeedsFullPass where the
    encoder cannot match the stored parameter sets."""
    from blur.redact import REDACTORS, face_region
    from upload.encoder import EncoderSettings
    from upload.manifest import IndexRecord, VideoRecord, put_document
    from upload.multipart import MultipartUpload
    from upload.s3file import S3ObjectReader
    from upload.splice import ParameterSetsDiffer, SharedReader, compare, read_layout, reencode, splice
    from upload.types import Part

    from pipeline.track_index import SCHEMA

    layout = the_plan.layout
    width, height = manifest.width, manifest.height
    try:
        encoder = EncoderSettings.from_record(manifest.encoding, width, height)
    except ValueError as err:
        raise NeedsFullPass(str(err)) from err
    redact = REDACTORS[style]

    def edit(frame, image):
        for box in the_plan.redactions.get(frame, ()):
            redact(image, face_region(Box(*box), width, height))

    replaced = set(the_plan.fragments)
    # Each fragment starts with an IDR and is encoded with the recording's threads (a station
    # records with one): re-encode as many side by side as there are cores, the next ones ahead of
    # the one the upload wants. 30 s of the 43-face wall, 2 cores: 0.80 s a fragment one at a time,
    # 0.47 s two at a time. Each holds its decoded frames (60 at 1280×720: 166 MB), so no more.
    order = sorted(replaced)
    workers = max(1, min(REENCODE_WORKERS, os.cpu_count() or 1))
    shared = SharedReader(reader)
    ahead: dict[int, object] = {}

    def replacement(n):
        if n not in replaced:
            return None
        at = order.index(n)
        for m in order[at:at + workers]:
            if m not in ahead:
                ahead[m] = pool.submit(reencode, shared, layout, m, encoder, edit)
        return ahead.pop(n).result()

    old_hashes: dict[int, str] = {}
    pool = ThreadPoolExecutor(workers, thread_name_prefix="reblur-encode")
    try:
        with MultipartUpload(client, settings, bucket, target, tags) as upload:
            pending, number = bytearray(), 1
            for n, data in splice(shared, layout, replacement):
                if n is not None and n not in replaced:
                    old_hashes[n] = hashlib.sha256(data).hexdigest()
                pending += data
                if len(pending) >= PART_SIZE:
                    upload.put(Part(number, bytes(pending)))
                    pending, number = bytearray(), number + 1
            upload.put(Part(number, bytes(pending), last=True))
            upload.complete()
    except ParameterSetsDiffer as err:  # found on the first fragment re-encoded; the upload is aborted
        raise NeedsFullPass(str(err).rstrip(".")) from err
    finally:  # on an error, the fragments still waiting are dropped and the running ones finish
        pool.shutdown(wait=True, cancel_futures=True)
    new_reader = S3ObjectReader(client, settings, bucket, target)
    whole = hashlib.sha256()
    while chunk := new_reader.read(PART_SIZE):
        whole.update(chunk)
    new_layout = read_layout(new_reader)
    problems = compare(new_reader, new_layout, layout, old_hashes, set(replaced))
    if whole.hexdigest() != upload.sha256:
        problems.append("the new video's checksum differs from what was uploaded")
    if problems:
        try:
            client.delete_object(Bucket=bucket, Key=target)
        except (ClientError, BotoCoreError) as err:
            log.warning("could not delete %s: %s", target, err)
        raise RuntimeError("; ".join(problems))
    body = hide(the_plan.index_bytes, the_plan.hidden, MARGIN_FRAMES, the_plan.hidden_tracks)
    index_key = key_beside(target)
    put_document(client, settings, bucket, index_key, body, "application/gzip", tags, "write the track index")
    video = VideoRecord(key=target, parts=number, bytes=new_layout.size, sha256=whole.hexdigest())
    return video, IndexRecord(index_key, len(body), hashlib.sha256(body).hexdigest(), SCHEMA)
