"""The store's typed records: a search ``Hit``, a fetched ``Row``, a manifest ``FileRecord``; and their Milvus row forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .schema import FILES, TABLES

__all__ = ["Hit", "Row", "FileRecord", "FILE_FIELDS", "file_record", "hit", "row"]


@dataclass(frozen=True)
class Hit:
    """One row returned by a vector search."""

    file_id: str
    path: str
    content_hash: str
    score: float
    timestamp: float | None = None
    duration: float | None = None
    source: str | None = None
    phash: str | None = None  # images and keyframes: the stored pHash (copy detection)
    id: str | None = None  # the row's id (``MilvusStore.local_features`` reads by it)


@dataclass(frozen=True)
class Row:
    """One stored row of a content collection, as ``fetch_rows`` returns it (fields not asked for are None)."""

    id: str
    file_id: str
    path: str
    content_hash: str
    timestamp: float | None = None
    duration: float | None = None
    source: str | None = None  # audio rows: "audio" or "video"
    vector: np.ndarray | None = None
    phash: str | None = None
    fp: np.ndarray | None = None  # audio rows: packed landmarks (signals.audio.pack)
    local: str | None = None  # images and keyframes: stored local features (signals.image.pack_features)


@dataclass(frozen=True)
class FileRecord:
    """One file of the manifest."""

    file_id: str
    path: str
    kind: str
    content_hash: str = ""
    size: int = 0
    mtime: float = 0.0
    state: str = "done"  # "pending" while its rows are being written
    rows: int = 0


FILE_FIELDS = ["id", *TABLES[FILES].names]


def file_record(row: dict[str, Any]) -> FileRecord:
    return FileRecord(
        file_id=row["id"],
        path=row["path"],
        kind=row["kind"],
        content_hash=row["content_hash"],
        size=int(row["size"]),
        mtime=float(row["mtime"]),
        state=row["state"],
        rows=int(row["rows"]),
    )


def hit(h: dict[str, Any]) -> Hit:
    e = h.get("entity", h)
    return Hit(
        file_id=e["file_id"],
        path=e["path"],
        content_hash=e["content_hash"],
        score=float(h["distance"]),
        timestamp=e.get("timestamp"),
        duration=e.get("duration"),
        source=e.get("source"),
        phash=e.get("phash"),
        id=None if h.get("id") is None else str(h["id"]),
    )


def row(r: dict[str, Any]) -> Row:
    vector = r.get("vector")
    fp = r.get("fp")
    return Row(
        id=r["id"],
        file_id=r["file_id"],
        path=r["path"],
        content_hash=r["content_hash"],
        timestamp=r.get("timestamp"),
        duration=r.get("duration"),
        source=r.get("source"),
        vector=None if vector is None else np.asarray(vector, dtype=np.float32),
        phash=r.get("phash"),
        fp=None if fp is None else np.asarray(fp, dtype=np.int64),
        local=r.get("local"),
    )
