"""Query: a file in, the library's most similar files out (the input itself left out).

path → detect → decode → embed → search each kind's collection (rows with the
query's content hash excluded in the store) → group rows per file, rank,
localise → ``SearchResult``. Exactly ``k`` results come back whenever the
library holds ``k`` other files of the searched kinds: exclusion happens in the
search itself, and searches widen until enough distinct files are found.

``search`` receives the store, the embedders and the settings (never the
``Library``). Copy signals (``signals``, fused by ``query.rank``) re-rank a
wider pool (``COPY_POOL`` files):
an image query is searched with its mirror too, candidates are checked by
pHash and local features; a sound (or a video's soundtrack) by its landmark
fingerprint. Verified copies come first (``Match.copy``), then the rest by
score; ``SearchResult.copy_found`` is False when nothing passed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..decode.image import open_image, prepare
from ..detect import detect_kind
from ..embed.embedders import Embedded, embed_frames, embed_sound
from ..errors import ConfigError, DecodeError
from ..identity import content_hash, resolve_path
from ..signals.image import MAX_SIDE, one_blas_thread, phash_pair
from ..store.records import Hit
from ..types import KINDS, Kind, Match, SearchResult
from . import rank as copyrank
from .place import place_matches
from .pool import Ctx, candidates
from .rank import align_rows, shortlist
from .sounds import rank_sounds, read_sounds, sample_check, sound_rows, stored_prints, voted
from .stream import Progress, check_length

if TYPE_CHECKING:
    from ..config import Settings
    from ..embed.embedders import Embedders
    from ..store.milvus import MilvusStore
    from ..store.hashes import Near
    from ..store.records import Row

__all__ = ["search", "DEFAULT_KINDS", "ALLOWED_KINDS"]

log = logging.getLogger(__name__)

#: What each kind of query searches by default (DESIGN.md section 3).
DEFAULT_KINDS: dict[str, tuple[Kind, ...]] = {
    "image": ("image", "video"),
    "video": ("video",),
    "audio": ("audio", "video"),
}
#: What each kind of query can search at all.
ALLOWED_KINDS: dict[str, tuple[Kind, ...]] = {
    "image": ("image", "video"),
    "video": ("video", "image", "audio"),
    "audio": ("audio", "video"),
}


@dataclass
class Query:
    path: str
    kind: Kind
    content_hash: str
    image: Embedded | None = None  # image query: one vector
    frames: Embedded | None = None  # video query: keyframes
    mirrored: Embedded | None = None  # video query: its keyframes mirrored (a flipped copy is as near)
    frame_hashes: tuple[np.ndarray, np.ndarray] | None = None  # video query: its keyframes' pHashes, and their mirrors'
    sound: Embedded | None = None  # audio query, or a video's soundtrack
    picture: copyrank.PictureQuery | None = None  # image query: pHashes and local features
    pairs: Any = None  # the sound's landmarks (signals.audio.Pairs)
    samples: np.ndarray | None = None  # the sound itself, 32 kHz mono (spectral placement)

    def ranks_by_sound(self, target: Kind) -> bool:
        """Whether ``target``'s results are ranked by the query's sound: the sounds, and the videos'
        soundtracks unless pictures rank the videos (an image or a video query)."""
        return self.sound is not None and (target == "audio" or (target == "video" and self.image is None and self.frames is None))


def search(
    path: str | Path,
    *,
    store: MilvusStore,
    embedders: Embedders,
    settings: Settings,
    k: int = 10,
    kinds: Sequence[str] | None = None,
    copy_signals: bool = True,
    progress: Progress | None = None,
) -> SearchResult:
    """Rank the library's files by similarity to ``path``; see the module docstring.

    ``copy_signals=False`` ranks by the embeddings alone (no pHash, local
    features or fingerprints): how ``media-search evaluate`` compares models.
    ``progress`` is called with ``{"event": "decode", "done": s, "total": s or None}`` while a
    long query sound is decoded (``query.stream``), then with ``{"event": "embed", ...}``.
    """
    lib = Ctx(store, embedders, settings)
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}.")
    real = resolve_path(path)
    kind = detect_kind(real)
    one_blas_thread()  # the copy checks' small products (``signals.image.one_blas_thread``)
    targets = _targets(kind, kinds)
    own = content_hash(real)
    # The library's files of the query's own bytes, read on a thread while the query is embedded
    # and ranked: Milvus Lite filters the manifest row by row (25-35 ms at 19k files).
    with ThreadPoolExecutor(1, thread_name_prefix="media-search-copies") as pool:
        copies = pool.submit(_exact_copies, lib.store, own, real)
        results = _ranked(lib, real, kind, own, targets, k, progress, copy_signals)
        return SearchResult(query=str(path), kind=kind, results=results[:k], exact_copies=copies.result())


def _exact_copies(store: MilvusStore, own: str, real: str) -> list[str]:
    """The paths of the library's files whose bytes are the query's (content hash ``own``), but its own."""
    if not store.has("files"):
        return []
    return sorted({rec.path for rec in store.iter_files(content_hash=own, strong=False) if rec.path != real})


def _ranked(lib: Ctx, real: str, kind: Kind, own: str, targets: tuple[Kind, ...], k: int, progress: Progress | None,
            copy_signals: bool) -> list[Match]:  # fmt: skip
    """The query embedded, then every target's results merged, best first (see ``search``)."""
    q = _embed_query(lib, real, kind, own, targets, progress, copy_signals)
    if not copy_signals:
        q.picture, q.pairs, q.samples, q.frame_hashes = None, None, None, None
    sources = [t for t in targets if q.ranks_by_sound(t)]
    if sources:  # ranked against both the sounds and the soundtracks: their rows in one read
        read_sounds(lib, q.sound, q.pairs, q.content_hash, sources, k)
    # Every kind's vector search first, then the checks (the exact copies are read on a thread of
    # their own: ``search``): an image query's checks wait for its local features
    # (``PictureQuery.prefetch``, about 0.1 s of SIFT on a core of its own), and the searches that
    # come before them take that wait instead of adding to it.
    ranked = [_rank(lib, q, target, k) for target in targets]
    results = copyrank.merge([checked() for checked in ranked])
    if q.samples is not None and lib.lengths:  # the sound search's first results, placed in time
        results = place_matches(lib.settings, q.samples, results, lib.lengths)
    return results


