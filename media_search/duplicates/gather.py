"""Gather: what the store already holds about every file, read once, in bulk.

The manifest (``iter_files``) gives each file's path, kind, content hash, size
and mtime; ``fetch_rows`` gives the image rows (vector, pHash), the keyframe
rows (vector, pHash, time) and the audio window rows (landmark fingerprint,
time, source). Nothing is decoded here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..store.records import FileRecord, Row

__all__ = ["Rows", "Stored", "gather"]

#: File ids per ``fetch_rows`` call.
FETCH_CHUNK = 512


@dataclass
class Rows:
    """Rows of one collection as columns (one entry per image, keyframe or window)."""

    file_ids: list[str] = field(default_factory=list)
    timestamps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vectors: np.ndarray | None = None  # (n, dim) float32 unit vectors, when asked
    phashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # 0 where none
    has_phash: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    sources: list[str] = field(default_factory=list)  # audio: "audio" or "video"
    prints: list[np.ndarray] = field(default_factory=list)  # audio: packed landmarks per window

    def __len__(self) -> int:
        return len(self.file_ids)


@dataclass
class Stored:
    """Everything the duplicate search reads from the store."""

    files: dict[str, FileRecord]  # by file id, finished files only
    rows: dict[str, Rows]  # by kind
    durations: dict[str, float]  # video and audio files: seconds


def _hex64(values: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros(len(values), dtype=np.uint64)
    ok = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v:
            try:
                out[i] = np.uint64(int(v, 16))
                ok[i] = True
            except ValueError:
                pass
    return out, ok


def gather(
    store: Any,
    kinds: Sequence[str],
    *,
    vectors: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> Stored:
    """Read the manifest and the rows of ``kinds`` (``audio`` rows of videos come with ``video``)."""
    files = {r.file_id: r for r in store.iter_files(state="done", strong=False)} if store.has("files") else {}
    by_kind: dict[str, list[str]] = {}
    for fid, rec in files.items():
        by_kind.setdefault(rec.kind, []).append(fid)
    wanted = set(kinds)
    rows: dict[str, Rows] = {}
    durations: dict[str, float] = {}
    for kind in ("image", "video"):
        if kind not in wanted or not store.has(kind):
            continue
        raw = _fetch(store, kind, sorted(by_kind.get(kind, [])), vectors=vectors, progress=progress)
        r = Rows(file_ids=[x.file_id for x in raw])
        r.timestamps = np.array([float(x.timestamp or 0.0) for x in raw])
        if vectors:
            r.vectors = np.asarray([x.vector for x in raw], dtype=np.float32).reshape(len(raw), -1)
        r.phashes, r.has_phash = _hex64([x.phash for x in raw])
        rows[kind] = r
        for x in raw:
            if kind == "video":
                durations[x.file_id] = float(x.duration or 0.0)
    audio_of = sorted(by_kind.get("audio", []) if "audio" in wanted else []) + sorted(by_kind.get("video", []) if wanted & {"video", "audio"} else [])
    if audio_of and store.has("audio"):
        raw = _fetch(store, "audio", audio_of, vectors=False, progress=progress)
        r = Rows(file_ids=[x.file_id for x in raw])
        r.timestamps = np.array([float(x.timestamp or 0.0) for x in raw])
        r.sources = [x.source or "audio" for x in raw]
        r.prints = [np.asarray(x.fp if x.fp is not None else [], dtype=np.int64) for x in raw]
        rows["audio"] = r
        for x in raw:
            durations.setdefault(x.file_id, float(x.duration or 0.0))
    return Stored(files=files, rows=rows, durations=durations)


def _fetch(store: Any, kind: str, fids: list[str], *, vectors: bool, progress: Callable[[str, int], None] | None) -> list[Row]:
    out: list[Row] = []
    for start in range(0, len(fids), FETCH_CHUNK):
        chunk = fids[start : start + FETCH_CHUNK]
        out.extend(store.fetch_rows(kind, chunk, vectors=vectors and kind != "audio", copy_fields=True))
        if progress is not None:
            progress(f"reading {kind} rows", len(chunk))
    return out
