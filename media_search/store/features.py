"""Local features beside a Milvus Lite ``.db``: ``<db>.local.sqlite``, one row per collection row
(and each picture row's pHash, for the whole-library lookup of ``store.hashes``).

The stored SIFT features (``signals.image.pack_features`` text, about 30 KB a row) are most of an
image collection's bytes, and Milvus Lite reads every collection's whole Parquet segments into
memory the first time a process touches the file: with 10k images and 10k sound windows the
first call of a process took 0.5-0.9 s and 680 MB of memory, and the image collection was 465
of the 619 MB on disk, about 300 MB of it local features. A query needs the features of the few candidates it verifies, by row id, and
``duplicates`` reads them all once; neither needs them inside Milvus.

So a Lite store keeps them here (``Placement`` below decides, per collection: a Lite collection
made without the ``local`` field). A server keeps them in its collection: the data lives with the
server, for every machine that queries or indexes it (Ray workers included). A Lite collection
made by an older media_search, with the field, keeps using it.

Writes come before the rows' own (``MilvusStore.upsert_rows``), deletes with theirs; a row whose
features are missing here (a run killed in between) is verified from its file instead, as a row
stored without any always was. Milvus Lite lets one process hold a ``.db``, so one process
writes this file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .schema import FILES, TABLES, Field

if TYPE_CHECKING:
    from .hashes import HashLookup
    from .milvus import MilvusStore

__all__ = ["LocalFeatures", "Placement", "HashRow"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local (coll TEXT, id TEXT, file_id TEXT, data TEXT, PRIMARY KEY (coll, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS local_file ON local (coll, file_id);
CREATE TABLE IF NOT EXISTS hashes (coll TEXT, id TEXT, file_id TEXT, path TEXT, content_hash TEXT, timestamp REAL,
                                   phash TEXT, PRIMARY KEY (coll, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hashes_file ON hashes (coll, file_id);
CREATE TABLE IF NOT EXISTS filled (coll TEXT PRIMARY KEY);
"""
#: A row of ``hashes``: (row id, file id, path, content hash, timestamp or None, pHash hex or "").
HashRow = tuple[str, str, str, str, "float | None", str]
_PART = 500  # ids per IN (...) list: under sqlite's variable limit
_PUT_HASHES = "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?, ?)"