def _targets(kind: Kind, kinds: Sequence[str] | None) -> tuple[Kind, ...]:
    if not kinds:
        return DEFAULT_KINDS[kind]
    unknown = [x for x in kinds if x not in KINDS]
    if unknown:
        raise ConfigError(f"Unknown kind {unknown[0]!r}: use image, video or audio.")
    allowed = [x for x in ALLOWED_KINDS[kind] if x in kinds]
    if not allowed:
        raise ConfigError(
            f"A {kind} query can search {', '.join(ALLOWED_KINDS[kind])}, not {', '.join(kinds)}."
        )
    return tuple(allowed)  # type: ignore[return-value]


def _embed_query(
    lib: Ctx, path: str, kind: Kind, own: str, targets: tuple[Kind, ...], progress: Progress | None = None, copy_signals: bool = True
) -> Query:
    q = Query(path=path, kind=kind, content_hash=own)
    if kind == "image":
        # The picture and its mirror: a mirrored copy is as near as the original (best per file).
        # A screenshot's main picture is searched too (``PictureQuery.inner``).
        im = np.asarray(open_image(path, min_side=MAX_SIDE))  # one decode for the model and the copy signals
        pic = prepare(im)
        q.picture = copyrank.PictureQuery(path, pic, im)
        if copy_signals:
            q.picture.prefetch()  # the query's own local features, while it is embedded and searched
        views = [pic, pic[:, ::-1]] + ([q.picture.inner] if q.picture.inner is not None else [])
        q.image = Embedded(embed_frames(lib.embedders.image, np.stack(views), lib.settings.batch_size), np.zeros(len(views)))
        return q
    if kind == "video":
        from ..decode.video import header_seconds

        # ffprobe's answer (a process of its own, about 0.1 s) comes while the keyframes are
        # decoded; it is waited for first only when the header's own figure is missing or over the
        # limit, so that an over-long video is refused before any decoding. The soundtrack (ffmpeg
        # in its own process, Cnn14, the landmarks) is read on a thread beside the keyframes: the
        # decoders and both models let go of the GIL.
        def soundtrack() -> None:
            declared = probed.result()
            if "video" in targets or "audio" in targets:
                try:
                    _query_sound(lib, q, path, declared, progress, from_video=True)
                except DecodeError:  # no soundtrack
                    pass

        with ThreadPoolExecutor(2, thread_name_prefix="media-search-query") as pool:
            probed = pool.submit(check_length, path, lib.settings, from_video=True)
            header = header_seconds(path)
            if header is None or header > lib.settings.max_query_seconds:
                probed.result()
            sound = pool.submit(soundtrack)
            _embed_frames(lib, q, path, targets)
            sound.result()
        return q
    # The fingerprint index is voted on (for each source the sound ranks) while Cnn14 embeds it.
    votes = [t for t in targets if t in ("audio", "video")] if copy_signals else []
    _query_sound(lib, q, path, check_length(path, lib.settings, from_video=False), progress, from_video=False, votes=votes)
    return q


