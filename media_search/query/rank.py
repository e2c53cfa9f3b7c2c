"""Rank: rows grouped per file and aligned in time, copy evidence fused in, copies first.

``shortlist`` and ``align_rows`` turn the store's hits and
rows into per-file candidates (``query.align`` scores a sequence against a
file's rows). The rest fuses copy evidence into a ranking: verified copies
first, then the rest by embedding score.

``query`` hands over the embedding candidates of a wider pool than ``k``; these
functions decide which of them are copies and re-rank. They never read an
embedding score to decide (random weights put every cosine near 0.99), only
to order what is not a copy.

* pictures (``rerank_pictures``): every candidate whose stored pHash is
  within ``HASH_SHORTLIST`` bits of the query or its mirror, plus the
  ``VERIFY_TOP`` best by embedding, is a copy candidate. A pHash within
  ``signals.image``'s sure distance settles it; the others are verified with
  local features: the query's (computed once), against the candidate's
  stored at index time (fetched by row id in one store call; the library
  file, or the video frame at the keyframe, is read only for rows stored
  without any). The query's mirror is only extracted and tried while no copy
  is settled: once one is, the rest are checked against the direct view only.
* sounds (``rerank_sounds``): each candidate's stored landmark hashes are
  matched against the query's (``signals.audio``); a copy also gets the
  matched offset as its ``timestamp``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..signals import audio as fa
from ..signals import image as fi
from ..signals.waveform import CHECK_BELOW
from ..types import Kind, Match
from .align import align

if TYPE_CHECKING:
    from ..store.records import Hit, Row

__all__ = [
    "VERIFY_TOP",
    "HASH_SHORTLIST",
    "PictureQuery",
    "Candidate",
    "shortlist",
    "align_rows",
    "rerank_pictures",
    "rerank_sounds",
    "order",
]

log = logging.getLogger(__name__)

VERIFY_TOP = 8  # best candidates by embedding that are always verified
HASH_SHORTLIST = 16  # bits: candidates this close by pHash are verified too
MAX_VERIFY = 24


@dataclass
class Candidate:
    """A file found by the embeddings, with what copy detection needs about it."""

    match: Match
    phash: str | None = None  # of the matched row (image, or the keyframe at match.timestamp)
    row_id: str | None = None  # that row's id (its stored local features)
    head: bool = True  # in the pool copy detection checks (``query.search``: the same whatever ``k``)


class PictureQuery:
    """A query picture: its pHashes (direct and mirrored; of the main picture too when it sits in a
    frame such as a screenshot, ``inner``) now, its local features when first needed."""

    def __init__(self, path: str | Path | None, prepared: np.ndarray, picture: np.ndarray | None = None) -> None:
        self.path = path
        self.hashes = list(fi.phash_pair(prepared))
        self._picture = picture
        self._local: np.ndarray | None = None
        self._direct: fi.Features | None = None
        self._mirrored: fi.Features | None = None
        self._pending: Future[fi.Features] | None = None  # ``prefetch``'s
        self.inner: np.ndarray | None = None  # the prepared main picture, when framed (a screenshot)
        box = fi.content_box(self.picture)
        if box is not None:
            from ..decode.image import prepare

            top, bottom, left, right = box
            self.inner = prepare(np.ascontiguousarray(self.picture[top:bottom, left:right]))
            self.hashes += fi.phash_pair(self.inner)

    @property
    def picture(self) -> np.ndarray:
        if self._picture is None:
            from ..decode.image import open_image

            self._picture = np.asarray(open_image(self.path, min_side=fi.MAX_SIDE))  # type: ignore[arg-type]
        return self._picture

    def hash_distance(self, stored: str | None) -> int | None:
        if not stored:
            return None
        try:
            h = int(stored, 16)
        except ValueError:
            return None
        return min(fi.hamming(x, h) for x in self.hashes)

    def features(self) -> tuple[fi.Features, fi.Features]:
        """Local features of the picture and of its mirror."""
        return self.direct(), self.mirrored()

    def prefetch(self) -> None:
        """Start the local features in a thread, so that they overlap the embedding and the vector
        search (OpenCV and ONNX Runtime let go of the GIL): ``direct`` then only waits for them."""
        if self._direct is not None or self._pending is not None:
            return
        pending: Future[fi.Features] = Future()

        def work() -> None:
            try:
                pending.set_result(fi.features(self.local))
            except BaseException as e:  # raised again by ``direct``, in the caller's thread
                pending.set_exception(e)

        threading.Thread(target=work, name="media-search-local-features", daemon=True).start()
        self._pending = pending

    def direct(self) -> fi.Features:
        if self._direct is None:
            pending, self._pending = self._pending, None
            self._direct = pending.result() if pending is not None else fi.features(self.local)
        return self._direct

    def mirrored(self) -> fi.Features:
        if self._mirrored is None:
            self._mirrored = fi.mirror_features(self.direct())  # SIFT's bins permuted: no second pass
        return self._mirrored

    @property
    def local(self) -> np.ndarray:
        """The picture as local features see it (``signals.image.local_picture``), as stored ones were made."""
        if self._local is None:
            self._local = fi.local_picture(self.picture)
        return self._local


def shortlist(groups: dict[str, list[Hit]], pool: int) -> list[str]:
    """The ``pool`` files with the most support (sum of their hits' scores)."""
    support = {f: sum(h.score for h in hs) for f, hs in groups.items()}
    return sorted(support, key=lambda f: -support[f])[:pool]


def align_rows(
    q_ts: np.ndarray, q_vecs: np.ndarray, rows: Sequence[Row], *, tol: float, source: str | None = None
) -> list[Match]:
    """One match per file: the query sequence aligned with the file's rows (of ``source`` only, if given)."""
    per_file: dict[str, list[Row]] = {}
    for r in rows:
        if source is not None and (r.source or source) != source:
            continue
        per_file.setdefault(r.file_id, []).append(r)
    out = []
    for items in per_file.values():
        items.sort(key=lambda r: r.timestamp or 0.0)
        c_ts = np.array([r.timestamp for r in items])
        c_vecs = np.array([r.vector for r in items], dtype=np.float32)
        a = align(q_ts, q_vecs, c_ts, c_vecs, tolerance=tol)
        kind: Kind = "video" if (source == "video" or items[0].source is None) else "audio"
        out.append(Match(items[0].path, kind, round(a.score, 6), round(a.timestamp, 3), round(a.query_timestamp, 3)))
    return out


#: Reads the stored local features of candidates (``pack_features`` text or None, in order).
StoredFeatures = Callable[[Sequence[Candidate]], Sequence["str | None"]]


def rerank_pictures(q: PictureQuery, cands: Sequence[Candidate], stored: StoredFeatures | None = None) -> list[Match]:
    """The candidates with ``copy`` / ``copy_confidence`` set, in final order (see ``order``).

    ``stored`` gives the candidates' index-time local features; without it, or
    for a row stored without any, the library file is read (``file_features``).
    """
    dist = [q.hash_distance(c.phash) for c in cands]
    # Ties by path: the store returns rows of equal score in no fixed order (two processes chose
    # different files to check, and so flagged different ones, for the same query).
    by_score = sorted(range(len(cands)), key=lambda i: (-cands[i].match.score, cands[i].match.path))
    chosen = list(by_score[:VERIFY_TOP])
    near = sorted((i for i, d in enumerate(dist) if d is not None and d <= HASH_SHORTLIST and i not in chosen), key=lambda i: (dist[i], cands[i].match.path))  # type: ignore[arg-type,return-value]
    chosen = (chosen + near)[:MAX_VERIFY]
    sure = {i for i in chosen if dist[i] is not None and dist[i] <= fi.HASH_SURE}  # type: ignore[operator]
    # The most promising first (nearest by pHash, then by embedding): the copy is usually settled early.
    todo = sorted((i for i in chosen if i not in sure), key=lambda i: (64 if dist[i] is None else dist[i], -cands[i].match.score, cands[i].match.path))
    texts = list(stored([cands[i] for i in todo])) if (stored is not None and todo) else [None] * len(todo)
    settled = bool(sure)
    verified: dict[int, fi.Verification] = {}
    for i, text in zip(todo, texts):
        m = cands[i].match
        lib = fi.unpack_features(text) if text else fi.file_features(m.path, m.timestamp if m.kind == "video" else None)
        if lib is None:
            continue
        v = fi.verify(q.direct(), lib)
        if not settled and v.inliers < fi.INLIERS_SURE:
            w = fi.verify(q.mirrored(), lib)
            v = fi.Verification(w.inliers, w.matches, True) if w.inliers > v.inliers else v
        verified[i] = v
        settled = settled or fi.decide(v, dist[i]).confidence >= 1.0
    out = []
    for i, c in enumerate(cands):
        v = verified.get(i)
        ev = fi.decide(v, dist[i])
        out.append(dataclasses.replace(c.match, copy=ev.copy, copy_confidence=ev.confidence if (v is not None or dist[i] is not None) else None))
    return order(out)


def rerank_sounds(query: fa.Pairs, matches: Sequence[Match], prints: dict[str, list[np.ndarray]],
                  *, head: Collection[str] | None = None,
                  check: Callable[[str, fa.AudioMatch], bool | None] | None = None) -> list[Match]:  # fmt: skip
    """``prints``: packed landmarks of each candidate file (by path), any number of arrays each.

    ``head``: the paths whose copies may outvote another (``signals.audio.outvoted``), all when
    None. The callers pass the pool that does not depend on ``k``, so neither do its verdicts.
    ``check``: asked about each copy whose fingerprint agreement is weak (``signals.waveform``):
    whether the file's samples are the query's (False: another take of the same words, not a copy),
    None when it cannot tell (then the pair share decides); ``query.sounds.sample_check``."""
    files = (np.concatenate(prints[m.path]) if prints.get(m.path) else np.zeros(0, np.int64) for m in matches)
    found = fa.match(query, files)  # one file's landmarks at a time
    n_slots = fa.slots(query)
    evidence = [_heard(m.path, f, n_slots, check) for m, f in zip(matches, found)]
    copies = [f for m, f, ev in zip(matches, found, evidence) if ev.copy and (head is None or m.path in head)]
    out = []
    for m, f, ev in zip(matches, found, evidence):
        if ev.copy and any(fa.outvoted(f, c) for c in copies):  # a likeness of a better copy's stretch
            ev = fa.decide_match(f, n_slots, outvoted=True)
        if ev.copy:
            m = dataclasses.replace(m, timestamp=round(max(0.0, f.offset), 3), query_timestamp=0.0 if f.offset >= 0 else round(-f.offset / f.scale, 3))
        out.append(dataclasses.replace(m, copy=ev.copy, copy_confidence=ev.confidence))
    # Copies first; below them, fingerprint agreement (votes, in the confidence) before the embedding
    # score: a noisy copy that falls short of the verdict still beats a file that shares nothing.
    return sorted(out, key=lambda m: (not m.copy, -(m.copy_confidence or 0.0), -m.score, m.path))


def _heard(path: str, f: fa.AudioMatch, n_slots: int, check: Callable[[str, fa.AudioMatch], bool | None] | None) -> fa.AudioEvidence:
    """The fingerprint's verdict on ``f``, a weak copy's (pair share under ``CHECK_BELOW``) with
    what ``check`` finds in the samples (``signals.audio.decide``'s ``heard``)."""
    ev = fa.decide_match(f, n_slots, heard=True)  # the rule but for the pair share
    if ev.copy and f.pair_share < CHECK_BELOW:
        return fa.decide_match(f, n_slots, heard=check(path, f) if check is not None else None)
    return ev


def _order_key(m: Match) -> tuple[bool, float, float, str]:
    return (not m.copy, -(m.copy_confidence or 0.0) if m.copy else 0.0, -m.score, m.path)


def order(matches: Sequence[Match]) -> list[Match]:
    """Copies first (most confident first), then everything else by score; ties by path."""
    return sorted(matches, key=_order_key)


def merge(ranked: Sequence[Sequence[Match]]) -> list[Match]:
    """One list from several (one per kind searched), each kept in its own order: at each step the
    first of the lists' next items by ``order``'s key. Each list's head does not depend on ``k``
    (see ``query.search``), so neither does the merged one: ``k`` only cuts it."""
    lists = [list(r) for r in ranked if r]
    at = [0] * len(lists)
    out = []
    while True:
        nxt = [i for i in range(len(lists)) if at[i] < len(lists[i])]
        if not nxt:
            return out
        i = min(nxt, key=lambda j: _order_key(lists[j][at[j]]))
        out.append(lists[i][at[i]])
        at[i] += 1
