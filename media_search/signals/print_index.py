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

__all__ = ["print_index", "candidates", "vote", "MAX_CANDIDATES", "MIN_HITS", "VOTE_BLOCK"]

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


def candidates(store: MilvusStore, query: fa.Pairs, *, source: str | None = None, exclude: str | None = None) -> list[str]:
    """File ids (best first) whose stored landmarks agree with the query's at one time offset;
    ``exclude``: a content hash whose files are left out (the query's own file: its rows are not
    fetched only to be dropped, which for an 8-hour recording cost 500 MB)."""
    if len(query) == 0:
        return []
    idx = print_index(store)
    ranked = vote(idx, query, source=source, limit=MAX_CANDIDATES + (exclude is not None))
    ids = idx.file_ids(ranked, exclude_hash=exclude)
    return [ids[f] for f in ranked if f in ids][:MAX_CANDIDATES]


#: Query frames voted on at a time (5 minutes at 62.5 frames/s, a whole number of ``TILE`` slots):
#: a long query's joins are this long whatever its length, so their memory is flat; a query of up
#: to this length is one block, as before. (The postings are looked up once for the whole query:
#: a 4-hour query's 5-minute blocks fetched 35 times as many postings as the whole query does.)
VOTE_BLOCK = 18_750
#: Distinct (file, offset bin) counts kept per scale between blocks (16 MB); past it, only the bins
#: with the most votes so far are kept (a copy votes at its offset in every block it spans, stray
#: agreements are one or two votes each).
KEEP_BINS = 1_000_000


def vote(idx: PrintIndex, query: fa.Pairs, *, source: str | None = None, limit: int = MAX_CANDIDATES) -> list[int]:
    """The index's file numbers with the most query time slots at one offset (64 ms bins), best first.

    The query is voted on in blocks of ``VOTE_BLOCK`` frames. A vote is a distinct (file, offset bin,
    query slot) and the blocks split query time at slot edges, so the per-bin counts of the blocks
    add up to those of the whole query. Each block joins its share (by length) of
    ``audio.JOIN_BUDGET`` pairs: a long, repetitive query costs what one join of the whole did."""
    best = scores(idx, query, source=source)
    ranked = sorted((f for f, c in best.items() if c >= MIN_HITS), key=lambda f: (-best[f], f))
    return ranked[:limit]


def scores(idx: PrintIndex, query: fa.Pairs, *, source: str | None = None) -> dict[int, int]:
    """Each file number's votes at its best offset and scale (``vote``)."""
    if not len(query):
        return {}
    t1 = query.t1
    order = None if len(t1) < 2 or bool(np.all(t1[1:] >= t1[:-1])) else np.argsort(t1, kind="stable")
    if order is not None:
        query = fa.Pairs(*(getattr(query, k)[order] for k in ("f1", "f2", "dt", "t1")))
        t1 = query.t1
    lib = _postings(idx, query, source)  # once: a long query's blocks share most of their hashes
    if lib is None:
        return {}
    edges = np.searchsorted(t1, np.arange(int(t1[0]) // VOTE_BLOCK, int(t1[-1]) // VOTE_BLOCK + 2) * VOTE_BLOCK)
    parts: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {}
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            block = fa.Pairs(query.f1[a:b], query.f2[a:b], query.dt[a:b], query.t1[a:b])
            budget = max(1, fa.JOIN_BUDGET * (b - a) // len(query))  # the whole query's, shared by length
            for scale, got in _vote_block(lib, block, budget).items():
                kept = parts.setdefault(scale, [])
                kept.append(got)
                if sum(len(k) for k, _ in kept) > KEEP_BINS:
                    kept[:] = [_merge(kept, prune=True)]
    files, best = [], []
    for fb, counts in (_merge(kept, prune=False) for kept in parts.values()):  # per scale: each file's best bin
        f = fb >> 22
        uf, inv = np.unique(f, return_inverse=True)
        top = np.zeros(len(uf), np.int64)
        np.maximum.at(top, inv, counts)
        files.append(uf)
        best.append(top)
    if not files:
        return {}
    uf, inv = np.unique(np.concatenate(files), return_inverse=True)
    most = np.zeros(len(uf), np.int64)
    np.maximum.at(most, inv, np.concatenate(best))
    return dict(zip(uf.tolist(), most.tolist()))


def _postings(idx: PrintIndex, query: fa.Pairs, source: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(hash, file, time) of the postings of the query's hashes at every scale, in hash order."""
    lib_h, lib_f, lib_t = idx.lookup(np.concatenate([query.hashes(s) for s in fa.SCALES]), source=source)
    if not len(lib_h):
        return None
    if len(lib_h) > 1 and not bool(np.all(lib_h[1:] >= lib_h[:-1])):  # the index answers in hash order
        order = np.argsort(lib_h, kind="stable")
        lib_h, lib_f, lib_t = lib_h[order], lib_f[order], lib_t[order]
    return lib_h, lib_f, lib_t


def _vote_block(lib: tuple[np.ndarray, np.ndarray, np.ndarray], query: fa.Pairs, budget: int) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Per scale: the (file, offset bin) keys this block of the query votes for, and its votes
    (``budget``: the block's share of ``audio.JOIN_BUDGET``)."""
    lib_h, lib_f, lib_t = lib
    out: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for scale in fa.SCALES:
        qi, li = fa.hash_join(lib_h, query.hashes(scale), budget=budget)
        if not len(li):
            continue
        bins = np.floor((lib_t[li] - query.t1[qi] * scale) / 4.0).astype(np.int64) + (1 << 21)  # 64 ms, >= 0
        slot = (query.t1[qi] % VOTE_BLOCK) // fa.TILE  # a block's slots: fewer than 2**20
        # one vote per (file, offset bin, query slot), as in ``audio._peak``: a held note votes once
        key = np.unique((lib_f[li] << 42) | (bins << 20) | slot)
        del qi, li, bins, slot
        out[scale] = np.unique(key >> 20, return_counts=True)
    return out


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], *, prune: bool) -> tuple[np.ndarray, np.ndarray]:
    """The (key, count) sets of ``parts`` summed; ``prune``: past ``KEEP_BINS`` keys, the most counted."""
    if len(parts) == 1:
        keys, total = parts[0]
    else:
        keys, inv = np.unique(np.concatenate([k for k, _ in parts]), return_inverse=True)
        total = np.bincount(inv, weights=np.concatenate([c for _, c in parts]), minlength=len(keys)).astype(np.int64)
    if prune and len(keys) > KEEP_BINS:
        keep = np.sort(np.argpartition(-total, KEEP_BINS)[:KEEP_BINS])
        keys, total = keys[keep], total[keep]
    return keys, total