def _embed_frames(lib: Ctx, q: Query, path: str, targets: tuple[Kind, ...]) -> None:
    """A video query's keyframes and their mirrors (when videos or images are searched)."""
    from ..decode.file import decode_video

    if "video" not in targets and "image" not in targets:
        return
    d = decode_video(path, lib.settings, soundtrack=False, local=False)  # at most video_max_frames
    frames, d.frames = np.asarray(d.frames), None
    # The keyframes and their mirrors (a mirrored copy aligns with the mirrors), a batch at
    # a time: the mirrors are views, never a second copy of up to 600 pictures (176 MB).
    size = lib.settings.batch_size
    q.frames = Embedded(embed_frames(lib.embedders.image, frames, size), d.timestamps, d.duration, d.notes)  # type: ignore[arg-type]
    step = MIRROR_EVERY if len(frames) >= 3 * MIRROR_EVERY else 1
    ts = np.asarray(d.timestamps)[::step]
    q.mirrored = Embedded(embed_frames(lib.embedders.image, frames[::step, :, ::-1], size), ts, d.duration, d.notes)  # type: ignore[arg-type]
    pairs = np.array([phash_pair(f) for f in frames], dtype=np.uint64).reshape(-1, 2)  # the stored pHash's picture
    q.frame_hashes = (pairs[:, 0], pairs[:, 1])


def _keyframe_copies(q: Query, matches: list[Match], rows: Sequence[Row]) -> list[Match]:
    """Matches whose keyframes are pHash copies of the query's (or of its mirror's) at one time offset
    (``signals.frames``, the rule of ``media-search duplicates``) flagged as copies, first; the rest
    keep their order."""
    from ..signals.frames import agreement, hash_matches

    assert q.frames is not None and q.frame_hashes is not None
    per_path: dict[str, list[Row]] = {}
    for r in rows:
        if r.phash:
            per_path.setdefault(r.path, []).append(r)
    out = []
    for m in matches:
        mine = per_path.get(m.path, [])
        hashes = np.array([int(r.phash, 16) for r in mine], dtype=np.uint64)  # type: ignore[arg-type]
        times = np.array([r.timestamp or 0.0 for r in mine])
        verdicts = [agreement(hash_matches(view, q.frames.timestamps, hashes, times), len(view), len(mine))
                    for view in q.frame_hashes]  # fmt: skip
        best = max((v for v in verdicts if v is not None and v.copy), key=lambda v: v.frames, default=None)
        if best is not None:
            m = dataclasses.replace(m, copy=True, copy_confidence=max(best.confidence, m.copy_confidence or 0.0) if m.copy else best.confidence)
        out.append(m)
    return sorted(out, key=lambda m: (not m.copy, -(m.copy_confidence or 0.0) if m.copy else 0.0))  # stable


