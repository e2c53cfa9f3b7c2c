"""The landmark hash index: hash -> (file, anchor time), a side index next to the Milvus store.

Milvus cannot serve it well (DESIGN.md section 6: Lite's sparse search and ``in`` filters are
Python passes, Lite has no binary vectors, Milvus 2.3 no sparse ones), so the postings live in a
stdlib ``sqlite3`` file:

* Milvus Lite: ``<uri>.prints.sqlite`` next to the ``.db``;
* a Milvus server: ``$XDG_CACHE_HOME/media_search/prints/<sha1(uri, prefix)>.sqlite`` (each
  machine that queries keeps its own copy); ``MEDIA_SEARCH_PRINTS_DIR`` overrides the folder.

The index is *derived*: the truth stays in the store, the ``fp`` field of each audio window row
and the ``files`` manifest. ``sync`` compares the manifest's ``done`` entries (their content
hash, size, mtime and row count) with the files the index holds, drops what changed or went, and
adds what is new from the stored ``fp`` arrays, in one sqlite transaction. A file the indexer
has marked ``pending`` is never added, so a run killed at any moment leaves the index holding
the previous consistent state, and the next ``sync`` repairs it. A missing or unreadable file is
rebuilt from the stored fingerprints; a fingerprint version change (``FP_VERSION``) rebuilds too.

``sync`` reads the manifest only when the store says it may have changed (``MilvusStore.writes``,
bumped by this process's manifest writes) or, on a server that other processes write to, at
most every ``SERVER_RECHECK_S`` seconds.

Beside a Lite ``.db`` the index also keeps each file's window rows with their vectors
(``windows``): a query ranks its candidate sounds on all their windows, and Milvus Lite, a
Python server, answers a read of a few hundred rows by copying every vector of the collection and
turning each row's into Python floats (80 to 300 ms of a 450 ms audio query at 9,800 windows;
this file answers in a few). Their vectors depend on the model, so the audio collection's model
is part of each entry's stamp: another model reads every file again. Lite lets one process hold
a ``.db``, so what ``sync`` saw is what the store holds. A server's index keeps no rows: other
processes write to the server, and each machine's copy of every vector would grow with it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from .milvus import MilvusStore
    from .records import Row

__all__ = ["PrintIndex", "index_path", "side_file", "SERVER_RECHECK_S"]

log = logging.getLogger(__name__)

SERVER_RECHECK_S = 2.0
_TIME_BITS = 31
_BLOCK = 65_536  # postings read from SQLite at a time
#: The layout of the file's tables, kept in its version beside the fingerprints' (``FP_VERSION``):
#: 2 keeps each file's packed landmarks (``files.prints``, read by a query's ranking) in place of
#: its distinct hashes (which a removal takes from them); 3 keeps its window rows too, with their
#: vectors, beside a Lite ``.db`` (``files.windows``, ``PrintIndex.windows``).
_LAYOUT = 3


def index_path(store: MilvusStore) -> str:
    return side_file(store, "prints")


def side_file(store: MilvusStore, name: str) -> str:
    """Where a side index ``name`` of ``store`` lives: beside a Lite ``.db`` (``<db>.<name>.sqlite``),
    else in ``$MEDIA_SEARCH_PRINTS_DIR`` or the user cache (``~/.cache/media_search/<name>``),
    one file per server and collection prefix."""
    if store.is_lite:
        return os.path.abspath(store.uri) + f".{name}.sqlite"
    folder = os.environ.get("MEDIA_SEARCH_PRINTS_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "media_search", name
    )
    key = hashlib.sha1(f"{store.uri}\0{store.prefix}".encode()).hexdigest()[:16]
    return os.path.join(folder, f"{key}.sqlite")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (fid INTEGER PRIMARY KEY, file_id TEXT UNIQUE, path TEXT, source TEXT, stamp TEXT, prints BLOB, windows BLOB);
CREATE TABLE IF NOT EXISTS postings (hash INTEGER, fid INTEGER, t INTEGER, PRIMARY KEY (hash, fid, t)) WITHOUT ROWID;
"""


