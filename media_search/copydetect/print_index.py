"""Candidates from the fingerprint itself: the query's landmark hashes looked up in the store's
hash index (``store.prints``), votes per (file, time offset), the files with the sharpest offset
peaks handed on to ``audio.match`` for the verdict.

This is the design of audfprint, Dejavu and Shazam: which file comes first for an edited copy
no longer depends on where the embeddings rank it, nor on ``k``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from . import audio as fa

if TYPE_CHECKING:
    from ..store.milvus import MilvusStore
    from ..store.prints import PrintIndex

__all__ = ["print_index", "candidates", "MAX_CANDIDATES", "MIN_HITS"]

log = logging.getLogger(__name__)

MAX_CANDIDATES = 16  # files handed to ``audio.match`` (and to the ranking) per query
MIN_HITS = 3  # query time slots agreeing on one offset before a file is a candidate at all


def print_index(store: MilvusStore) -> PrintIndex:
    """The store's hash index, opened once per store object and synced with its manifest."""
    from ..store.prints import PrintIndex

    idx = getattr(store, "_print_index", None)
    if idx is None or idx.version != fa.FP_VERSION:
        idx = PrintIndex(store, fa.FP_VERSION)
        store._print_index = idx  # type: ignore[attr-defined]
    idx.sync()
    return idx


def candidates(store: MilvusStore, query: fa.Pairs, *, source: str | None = None, exclude: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """File ids (best first) whose stored landmarks agree with the query's at one time offset."""
    if len(query) == 0:
        return []
    idx = print_index(store)
    hashes = np.concatenate([query.hashes(s) for s in fa.SCALES])
    lib_h, lib_f, lib_t = idx.lookup(hashes, source=source)
    if not len(lib_h):
        return []
    order = np.argsort(lib_h, kind="stable")
    lib_h, lib_f, lib_t = lib_h[order], lib_f[order], lib_t[order]
    best: dict[int, int] = {}
    for scale in fa.SCALES:
        qh = query.hashes(scale)
        lo = np.searchsorted(lib_h, qh, side="left")
        hi = np.searchsorted(lib_h, qh, side="right")
        n = hi - lo
        if n.sum() == 0:
            continue
        qi = np.repeat(np.arange(len(qh)), n)
        li = np.concatenate([np.arange(a, b) for a, b in zip(lo[n > 0], hi[n > 0])])
        bins = np.floor((lib_t[li] - query.t1[qi] * scale) / 4.0).astype(np.int64)  # 64 ms
        slot = query.t1[qi] // fa.TILE
        key = np.unique(np.stack([lib_f[li], bins, slot], axis=1), axis=0)  # one vote per query slot
        fb, counts = np.unique(key[:, :2], axis=0, return_counts=True)
        for (f, _), c in zip(fb.tolist(), counts.tolist()):
            if c > best.get(f, 0):
                best[f] = c
    ranked = sorted((f for f, c in best.items() if c >= MIN_HITS), key=lambda f: -best[f])
    ids = idx.file_ids(ranked[: MAX_CANDIDATES + len(exclude)])
    return [ids[f] for f in ranked if f in ids and ids[f] not in exclude][:MAX_CANDIDATES]