def _query_sound(
    lib: Ctx, q: Query, path: str, declared: float | None, progress: Progress | None, *, from_video: bool, votes: Sequence[str] = ()
) -> None:  # fmt: skip
    """The query's sound: whole when short, streamed (no samples kept) when long (``query.stream``).

    ``votes``: the sources whose fingerprint-index candidates (``sounds.voted``) a short sound's
    landmarks are voted for on a thread while Cnn14 embeds it (the vote is SQLite and numpy, which
    let go of the GIL: about 40 ms of an audio query's 500)."""
    from ..decode.file import decode_sound
    from ..embed.audio import QUERY_HOP, SOUNDTRACK_QUERY_HOP
    from ..signals.audio import landmarks
    from .stream import embed_long_sound

    source = "video" if from_video else "audio"
    if declared is not None and declared > lib.settings.stream_seconds:
        sound, pairs = embed_long_sound(path, lib.embedders.audio, lib.settings, from_video=from_video,
                                        declared=declared, progress=progress)  # fmt: skip
        lib.embedders.audio.shrink()  # before the vote: a 4-hour query 1.54 -> see README, "Long media"
        samples = None
    else:
        audio = decode_sound(path, lib.settings, from_video=from_video)
        hop = SOUNDTRACK_QUERY_HOP if from_video else QUERY_HOP
        pairs, samples = landmarks(audio.samples, audio.sr), audio.samples
        if votes and len(pairs) and lib.store.has("audio"):  # loaded (and its model checked) before the
            lib.ensure("audio")  # vote reads it; a long sound's after its embedding (README, "Long media")
        else:
            votes = ()
        with ThreadPoolExecutor(1, thread_name_prefix="media-search-vote") as pool:
            voting = [pool.submit(voted, lib, pairs, q.content_hash, s) for s in votes]
            sound = embed_sound(lib.embedders.audio, audio, source, query_hop=hop)
        for v in voting:
            v.result()
    if len(sound) or not from_video:
        q.sound, q.pairs, q.samples = sound, pairs, samples


def _rank(lib: Ctx, q: Query, target: Kind, k: int) -> Callable[[], list[Match]]:
    """``target``'s results, in two steps: what is searched now, and the copy checks that an image
    query's candidates still need, done when the returned function is called."""
    store = lib.store
    done: list[Match] = []
    if q.ranks_by_sound(target):  # a sound finds the sounds, and the videos whose soundtrack it is in
        done = rank_sounds(lib, q.sound, k, q.content_hash, source=target, pairs=q.pairs, samples=q.samples)
    elif target == "image":
        vecs = q.image.vectors if q.image is not None else q.frames.vectors if q.frames is not None else None
        if vecs is not None and store.has("image"):
            lib.ensure("image")
            return _best_per_file(lib, "image", vecs, k, q.content_hash, result_kind="image", picture=q.picture)
    elif target == "video":
        if q.image is not None and store.has("video"):
            lib.ensure("video")
            return _best_per_file(lib, "video", q.image.vectors, k, q.content_hash, result_kind="video", picture=q.picture)
        if q.image is None and q.frames is not None:
            done = _rank_sequences(lib, q, k)
    return lambda: done


