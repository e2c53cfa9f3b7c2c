"""The indexer's rows as columns: ids, vectors and each collection's fields (``store.schema``),
with the copy signals of each frame and window (``signals``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..decode.file import Decoded
from ..embed.embedders import Embedded
from ..identity import row_id
from ..signals import add_copy_signals
from ..store.schema import FP_CAPACITY

__all__ = ["columns", "phashes", "local", "prints", "sequence_columns", "concat"]


def columns(ids: list[str], vectors: np.ndarray, fields: dict[str, Any]) -> dict[str, Any]:
    n = len(ids)
    cols: dict[str, Any] = {"id": ids, "vector": vectors}
    for name, value in fields.items():
        cols[name] = value if isinstance(value, (list, np.ndarray)) else [value] * n
    return cols


def phashes(d: Decoded) -> list[str]:
    """One pHash per frame (copy detection); computed here if the decode stage did not."""
    if d.phashes is None:
        add_copy_signals(d)
    return list(d.phashes or [])


def local(d: Decoded) -> list[str]:
    """Each frame's packed local features; empty (never verified, pHash only) where there are none."""
    if d.phashes is None:
        add_copy_signals(d)
    return list(d.local) if d.local is not None and len(d.local) == d.n_frames else [""] * d.n_frames


def prints(d: Decoded, sound: Embedded) -> list[list[int]]:
    """The audio fingerprint shared among the window rows by time (``signals.audio.split_by_time``)."""
    from ..signals.audio import split_by_time

    if d.prints is None:
        add_copy_signals(d)
    parts = split_by_time(d.prints if d.prints is not None else np.zeros(0, np.int64), [float(t) for t in sound.timestamps], cap=FP_CAPACITY)
    return [p.tolist() for p in parts]


def sequence_columns(fid: str, tag: str, emb: Embedded, fields: dict[str, Any]) -> dict[str, Any]:
    ts = [round(float(t), 3) for t in emb.timestamps]
    ids = [row_id(fid, tag, t) for t in ts]
    return columns(ids, emb.vectors, {**fields, "timestamp": ts, "duration": float(emb.duration or 0.0)})


def concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in parts[0]:
        if name == "vector":
            out[name] = np.concatenate([np.asarray(p[name], dtype=np.float32) for p in parts])
        else:
            out[name] = [v for p in parts for v in p[name]]
    return out
