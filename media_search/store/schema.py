"""The schema table: every collection's fields, written out once.

The store creates collections from it, ``search`` and ``fetch_rows`` return
the fields it marks, the indexer's columns are checked against it and the
query reads the typed records built from it (``records``). DESIGN.md section
2 fixes the names and fields; ``file_id`` (hex of the resolved path) lets a
file's rows be found and deleted without putting a path in a filter, and each
content collection holds its copy-signal fields (``phash`` and ``local``, or ``fp``).

Copy-signal fields: a pHash per image and keyframe row (16 hex digits) and its
local features (``local``: ``signals.image.pack_features`` text), the
landmark fingerprint of each audio window's stretch (``signals.audio.pack``
values). ARRAY fields are stored and returned by Milvus Lite 3.2 and Milvus
2.3.5 alike; they are never filtered on (``array_contains_any`` is a per-row
Python loop on Lite), only fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Field", "Table", "TABLES", "COLLECTIONS", "FILES", "FP_CAPACITY", "LOCAL_MAX", "PATH_MAX", "MANIFEST_DIM"]

PATH_MAX = 65535
#: Stored local features per row, as text (``signals.image.pack_features`` keeps well under it).
LOCAL_MAX = 65535
FP_CAPACITY = 4096
#: Milvus needs a vector in every collection: the manifest carries a constant 2-d one.
MANIFEST_DIM = 2
FILES = "files"


@dataclass(frozen=True)
class Field:
    """One scalar field: its Milvus type and parameters, and who returns it."""

    name: str
    dtype: str  # a pymilvus DataType name
    params: dict[str, Any] = field(default_factory=dict)
    search: bool = True  # returned with each search hit
    fetch: bool = True  # returned by fetch_rows
    signal: bool = False  # a copy-signal field: fetched only when asked


@dataclass(frozen=True)
class Table:
    """One collection: its name (without the prefix) and its scalar fields besides ``id`` and ``vector``."""

    collection: str
    fields: tuple[Field, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def search_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.search]

    def fetch_fields(self, *, vectors: bool, signals: bool) -> list[str]:
        names = ["id"] + [f.name for f in self.fields if f.fetch and not f.signal]
        names += ["vector"] if vectors else []
        names += [f.name for f in self.fields if f.signal] if signals else []
        return names

    @property
    def signal_field(self) -> Field | None:
        return next((f for f in self.fields if f.signal), None)

    @property
    def signal_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.signal)


_FILE_ID = Field("file_id", "VARCHAR", {"max_length": 64})
_PATH = Field("path", "VARCHAR", {"max_length": PATH_MAX})
_HASH = Field("content_hash", "VARCHAR", {"max_length": 64})
_TIMESTAMP = Field("timestamp", "DOUBLE")
_DURATION = Field("duration", "DOUBLE")
_PHASH = Field("phash", "VARCHAR", {"max_length": 16}, fetch=False, signal=True)
#: Local features computed at index time (``signals.image.pack_features``); fetched by row id for
#: the few candidates a query verifies, never returned by a search.
_LOCAL = Field("local", "VARCHAR", {"max_length": LOCAL_MAX}, search=False, fetch=False, signal=True)

TABLES: dict[str, Table] = {
    "image": Table("images", (
        _FILE_ID, _PATH, _HASH,
        Field("size", "INT64", search=False, fetch=False), Field("mtime", "DOUBLE", search=False, fetch=False),
        _PHASH, _LOCAL,
    )),
    "video": Table("video_frames", (_FILE_ID, _PATH, _HASH, _TIMESTAMP, _DURATION, _PHASH, _LOCAL)),
    "audio": Table("audio_windows", (
        _FILE_ID, _PATH, _HASH, _TIMESTAMP, _DURATION, Field("source", "VARCHAR", {"max_length": 16}),
        Field("fp", "ARRAY", {"element_type": "INT64", "max_capacity": FP_CAPACITY}, search=False, fetch=False, signal=True),
    )),
    FILES: Table(FILES, (
        _PATH, Field("kind", "VARCHAR", {"max_length": 16}), _HASH,
        Field("size", "INT64"), Field("mtime", "DOUBLE"),
        Field("state", "VARCHAR", {"max_length": 16}), Field("rows", "INT64"),
    )),
}  # fmt: skip

#: The content collections, by kind (without the prefix).
COLLECTIONS: dict[str, str] = {k: t.collection for k, t in TABLES.items() if k != FILES}