#: Files gathered by the embeddings before copy detection re-ranks them: wider than ``k`` so that an
#: edited copy the embeddings rank low (random weights, a screenshot) is still checked. The pictures
#: within ``rank.HASH_SHORTLIST`` bits of the query's pHashes join them from the whole library
#: (``store.hashes``), whatever their rank: searched alone, the 32 pictures a view lost 2 of
#: ``bench_copy.py --only images``' 20 brightness and contrast edits (1.00 -> 0.90). A store without
#: the lookup (a server) asks for 4 rows a file instead, 128 pictures a view, and compares their pHashes.
COPY_POOL = 32
#: A video query embeds the mirror of every ``MIRROR_EVERY``-th keyframe (of every keyframe in a
#: clip of fewer than ``3 * MIRROR_EVERY``): the mirror view proposes mirrored copies and aligns
#: with them; the pHash rule that flags them (``_keyframe_copies``) compares every keyframe's
#: mirror, which costs no model run. Half the mirrors: 17 model runs instead of 22 for a 10 s clip.
MIRROR_EVERY = 2
#: Videos a video query aligns keyframe by keyframe, whatever ``k`` (more after them for a larger ``k``).
SEQUENCE_POOL = 10


def _best_per_file(
    lib: Ctx, kind: Kind, vecs: np.ndarray, k: int, exclude: str, *, result_kind: Kind,
    picture: copyrank.PictureQuery | None = None,
) -> Callable[[], list[Match]]:  # fmt: skip
    """The best row per file, searched now; the function returned ranks them (copy checks first)."""
    # With copy detection: the head, the files a search for COPY_POOL of them finds whatever ``k``,
    # re-ranked by the copy checks; a larger ``k`` adds the next files by score after it.
    # A picture is one row: the search asks for a row a file where the store looks the pHashes up
    # over the whole library (``store.hashes``), else for 4 (the pHash-near copies among them).
    near = None
    if picture is not None and kind == "image":
        near = lib.store.near_pictures(kind, picture.hashes, copyrank.HASH_SHORTLIST, exclude_hash=exclude, limit=copyrank.MAX_VERIFY)
    per_file = 1 if kind == "image" and (picture is None or near is not None) else 4
    groups = candidates(lib, kind, vecs, COPY_POOL if picture else k, exclude, per_file=per_file)
    if near:
        groups.update(_found_by_hash(lib, kind, vecs, near, groups))
    head = set(groups)
    if picture is not None and k > COPY_POOL:
        wide = candidates(lib, kind, vecs, k, exclude, per_file=per_file)
        groups = {**{f: groups[f] for f in head}, **{f: hs for f, hs in wide.items() if f not in head}}
    cands = []
    for f, hits in groups.items():
        # Ties go to the earliest keyframe: the store returns rows of equal score in no fixed order,
        # and a still scene's keyframes are equal (the moment shown would change from run to run).
        best = min(hits, key=lambda h: (-h.score, h.timestamp or 0.0))
        row = best
        if picture is not None and kind == "video":  # verify the keyframe nearest by pHash, if one is near
            near = min(hits, key=lambda h: (_dist(picture, h.phash), h.timestamp or 0.0))
            if _dist(picture, near.phash) <= copyrank.HASH_SHORTLIST:
                row = near
        ts = None if kind == "image" else row.timestamp
        cands.append(copyrank.Candidate(Match(best.path, result_kind, round(best.score, 6), ts, None), row.phash, row.id, f in head))
    if picture is None:
        ranked = sorted((c.match for c in cands), key=lambda m: (-m.score, m.path))[:k]
        return lambda: ranked

    def stored(chosen: Sequence[copyrank.Candidate]) -> list[str | None]:
        found = lib.store.local_features(kind, [c.row_id for c in chosen if c.row_id])
        return [found.get(c.row_id or "") for c in chosen]

    rest = sorted((c.match for c in cands if not c.head), key=lambda m: (-m.score, m.path))
    return lambda: (copyrank.rerank_pictures(picture, [c for c in cands if c.head], stored) + rest)[:k]


