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

__all__ = ["print_index", "candidates", "vote", "MAX_CANDIDATES", "MIN_HITS"]

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


def candidates(store: MilvusStore, query: fa.Pairs, *, source: str | None = None) -> list[str]:
    """File ids (best first) whose stored landmarks agree with the query's at one time offset."""
    if len(query) == 0:
        return []
    idx = print_index(store)
    ranked = vote(idx, query, source=source)
    ids = idx.file_ids(ranked)
    return [ids[f] for f in ranked if f in ids]


def vote(idx: PrintIndex, query: fa.Pairs, *, source: str | None = None, limit: int = MAX_CANDIDATES) -> list[int]:
    """The index's file numbers with the most query time slots at one offset (64 ms bins), best first."""
    hashes = np.concatenate([query.hashes(s) for s in fa.SCALES])
    lib_h, lib_f, lib_t = idx.lookup(hashes, source=source)
    if not len(lib_h):
        return []
    if len(lib_h) > 1 and not bool(np.all(lib_h[1:] >= lib_h[:-1])):  # the index answers in hash order
        order = np.argsort(lib_h, kind="stable")
        lib_h, lib_f, lib_t = lib_h[order], lib_f[order], lib_t[order]
        del order
    best = np.zeros(0, np.int64)
    files = np.zeros(0, np.int64)
    for scale in fa.SCALES:
        qi, li = fa.hash_join(lib_h, query.hashes(scale))
        if not len(li):
            continue
        bins = np.floor((lib_t[li] - query.t1[qi] * scale) / 4.0).astype(np.int64) + (1 << 21)  # 64 ms, >= 0
        slot = query.t1[qi] // fa.TILE
        # one vote per (file, offset bin, query slot), as in ``audio._peak``: a held note votes once
        key = np.unique((lib_f[li] << 42) | (bins << 20) | slot)
        fb, counts = np.unique(key >> 20, return_counts=True)
        f = fb >> 22
        top = np.zeros(len(np.unique(f)), np.int64)
        uf, inv = np.unique(f, return_inverse=True)
        np.maximum.at(top, inv, counts)
        files, best = np.concatenate([files, uf]), np.concatenate([best, top])
    if not len(files):
        return []
    uf, inv = np.unique(files, return_inverse=True)
    most = np.zeros(len(uf), np.int64)
    np.maximum.at(most, inv, best)
    best = dict(zip(uf.tolist(), most.tolist()))
    ranked = sorted((f for f, c in best.items() if c >= MIN_HITS), key=lambda f: (-best[f], f))
    return ranked[:limit]