class LocalFeatures:
    """The local features of a Lite store's collections, by collection name and row id; and every
    picture row's pHash with what a result needs (``hashes``: the whole-library pHash lookup,
    ``store.hashes``), complete for a collection once ``fill`` has run for it (``filled``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used by the query's threads too
        self.generations: dict[str, int] = {}  # per collection, bumped by each change of its ``hashes`` rows

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            try:
                self._db = self._connect()
            except sqlite3.DatabaseError as e:  # unreadable: its rows are verified from their files
                log.warning("starting the local-feature file %s again: %s", self.path, e)
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(self.path + suffix):
                        os.remove(self.path + suffix)
                self._db = self._connect()
        return self._db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    def put(self, coll: str, rows: Iterable[tuple[str, str, str]]) -> None:
        """(row id, file id, features) rows of ``coll``; empty features are not kept."""
        items = [(coll, i, f, d) for i, f, d in rows if d]
        if not items:
            return
        with self._lock:
            self._write(("INSERT OR REPLACE INTO local VALUES (?, ?, ?, ?)", items))  # the pHash lookup reads none of it

    def put_hashes(self, coll: str, rows: Iterable[HashRow]) -> None:
        """The pHash rows of ``coll``'s rows just written (in the same step as their features)."""
        items = [(coll, *r) for r in rows]
        if items:
            with self._lock:
                self._write((_PUT_HASHES, items))
                self._changed(coll)

    def fill(self, coll: str, rows: Iterable[HashRow]) -> None:
        """Every row of ``coll`` (read from its collection), in place of what was kept; then complete."""
        items = [(coll, *r) for r in rows]
        with self._lock:
            self._write(("DELETE FROM hashes WHERE coll = ?", [(coll,)]), (_PUT_HASHES, items),
                        ("INSERT OR REPLACE INTO filled VALUES (?)", [(coll,)]))  # fmt: skip
            self._changed(coll)

    def hashes(self, coll: str) -> list[HashRow] | None:
        """Every pHash row of ``coll``, or None until ``fill`` has made them complete."""
        if self._none():
            return None
        with self._lock:
            if self.db.execute("SELECT 1 FROM filled WHERE coll = ?", (coll,)).fetchone() is None:
                return None
            return self.db.execute(
                "SELECT id, file_id, path, content_hash, timestamp, phash FROM hashes WHERE coll = ?", (coll,)
            ).fetchall()

    def _write(self, *steps: tuple[str, list[tuple[Any, ...]]]) -> None:
        """Each statement with its rows, in one transaction (the caller holds the lock)."""
        db = self.db
        db.execute("BEGIN")
        try:
            for sql, items in steps:
                db.executemany(sql, items)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _changed(self, coll: str) -> None:
        """``coll``'s pHash rows changed: its lookup (``store.hashes``) reads them again."""
        self.generations[coll] = self.generations.get(coll, 0) + 1

    def get(self, coll: str, ids: Sequence[str]) -> dict[str, str]:
        """The features of the given rows that have any, by row id."""
        out: dict[str, str] = {}
        if self._none():
            return out
        with self._lock:
            for start in range(0, len(ids), _PART):
                part = list(ids[start : start + _PART])
                q = ",".join("?" * len(part))
                out.update(self.db.execute(f"SELECT id, data FROM local WHERE coll = ? AND id IN ({q})", [coll, *part]))
        return out

    def all(self, coll: str) -> Iterator[tuple[str, str]]:
        """(row id, features) of every row of ``coll`` kept here."""
        if self._none():
            return iter(())
        with self._lock:
            rows = self.db.execute("SELECT id, data FROM local WHERE coll = ?", (coll,)).fetchall()
        return iter(rows)

    def _none(self) -> bool:
        """Nothing kept yet (no file): nothing to forget, and no file made only to forget nothing."""
        return self._db is None and not os.path.exists(self.path)

    def forget_files(self, coll: str, file_ids: Sequence[str]) -> None:
        if self._none():
            return
        with self._lock:
            for start in range(0, len(file_ids), _PART):
                part = list(file_ids[start : start + _PART])
                q = ",".join("?" * len(part))
                for table in ("local", "hashes"):
                    self.db.execute(f"DELETE FROM {table} WHERE coll = ? AND file_id IN ({q})", [coll, *part])
            self._changed(coll)

    def forget(self, coll: str) -> None:
        """Every row of ``coll`` (its collection was dropped or made anew)."""
        if self._none():
            return
        with self._lock:
            for table in ("local", "hashes", "filled"):
                self.db.execute(f"DELETE FROM {table} WHERE coll = ?", (coll,))
            self._changed(coll)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class Placement:
    """Where one store's collections keep their local features (per kind, learnt from the
    collection's fields): ``"collection"`` (a server's, or a Lite collection an older media_search
    made), ``"beside"`` the Lite ``.db`` (a collection made now), or ``"none"`` (a server
    collection without the field: a Lite ``.db`` made now, served by ``milvus-lite server``; its
    rows are verified from their files)."""

    def __init__(self, store: MilvusStore) -> None:
        self.store = store
        self._modes: dict[str, str] = {}
        self._file: LocalFeatures | None = None
        self._lookups: dict[str, HashLookup] = {}

    def mode(self, kind: str) -> str:
        if kind == FILES or "local" not in TABLES[kind].names:
            return "collection"
        if kind not in self._modes:
            if not self.store.has(kind):
                return "beside" if self.store.is_lite else "collection"  # how it will be made
            fields = self.store.conn.describe(self.store.name(kind)).get("fields", [])
            self.learn(kind, {f.get("name") for f in fields})
        return self._modes[kind]

    def learn(self, kind: str, names: set[Any]) -> None:
        """``kind``'s collection has the fields ``names`` (described, or made with them)."""
        kept = "local" not in TABLES[kind].names or "local" in names
        self._modes[kind] = "collection" if kept else "beside" if self.store.is_lite else "none"

    def forget(self, kind: str) -> None:
        self._modes.pop(kind, None)

    def beside(self, kind: str) -> bool:
        return self.mode(kind) == "beside"

    def fields(self, kind: str) -> tuple[Field, ...]:
        """``kind``'s collection fields (besides ``id`` and ``vector``) as the store keeps them."""
        fields = TABLES[kind].fields
        return fields if self.mode(kind) == "collection" else tuple(f for f in fields if f.name != "local")

    @property
    def file(self) -> LocalFeatures:
        if self._file is None:
            from .prints import side_file

            self._file = LocalFeatures(side_file(self.store, "local"))
        return self._file

    def lookup(self, coll: str) -> HashLookup:
        """``coll``'s pHash lookup (``store.hashes``), kept while the file is open."""
        if coll not in self._lookups:
            from .hashes import HashLookup

            self._lookups[coll] = HashLookup(self.file, coll)
        return self._lookups[coll]

    def close(self) -> None:
        self._lookups.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
