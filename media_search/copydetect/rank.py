"""Fuse copy evidence into a ranking: verified copies first, then the rest by embedding score.

``query`` hands over the embedding candidates of a wider pool than ``k``; these
functions decide which of them are copies and re-rank. They never read an
embedding score to decide (random weights put every cosine near 0.99), only
to order what is not a copy.

* pictures (``rerank_pictures``): every candidate whose stored pHash is
  within ``HASH_SHORTLIST`` bits of the query or its mirror, plus the
  ``VERIFY_TOP`` best by embedding, is verified with local features
  (``copydetect.image``); the library file (or the video frame at the
  matched keyframe) is read at query time.
* sounds (``rerank_sounds``): each candidate's stored landmark hashes are
  matched against the query's (``copydetect.audio``); a copy also gets the
  matched offset as its ``timestamp``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..types import Match
from . import audio as fa
from . import image as fi

__all__ = ["VERIFY_TOP", "HASH_SHORTLIST", "PictureQuery", "Candidate", "rerank_pictures", "rerank_sounds", "order"]

log = logging.getLogger(__name__)

VERIFY_TOP = 8  # best candidates by embedding that are always verified
HASH_SHORTLIST = 16  # bits: candidates this close by pHash are verified too
MAX_VERIFY = 24


@dataclass
class Candidate:
    """A file found by the embeddings, with what copy detection needs about it."""

    match: Match
    phash: str | None = None  # of the matched row (image, or the keyframe at match.timestamp)


class PictureQuery:
    """A query picture: its pHashes (direct and mirrored; of the main picture too when it sits in a
    frame such as a screenshot, ``inner``) now, its local features when first needed."""

    def __init__(self, path: str | Path | None, prepared: np.ndarray, picture: np.ndarray | None = None) -> None:
        self.path = path
        self.hashes = list(fi.phash_pair(prepared))
        self._picture = picture
        self._features: tuple[fi.Features, fi.Features] | None = None
        self.inner: np.ndarray | None = None  # the prepared main picture, when framed (a screenshot)
        box = fi.content_box(self.picture)
        if box is not None:
            from ..extractors.image import prepare

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
        if self._features is None:
            pic = self.picture
            self._features = (fi.features(pic), fi.features(np.ascontiguousarray(pic[:, ::-1])))
        return self._features


def rerank_pictures(q: PictureQuery, cands: Sequence[Candidate]) -> list[Match]:
    """The candidates with ``copy`` / ``copy_confidence`` set, in final order (see ``order``)."""
    dist = [q.hash_distance(c.phash) for c in cands]
    by_score = sorted(range(len(cands)), key=lambda i: -cands[i].match.score)
    chosen = list(by_score[:VERIFY_TOP])
    near = sorted((i for i, d in enumerate(dist) if d is not None and d <= HASH_SHORTLIST and i not in chosen), key=lambda i: dist[i])  # type: ignore[arg-type,return-value]
    chosen = (chosen + near)[:MAX_VERIFY]
    out = []
    for i, c in enumerate(cands):
        m = c.match
        v = None
        if i in chosen:
            lib = fi.file_features(m.path, m.timestamp if m.kind == "video" else None)
            if lib is not None:
                qf, qm = q.features()
                v = fi.verify_mirrored(qf, qm, lib)
        ev = fi.decide(v, dist[i])
        out.append(dataclasses.replace(m, copy=ev.copy, copy_confidence=ev.confidence if (v is not None or dist[i] is not None) else None))
    return order(out)


def rerank_sounds(query: fa.Pairs, matches: Sequence[Match], prints: dict[str, list[np.ndarray]]) -> list[Match]:
    """``prints``: packed landmarks of each candidate file (by path), any number of arrays each."""
    files = [np.concatenate(prints[m.path]) if prints.get(m.path) else np.zeros(0, np.int64) for m in matches]
    found = fa.match(query, files)
    n_slots = fa.slots(query)
    out = []
    for m, f in zip(matches, found):
        ev = fa.decide(f.votes, n_slots, f.runner_up)
        if ev.copy:
            m = dataclasses.replace(m, timestamp=round(max(0.0, f.offset), 3), query_timestamp=0.0 if f.offset >= 0 else round(-f.offset / f.scale, 3))
        out.append(dataclasses.replace(m, copy=ev.copy, copy_confidence=ev.confidence))
    # Copies first; below them, fingerprint agreement (votes, in the confidence) before the embedding
    # score: a noisy copy that falls short of the verdict still beats a file that shares nothing.
    return sorted(out, key=lambda m: (not m.copy, -(m.copy_confidence or 0.0), -m.score, m.path))


def order(matches: Sequence[Match]) -> list[Match]:
    """Copies first (most confident first), then everything else by score; ties by path."""
    return sorted(matches, key=lambda m: (not m.copy, -(m.copy_confidence or 0.0) if m.copy else 0.0, -m.score, m.path))
