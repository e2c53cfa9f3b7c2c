"""The store's records: a search ``Hit`` and a manifest ``FileRecord``, and their Milvus row forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Hit", "FileRecord", "FILE_FIELDS", "file_record", "hit"]


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


FILE_FIELDS = ["id", "path", "kind", "content_hash", "size", "mtime", "state", "rows"]


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
    )
