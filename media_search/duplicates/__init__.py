"""Library-wide duplicates: every group of copies in the library, from what the store holds.

``find_duplicates(store, kinds=..., include_similar=...)`` reads the manifest
and the stored rows once (``gather``: one read per collection), links files by
their evidence (``links``): the same content hash (``exact``), pictures by pHash
or verified local features (``pictures``: images, an image inside a video at
its keyframe, videos sharing keyframes; proposals from pHash, mirrored pHash,
embeddings and the visual words of the stored local features (``words``),
checked by ``verify``), sounds and soundtracks by landmark votes (``sounds``),
and builds the groups with a likely original (``report``). An embedding only
proposes pairs to verify; no cosine ever makes a copy. Pair verdicts are kept
beside the library (``verdicts``): a new run checks only pairs it has not seen. With ``include_similar``, near-duplicates (close pHash and a
nearest embedding neighbour, not verified as copies) form a separate
``similar`` tier. Nothing is written, moved or deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .links import Links, Pair
from .report import CSV_FIELDS, DuplicateReport, Group, Member, build_groups

__all__ = ["find_duplicates", "DuplicateReport", "Group", "Member", "Pair", "CSV_FIELDS"]

log = logging.getLogger(__name__)

KINDS = ("image", "video", "audio")

Progress = Callable[[dict[str, Any]], None]


def find_duplicates(
    store: Any,
    *,
    kinds: Sequence[str] | None = None,
    include_similar: bool = False,
    neighbours: int | None = None,
    progress: Progress | None = None,
    cache: bool = True,
) -> DuplicateReport:
    """Groups of copies among the files of ``kinds`` (default: all) held by ``store``.

    ``neighbours``: nearest embedding rows proposed per image for verification
    (default ``pictures.NEIGHBOURS``; 0 uses pHash, keyframes and fingerprints
    only). ``cache``: keep pair verdicts beside the library (``verdicts``), so that the
    next run checks only pairs it has not seen. ``progress`` receives ``{"event": "stage", "stage": str, "total": int}``
    and ``{"event": "advance", "n": int}``.
    """
    from . import gather as g
    from . import pictures, sounds
    from .verdicts import Verdicts, verdicts_path
    from .match import one_thread
    from .verify import Verifier

    start = time.perf_counter()
    wanted = tuple(kinds) if kinds else KINDS
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"Unknown kind {unknown[0]!r}: use image, video or audio.")
    nb = pictures.NEIGHBOURS if neighbours is None else int(neighbours)

    def stage(name: str, total: int) -> None:
        if progress is not None:
            progress({"event": "stage", "stage": name, "total": total})

    def advance(name: str, n: int) -> None:
        """A stage's steps; a name ``stage:<title>`` starts a stage of ``n`` steps instead."""
        if progress is None:
            return
        if name.startswith("stage:"):
            progress({"event": "stage", "stage": name[len("stage:") :], "total": n})
        elif n:
            progress({"event": "advance", "n": n})

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    stage("reading the index", 0)
    stored = g.gather(store, wanted, vectors=nb > 0, local=True, progress=advance)
    timings["gather"] = time.perf_counter() - t0
    files = {r.file_id: r for r in stored.files.values() if r.kind in wanted}
    stored.files = files
    links = Links()
    by_hash: dict[str, list[Any]] = {}
    for rec in files.values():
        if rec.content_hash:
            by_hash.setdefault(rec.content_hash, []).append(rec)
    for recs in by_hash.values():
        recs.sort(key=lambda r: r.path)
        for other in recs[1:]:
            links.add(Pair(recs[0].path, other.path, "exact", "content_hash", confidence=1.0))
    verifier = Verifier(verdicts=Verdicts(verdicts_path(store) if cache else None))
    # Sounds are voted on their own thread while pictures are checked (the votes are numpy sorts,
    # which let the other threads run): they need nothing the picture checks make.
    voting = None if wanted == ("image",) else _start(sounds.count, stored, verifier.verdicts.last_run())
    t0 = time.perf_counter()
    try:
        if {"image", "video"} & set(wanted):
            with one_thread():
                try:
                    _pictures(store, stored, links, verifier, wanted, nb, include_similar, stage, advance)
                finally:
                    verifier.close()  # its screening threads
        timings["pictures"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        shared = matched = 0
        if voting is not None:
            stage("sound fingerprints", 0)
            shared, matched = sounds.sound_pairs(stored, links, verifier.verdicts, voting.result())
    finally:
        if voting is not None:
            voting.cancel()
    timings["sounds"] = time.perf_counter() - t0  # what the votes took beyond the pictures
    t0 = time.perf_counter()
    stage("grouping", 0)
    records = {r.path: r for r in files.values()}
    groups = build_groups(links, records, stored.durations)
    timings["groups"] = time.perf_counter() - t0
    saved = verifier.verdicts.save()
    stats = {
        "files": len(files),
        "verify_attempts": verifier.attempts,
        "verified_pairs": verifier.checks,
        "verify_s": round(verifier.seconds, 3),
        "stored_feature_checks": verifier.quick_checks,
        "stored_feature_s": round(verifier.quick_seconds, 3),
        "pixel_confirmations": verifier.confirmed,
        "pixel_confirmation_s": round(verifier.confirm_seconds, 3),
        "verdicts_reused": verifier.verdicts.hits,
        "verdicts_new": saved,
        "decoded": verifier.reads,
        "sound_pairs_sharing_landmarks": shared,
        "sounds_matched": matched,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    return DuplicateReport(groups, time.perf_counter() - start, stats)


def _start(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a thread of its own; its ``concurrent.futures.Future``."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="media-search-sounds")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def _pictures(store: Any, stored: Any, links: Links, verifier: Any, wanted: Sequence[str], nb: int, include_similar: bool,
              stage: Callable[[str, int], None], advance: Callable[[str, int], None]) -> None:  # fmt: skip
    """Pictures: image pairs, framed pictures, images in videos, videos sharing keyframes."""
    from . import pictures, videos

    if "image" in wanted:
        n = len(stored.rows.get("image") or [])
        stage("image pairs", n if nb else 0)
        pictures.image_pairs(store, stored, links, verifier, neighbours=nb, include_similar=include_similar, progress=advance)
        pictures.framed_pairs(stored, links, verifier)
        if "video" in wanted:
            stage("images in videos", n if nb else 0)
            videos.image_video_pairs(store, stored, links, verifier, neighbours=nb, progress=advance)
    if "video" in wanted:
        videos.video_pairs(stored, links)
