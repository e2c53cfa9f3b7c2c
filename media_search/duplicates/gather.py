"""Gather: what the store already holds about every file, read once, in bulk.

The manifest (``iter_files``) gives each file's path, kind, content hash, size
and mtime; one ``all_rows`` read per collection gives the image rows (vector,
pHash, local features), the keyframe rows (vector, pHash, local features,
time) and the audio window rows (landmark fingerprint, time, source). Nothing
is decoded here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..store.records import FileRecord

__all__ = ["Rows", "Stored", "gather"]

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
    local: list[str | None] = field(default_factory=list)  # pictures: stored local features, when asked
    row_ids: list[str] = field(default_factory=list)

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
    local: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> Stored:
    """Read the manifest and the rows of ``kinds`` (``audio`` rows of videos come with ``video``).

    One read per collection (``store.all_rows``), rows of files that are not finished or not
    of ``kinds`` dropped here: the cost is one pass over the stored rows, whatever the number of
    files. ``local``: also the stored local features of images and keyframes."""
    files = {r.file_id: r for r in store.iter_files(state="done", strong=False)} if store.has("files") else {}
    wanted = set(kinds)
    rows: dict[str, Rows] = {}
    durations: dict[str, float] = {}
    signals = ("phash", "local") if local else ("phash",)
    for kind in ("image", "video"):
        if kind not in wanted or not store.has(kind):
            continue
        raw = [x for x in store.all_rows(kind, vectors=vectors, signals=signals) if _done(files, x.file_id, kind)]
        raw.sort(key=lambda x: (x.file_id, float(x.timestamp or 0.0)))
        r = Rows(file_ids=[x.file_id for x in raw])
        r.timestamps = np.array([float(x.timestamp or 0.0) for x in raw])
        if vectors:
            r.vectors = np.asarray([x.vector for x in raw], dtype=np.float32).reshape(len(raw), -1)
        r.phashes, r.has_phash = _hex64([x.phash for x in raw])
        if local:
            r.local = [x.local for x in raw]
        r.row_ids = [x.id for x in raw]
        rows[kind] = r
        for x in raw:
            if kind == "video":
                durations[x.file_id] = float(x.duration or 0.0)
        if progress is not None:
            progress(f"reading {kind} rows", len(raw))
    audio_kinds = ({"audio"} & wanted) | ({"video"} if wanted & {"video", "audio"} else set())
    if audio_kinds and store.has("audio"):
        raw = [x for x in store.all_rows("audio", signals=("fp",)) if x.file_id in files and files[x.file_id].kind in audio_kinds]
        raw.sort(key=lambda x: (x.file_id, float(x.timestamp or 0.0)))
        r = Rows(file_ids=[x.file_id for x in raw])
        r.timestamps = np.array([float(x.timestamp or 0.0) for x in raw])
        r.sources = [x.source or "audio" for x in raw]
        r.prints = [np.asarray(x.fp if x.fp is not None else [], dtype=np.int64) for x in raw]
        rows["audio"] = r
        for x in raw:
            durations.setdefault(x.file_id, float(x.duration or 0.0))
        if progress is not None:
            progress("reading audio rows", len(raw))
    return Stored(files=files, rows=rows, durations=durations)


def _done(files: dict[str, FileRecord], file_id: str, kind: str) -> bool:
    rec = files.get(file_id)
    return rec is not None and rec.kind == kind
