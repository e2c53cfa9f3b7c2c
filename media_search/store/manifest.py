"""The files manifest: one entry per indexed file, its own concern beside the vector collections.

An entry (``FileRecord``) holds the file's path, kind, hash, size, mtime,
state and row count. A file's rows are written between a ``pending`` and a
``done`` entry, so a run killed at any moment leaves a mark that the next run
repairs: this is what makes indexing resumable without duplicates or orphans.
Milvus needs a vector in every collection: the manifest carries a constant
2-d one (``schema.MANIFEST_DIM``) that nothing ever searches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from . import filters
from .connection import SESSION, STRONG, Connection
from .records import FILE_FIELDS, FileRecord, file_record
from .schema import FILES, MANIFEST_DIM, TABLES

__all__ = ["Manifest"]

_BATCH = 256
_ZERO = [0.0] * MANIFEST_DIM


class Manifest:
    """The ``files`` collection of one store (``name``: its prefixed collection name)."""

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        self._ready = False
        self._lock = threading.Lock()  # a query reads the manifest on a thread of its own (``query.search``)
        self.writes = 0  # puts and forgets through this object (``MilvusStore.writes``)

    def exists(self) -> bool:
        return self.conn.has(self.name)

    def ensure(self) -> None:
        """Create the manifest, or load it after a restart."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            if not self.exists():
                index = {"index_type": "FLAT", "metric_type": "L2"}
                self.conn.create("create the files collection", self.name, TABLES[FILES].fields, MANIFEST_DIM, index)
            else:
                self.conn.load(self.name)
            self._ready = True

    def forget_ready(self) -> None:
        self._ready = False

    def get(self, file_ids: Sequence[str]) -> dict[str, FileRecord]:
        """The entries of the given files that exist, by file id."""
        self.ensure()
        out: dict[str, FileRecord] = {}
        for start in range(0, len(file_ids), _BATCH):
            expr = filters.is_in("id", file_ids[start : start + _BATCH])
            for row in self.conn.query_all(self.name, expr, FILE_FIELDS):
                rec = file_record(row)
                out[rec.file_id] = rec
        return out

    def put(self, records: Sequence[FileRecord]) -> None:
        """Write (upsert) entries."""
        self.ensure()
        self.writes += 1
        rows = [
            {
                "id": r.file_id,
                "vector": _ZERO,
                "path": r.path,
                "kind": r.kind,
                "content_hash": r.content_hash,
                "size": int(r.size),
                "mtime": float(r.mtime),
                "state": r.state,
                "rows": int(r.rows),
            }
            for r in records
        ]
        for start in range(0, len(rows), _BATCH):
            self.conn.call("write the files manifest", self.conn.client.upsert, self.name, rows[start : start + _BATCH])

    def forget(self, file_ids: Sequence[str]) -> None:
        """Delete the entries of the given files."""
        self.writes += 1
        if not file_ids:
            return
        self.ensure()
        for start in range(0, len(file_ids), _BATCH):
            expr = filters.is_in("id", file_ids[start : start + _BATCH])
            self.conn.call("delete from the files manifest", self.conn.client.delete, self.name, filter=expr)

    def iter(self, *, state: str | None = None, content_hash: str | None = None, strong: bool = True) -> Iterator[FileRecord]:
        """Entries, filtered; ``strong=False`` for query-time reads (``Session``, no tick wait)."""
        self.ensure()
        clauses = []
        if state is not None:
            clauses.append(f"state == {filters.quote(state)}")
        if content_hash is not None:
            clauses.append(filters.eq("content_hash", content_hash))
        consistency = STRONG if strong else SESSION
        for row in self.conn.query_all(self.name, " and ".join(clauses), FILE_FIELDS, consistency):
            yield file_record(row)

    def pending(self) -> list[str]:
        """File ids of entries a killed run left ``pending``."""
        return [r.file_id for r in self.iter(state="pending")] if self.exists() else []