def _found_by_hash(lib: Ctx, kind: Kind, vecs: np.ndarray, near: Sequence[Near], found: dict[str, list[Hit]]) -> dict[str, list[Hit]]:
    """The pHash lookup's rows of files the vector search did not find, each scored by its vector
    (read by row id) as the search would: its best cosine against the query's views. A row whose
    vector is gone (removed since the lookup was read) is left out."""
    extra = [n for n in near if n.file_id not in found]
    stored = lib.store.vectors_of(kind, [n.id for n in extra])
    views = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    out: dict[str, list[Hit]] = {}
    for n in extra:
        v = stored.get(n.id)
        if v is None or n.file_id in out:
            continue
        score = float(np.max(views @ (v / max(float(np.linalg.norm(v)), 1e-12))))
        out[n.file_id] = [Hit(n.file_id, n.path, n.content_hash, score, n.timestamp, phash=n.phash, id=n.id)]
    return out


def _dist(picture: copyrank.PictureQuery, phash: str | None) -> int:
    d = picture.hash_distance(phash)
    return 64 if d is None else d


def _rank_sequences(lib: Ctx, q: Query, k: int) -> list[Match]:
    """Video query against videos: keyframe agreement (of the keyframes or of their mirrors, the
    better per file), plus soundtrack agreement when both have one."""
    store = lib.store
    if not store.has("video"):
        return []
    lib.ensure("video")
    frames = q.frames
    assert frames is not None
    views = [frames] + ([q.mirrored] if q.mirrored is not None and len(q.mirrored.vectors) else [])
    def pooled(pool: int) -> list[str]:
        groups: dict[str, list[Hit]] = {}
        for view in views:
            for f, hits in candidates(lib, "video", view.vectors, pool, q.content_hash).items():
                groups.setdefault(f, []).extend(hits)
        return shortlist(groups, pool * len(views))

    # The head: a pool of a fixed size whatever ``k``; a larger ``k`` adds a wider pool after it.
    short = pooled(SEQUENCE_POOL)
    head = set(short)
    if k > len(short):  # the head comes first: a wider pool shows only past it
        short += [f for f in pooled(2 * k) if f not in head]
    rows = store.fetch_rows("video", short, copy_fields=("phash",) if q.frame_hashes is not None else False)
    tol = max(lib.settings.video_interval * 1.5, 0.5)
    sound_scores: dict[str, float] = {}
    tracks: list[Row] = []  # the soundtracks' rows
    if q.sound is not None and store.has("audio"):
        lib.ensure("audio")
        tracks = sound_rows(store, short)
        for m in align_rows(q.sound.timestamps, q.sound.vectors, tracks, tol=2.5, source="video"):
            sound_scores[m.path] = m.score
    best: dict[str, Match] = {}
    for view in views:
        for m in align_rows(view.timestamps, view.vectors, rows, tol=tol):
            if m.path not in best or m.score > best[m.path].score:
                best[m.path] = m
    out = []
    for m in best.values():
        if m.path in sound_scores:
            m = Match(m.path, m.kind, round(0.75 * m.score + 0.25 * sound_scores[m.path], 6), m.timestamp, m.query_timestamp)
        out.append(m)
    in_head = {r.path for r in rows if r.file_id in head}
    if q.pairs is not None and tracks:  # the soundtracks' fingerprints: copies, localised in time
        out = copyrank.rerank_sounds(q.pairs, out, stored_prints(store, tracks, "video"), head=in_head,
                                     check=sample_check(lib.settings, q.samples, "video"))  # fmt: skip
    else:
        out.sort(key=lambda m: (-m.score, m.path))
    if q.frame_hashes is not None:  # the keyframes' pHashes: copies by their pictures, whatever the sound
        out = _keyframe_copies(q, out, rows)
    return sorted(out, key=lambda m: m.path not in in_head)[:k]  # stable: the head first, in its order