def _stamp(rec: object, model: str = "") -> str:
    """What a file's entry was read at: its manifest record's content hash, size, mtime and row
    count, and ``model`` (the audio collection's, for an index that keeps the rows' vectors)."""
    base = f"{rec.content_hash}:{rec.size}:{rec.mtime}:{rec.rows}"  # type: ignore[attr-defined]
    return f"{base}:{model}" if model else base


def _stamp_hash(stamp: object) -> str:
    """The content hash a ``_stamp`` starts with."""
    return str(stamp).split(":", 1)[0]


#: Postings of the last lookup kept for the next (6 MB): a long query's millions are not.
_KEEP_LAST = 1 << 18


_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """``method`` run holding its index's lock (``PrintIndex._lock``)."""

    @functools.wraps(method)
    def run(self: PrintIndex, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class PrintIndex:
    """One store's hash index (see the module docstring)."""

    def __init__(self, store: MilvusStore, version: str) -> None:
        # One sqlite connection for the threads of a process (a program that calls ``Library.search``
        # from several threads; each audio query votes on a thread of its own): a transaction and the
        # temp table ``q`` belong to the connection, so two lookups at once made "cannot start a
        # transaction within a transaction". The page answers one search at a time (``web.app``).
        self._lock = threading.RLock()
        self.store = store
        self.version = version
        self.path = index_path(store)
        self._db: sqlite3.Connection | None = None
        self._synced_at: tuple[int, float] | None = None  # (store writes, monotonic time)
        # The last lookup's postings of every source, by its hashes: a query looks its hashes up once
        # per source searched (its sounds, then the videos' soundtracks). Only a small one is kept.
        self._last: tuple[bytes, np.ndarray] | None = None
        self.keeps_windows = bool(store.is_lite)  # see the module docstring

    # -- the file ----------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
        except sqlite3.DatabaseError as e:  # unreadable: rebuild from the stored fingerprints
            log.warning("rebuilding the fingerprint index %s: %s", self.path, e)
            self._remove()
            db = self._connect()
        return db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        if row is None or row[0] != self._stored_version:  # another layout or fingerprint: made again
            db.execute("BEGIN IMMEDIATE")
            db.execute("DROP TABLE postings")
            db.execute("DROP TABLE files")
            for table in _SCHEMA.strip().splitlines()[1:]:  # all but ``meta``
                db.execute(table)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (self._stored_version,))
            db.execute("COMMIT")
        return db

    @property
    def _stored_version(self) -> str:
        return f"{self.version}/{_LAYOUT}"

    def _remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass

    @_locked
    def close(self) -> None:
        self._last = None
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- keeping up with the store ------------------------------------------------------------
    @_locked
    def sync(self, *, force: bool = False) -> None:
        """Bring the index in line with the store's manifest (see the module docstring)."""
        writes = getattr(self.store, "writes", 0)
        now = time.monotonic()
        if not force and self._synced_at is not None:
            same = self._synced_at[0] == writes
            if same and (self.store.is_lite or now - self._synced_at[1] < SERVER_RECHECK_S):
                return
        if not self.store.has("audio") or not self.store.has("files"):
            self._synced_at = (writes, now)
            return
        want = {r.file_id: r for r in self.store.iter_files(state="done", strong=False) if r.kind in ("audio", "video")}
        model = self._model() if self.keeps_windows else ""
        have = dict(self.db.execute("SELECT file_id, stamp FROM files").fetchall())
        gone = [f for f, s in have.items() if f not in want or _stamp(want[f], model) != s]
        new = [f for f, r in want.items() if have.get(f) != _stamp(r, model)]
        if gone or new:
            self._apply(gone, new, want, model)
        self._synced_at = (writes, now)

    def _model(self) -> str:
        """A short key of the audio collection's model (its window vectors are that model's)."""
        spec = self.store.model_of("audio")
        return "" if spec is None else hashlib.sha1(spec.to_json().encode()).hexdigest()[:12]

    def _apply(self, gone: Sequence[str], new: Sequence[str], want: dict, model: str = "") -> None:
        self._last = None
        rows: list[Row] = []
        for start in range(0, len(new), 256):
            rows += self.store.fetch_rows("audio", list(new[start : start + 256]), vectors=self.keeps_windows, copy_fields=True)
        per_file: dict[str, list[Row]] = {}
        for r in rows:
            per_file.setdefault(r.file_id, []).append(r)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for f in gone:
                row = db.execute("SELECT fid, prints FROM files WHERE file_id=?", (f,)).fetchone()
                if row:  # its postings, found by their hashes (no index on fid: inserts stay appends)
                    hs = np.unique(np.frombuffer(row[1] or b"", dtype=np.int64) >> _TIME_BITS).tolist()
                    db.executemany("DELETE FROM postings WHERE hash=? AND fid=?", ((h, row[0]) for h in hs))
                    db.execute("DELETE FROM files WHERE fid=?", (row[0],))
            parts = []
            for f in new:
                items = sorted(per_file.get(f, []), key=lambda r: float(r.timestamp or 0.0))
                source = (items[0].source or "audio") if items else "audio"
                vals = [np.asarray(r.fp if r.fp is not None else [], dtype=np.int64) for r in items]
                vals = np.concatenate(vals) if vals else np.zeros(0, np.int64)
                cur = db.execute(
                    "INSERT INTO files (file_id, path, source, stamp, prints, windows) VALUES (?, ?, ?, ?, ?, ?)",
                    (f, want[f].path, source, _stamp(want[f], model), vals.tobytes(), _pack_windows(items) if self.keeps_windows else None),
                )
                parts.append(np.stack([vals >> _TIME_BITS, np.full(len(vals), cur.lastrowid), vals & ((1 << _TIME_BITS) - 1)], 1))
            if parts:
                self._insert(np.concatenate(parts))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("fingerprint index: %d file(s) added, %d removed", len(new), len(gone))

    def _insert(self, postings: np.ndarray) -> None:
        """(hash, fid, t) rows, inserted in hash order (appending to the b-tree is far faster)."""
        postings = postings[np.lexsort((postings[:, 2], postings[:, 1], postings[:, 0]))]
        for start in range(0, len(postings), 1 << 18):
            chunk = postings[start : start + (1 << 18)].tolist()
            self.db.executemany("INSERT OR IGNORE INTO postings VALUES (?, ?, ?)", chunk)

    # -- lookups ------------------------------------------------------------------------------
    @_locked
    def lookup(self, hashes: np.ndarray, source: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Postings of the given hashes: (hash, fid, t) arrays, fid being this index's file number,
        in hash order (the join walks the hashes in key order, so the vote need not sort them).

        ``source``: only files of that source, kept by their file numbers block by block as they
        are read (joining the files table in SQL cost twice the lookup itself: 61 ms instead of 27
        for a 4 s music query at 9,800 windows). A small lookup's postings of every source are
        kept for the next lookup of the same hashes (the query's other source)."""
        uniq = np.unique(np.asarray(hashes, dtype=np.int64))
        # the hashes, and the file's version as seen here: another process (an indexer sharing a
        # server's index) that commits in between changes ``data_version``; this one's own writes
        # (``_apply``) drop what was kept
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        key = hashlib.blake2b(uniq.tobytes() + str(version).encode(), digest_size=16).digest()
        fids = None
        if source is not None:
            fids = np.fromiter((r[0] for r in self.db.execute("SELECT fid FROM files WHERE source = ?", (source,))), np.int64)
        if self._last is not None and self._last[0] == key:
            parts: list[np.ndarray] = [self._last[1]]
        else:
            self._last = None
            parts = self._lookup(uniq)
            total = sum(len(x) for x in parts)
            if total <= _KEEP_LAST:
                self._last = (key, np.concatenate(parts) if parts else np.zeros((0, 3), np.int64))
        if fids is not None:
            for i, x in enumerate(parts):  # in place: each block's unfiltered rows go as it is filtered
                parts[i] = x[np.isin(x[:, 1], fids)]
        a = np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
        return a[:, 0], a[:, 1], a[:, 2]

    def _lookup(self, uniq: np.ndarray) -> list[np.ndarray]:
        """The postings of ``uniq`` as (n, 3) blocks: a long query's millions of postings as Python
        tuples would take about 150 bytes each (500 MB for a 4-hour query), as arrays 24."""
        db = self.db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS q (h INTEGER PRIMARY KEY)")
        db.execute("BEGIN")
        try:
            db.execute("DELETE FROM q")
            db.executemany("INSERT INTO q VALUES (?)", ((int(h),) for h in uniq))
            cur = db.execute("SELECT p.hash, p.fid, p.t FROM q CROSS JOIN postings p ON p.hash = q.h")
            return [np.asarray(rows, dtype=np.int64).reshape(-1, 3) for rows in iter(lambda: cur.fetchmany(_BLOCK), [])]
        finally:
            db.execute("COMMIT")

    @_locked
    def file_ids(self, fids: Sequence[int], *, exclude_hash: str | None = None) -> dict[int, str]:
        """The store's file ids of these file numbers; ``exclude_hash``: leave out the files with
        that content hash (a query's own file)."""
        out: dict[int, str] = {}
        for fid, file_id, stamp in self._files_in("SELECT fid, file_id, stamp FROM files WHERE fid IN ({})", [int(f) for f in fids]):
            if exclude_hash is None or _stamp_hash(stamp) != exclude_hash:
                out[fid] = file_id
        return out

    @_locked
    def prints(self, file_ids: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
        """The landmarks these files' rows hold (``signals.audio.pack`` values, all rows' in one
        array), with the content hash they were read at: file id -> (content hash, packed values).
        Files the index does not hold are left out."""
        rows = self._files_in("SELECT file_id, stamp, prints FROM files WHERE file_id IN ({})", list(dict.fromkeys(file_ids)))
        return {file_id: (_stamp_hash(stamp), np.frombuffer(packed or b"", dtype=np.int64)) for file_id, stamp, packed in rows}

    @_locked
    def windows(self, file_ids: Sequence[str]) -> dict[str, list[Row]]:
        """Every window row of these files with its vector, as ``MilvusStore.fetch_rows`` returns
        them, in time order: file id -> rows. Files the index does not hold, or holds without their
        rows (a server's index: see the module docstring), are left out."""
        if not self.keeps_windows:
            return {}
        sql = "SELECT file_id, path, source, stamp, windows FROM files WHERE file_id IN ({})"
        return {file_id: _unpack_windows(packed, file_id, path, source, _stamp_hash(stamp))
                for file_id, path, source, stamp, packed in self._files_in(sql, list(dict.fromkeys(file_ids)))
                if packed is not None}  # fmt: skip

    def _files_in(self, sql: str, values: Sequence[object]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql``, whose one ``IN ({})`` takes ``values``, 500 of them a statement
        (SQLite's bound on a statement's variables)."""
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            yield from self.db.execute(sql.format(",".join("?" * len(part))), part)

    @_locked
    def n_postings(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM postings").fetchone()[0])


def _pack_windows(rows: Sequence[Row]) -> bytes | None:
    """A file's rows (in time order) as one value: their count and vector size (int64), their
    timestamps and durations (float64, NaN for none), their vectors (float32) and their ids
    (UTF-8, one a line). None when a row came without its vector."""
    if any(r.vector is None for r in rows):
        return None
    dim = len(rows[0].vector) if rows else 0  # type: ignore[arg-type]
    times = np.array([[np.nan if x is None else x for x in (r.timestamp, r.duration)] for r in rows], np.float64).reshape(-1, 2)
    vectors = np.stack([r.vector for r in rows]).astype(np.float32) if rows else np.zeros((0, 0), np.float32)  # type: ignore[misc]
    ids = "\n".join(r.id for r in rows).encode()
    return np.array([len(rows), dim], np.int64).tobytes() + times.tobytes() + vectors.tobytes() + ids


def _unpack_windows(packed: bytes, file_id: str, path: str, source: str, content_hash: str) -> list[Row]:
    """The rows ``_pack_windows`` made (each vector a copy: the value's bytes are not kept)."""
    from .records import Row

    n, dim = (int(x) for x in np.frombuffer(packed, np.int64, count=2))
    at = 16
    times = np.frombuffer(packed, np.float64, count=2 * n, offset=at).reshape(n, 2)
    at += times.nbytes
    vectors = np.frombuffer(packed, np.float32, count=n * dim, offset=at).reshape(n, dim).copy()
    ids = packed[at + vectors.nbytes :].decode().split("\n") if n else []

    def value(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    return [Row(id=ids[i], file_id=file_id, path=path, content_hash=content_hash, timestamp=value(times[i, 0]),
                duration=value(times[i, 1]), source=source, vector=vectors[i]) for i in range(n)]  # fmt: skip
