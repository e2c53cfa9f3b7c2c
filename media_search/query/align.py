"""Time-consistent agreement between two sequences of embeddings.

Used to score a video against a video (keyframes) and a sound against a sound
(audio windows). A candidate is not judged by one lucky frame: every query
item votes with its best match in the candidate *near the same time offset*,
and the score is the mean over all query items. The offset with the best mean
wins; it gives where the match starts in the result (``timestamp``) and in the
query (``query_timestamp``).

A copy played at another speed has no single offset; the order-free agreement
(each query item's best match anywhere) is blended in, so such copies still
rank first while exact-time matches rank higher still.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Alignment", "align"]


@dataclass(frozen=True)
class Alignment:
    score: float  # cosine scale
    offset: float  # result time = query time + offset
    timestamp: float  # where the matching part starts in the result
    query_timestamp: float  # where it starts in the query
    aligned: float  # mean best similarity near the offset
    unaligned: float  # mean best similarity anywhere


def align(
    q_ts: np.ndarray,
    q_vecs: np.ndarray,
    c_ts: np.ndarray,
    c_vecs: np.ndarray,
    *,
    tolerance: float,
    max_offsets: int = 64,
) -> Alignment:
    """Score candidate sequence ``c`` against query sequence ``q`` (unit vectors, cosine).

    ``tolerance``: how far (s) a matching item may sit from the offset line,
    typically the sampling interval or the window hop.
    """
    q_ts = np.asarray(q_ts, dtype=np.float64)
    c_ts = np.asarray(c_ts, dtype=np.float64)
    sims = np.asarray(q_vecs, dtype=np.float32) @ np.asarray(c_vecs, dtype=np.float32).T  # (m, n)
    best_j = sims.argmax(axis=1)
    best = sims[np.arange(len(q_ts)), best_j]
    unaligned = float(best.mean())

    # Offsets proposed by each query item's strongest matches.
    top = min(3, sims.shape[1])
    idx = np.argpartition(-sims, top - 1, axis=1)[:, :top] if top < sims.shape[1] else np.tile(np.arange(sims.shape[1]), (len(q_ts), 1))
    proposals = (c_ts[idx] - q_ts[:, None]).ravel()
    weights = np.take_along_axis(sims, idx, axis=1).ravel()
    order = np.argsort(-weights)
    offsets = _dedupe(proposals[order], tolerance / 2)[:max_offsets]

    # An item with no candidate item near the line votes with the candidate's floor.
    floor = float(sims.min())
    gap = c_ts[None, :] - q_ts[:, None]  # (m, n)
    per_item = np.empty((len(offsets), len(q_ts)), dtype=np.float32)
    for k, off in enumerate(offsets):
        near = np.abs(gap - off) <= tolerance
        row = np.where(near, sims, -np.inf).max(axis=1)
        per_item[k] = np.where(np.isfinite(row), row, floor)
    means = per_item.mean(axis=1)
    o = int(means.argmax())
    aligned = float(means[o])
    offset = float(offsets[o])

    matched = per_item[o] >= (aligned + floor) / 2
    first = int(np.argmax(matched)) if matched.any() else 0
    query_timestamp = float(q_ts[first])
    timestamp = max(0.0, query_timestamp + offset)
    # Snap to the nearest real candidate item on the line.
    j = int(np.argmin(np.abs(c_ts - timestamp)))
    if abs(c_ts[j] - timestamp) <= tolerance:
        timestamp = float(c_ts[j])
    score = 0.5 * aligned + 0.5 * unaligned
    return Alignment(score, offset, timestamp, query_timestamp, aligned, unaligned)


def _dedupe(values: np.ndarray, eps: float) -> np.ndarray:
    kept: list[float] = []
    for v in values:
        if all(abs(v - k) > eps for k in kept):
            kept.append(float(v))
    return np.asarray(kept if kept else [0.0], dtype=np.float64)
