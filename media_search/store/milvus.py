"""The Milvus store: one vector collection per kind, and the files manifest beside them.

``MilvusStore`` is the one store interface: the indexer, the query, the CLI
and the tests use its public verbs only.

* collections: ``ensure`` (create, or check the stamps), ``model_of``,
  ``signals_of``, ``drop``, ``has``, ``name``, ``count``, ``flush``;
* rows: ``upsert_rows`` (columns), ``delete_rows`` / ``remove_files`` (by file
  id), ``search`` (-> ``Hit`` lists), ``fetch_rows`` and ``all_rows`` (-> ``Row``);
* the manifest (``store.manifest``): ``get_files``, ``put_files``,
  ``forget_files``, ``iter_files``, ``pending_files``.

Collections follow the schema table (``store.schema``; names take the
configured prefix). Each content collection records what filled it in two
collection properties (descriptions are not kept by Milvus Lite; properties
are kept by both Lite and the server): ``media_search.model``, the model's
identity (``embed.spec.ModelSpec``), and ``media_search.signals``, the
versions of its copy signals (``signals.SignalSpec``). Opening it with another
model or another signal version raises ``IndexMismatchError`` that says how
to rebuild. Query-time reads (``search``, ``fetch_rows``,
``iter_files(strong=False)``) use ``Session`` consistency, see ``connection``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embed.spec import ModelSpec
from ..errors import IndexMismatchError
from ..signals import SIGNALS, SignalSpec
from ..types import Kind
from . import filters
from .connection import SESSION, Connection
from .manifest import Manifest
from .records import FileRecord, Hit, Row, hit, row
from .features import Placement
from .hashes import LOOKED_UP, Near, hash_rows
from .schema import COLLECTIONS, FILES, TABLES

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["MilvusStore", "Hit", "Row", "FileRecord", "COLLECTIONS"]

log = logging.getLogger(__name__)

MODEL_PROPERTY = "media_search.model"
SIGNALS_PROPERTY = "media_search.signals"
_BATCH = 256  # rows per insert, file ids per delete, query vectors per search
#: Rows per read when vectors or fingerprints come along (``fetch_rows``): about 100 MB of Python lists.
FETCH_PART = 1024
#: Rows per read of ``all_rows`` when vectors or copy signals come along: 2,048 rows of a 2048-d
#: vector and a full fingerprint array (or an older Lite collection's local features) stay under
#: 100 MB a reply.
ALL_PART = 2048
_HNSW = {"M": 16, "efConstruction": 200}
_REBUILD = "`media-search reset --kind {kind}` then index again (or choose another MEDIA_SEARCH_MILVUS_URI / prefix)."


class MilvusStore:
    """One Milvus database (Lite file or server) holding every kind's collection and the manifest."""

    def __init__(self, uri: str, *, token: str | None = None, prefix: str = "media_search_") -> None:
        self.uri = uri
        self.token = token
        self.prefix = prefix
        self.conn = Connection(uri, token=token)
        self.is_lite = self.conn.is_lite
        self.manifest = Manifest(self.conn, prefix + FILES)
        self._checked: dict[str, tuple[ModelSpec | None, tuple[SignalSpec, ...]]] = {}
        self.local = Placement(self)  # where each kind's local features are (``store.features``)

    @classmethod
    def from_settings(cls, settings: Settings) -> MilvusStore:
        return cls(settings.uri, token=settings.token, prefix=settings.store_prefix)

    def with_prefix(self, prefix: str) -> MilvusStore:
        """Another set of collections (another image model's) on this store's connection."""
        other = MilvusStore.__new__(MilvusStore)
        other.uri, other.token, other.prefix = self.uri, self.token, prefix
        other.conn, other.is_lite = self.conn, self.is_lite
        other.manifest = Manifest(self.conn, prefix + FILES)
        other._checked = {}
        other.local = Placement(other)
        return other

    @property
    def writes(self) -> int:
        """Manifest writes through this store object: the fingerprint index (``store.prints``) resyncs on a change."""
        return self.manifest.writes

    @property
    def client(self) -> Any:
        """The ``MilvusClient`` (opened on first use)."""
        return self.conn.client

    def close(self) -> None:
        """Close the connection (for Lite, the last one in this process releases the file)."""
        prints = self.__dict__.pop("_print_index", None)  # the fingerprint side index (``store.prints``)
        if prints is not None:
            prints.close()
        self.local.close()
        self.conn.close()

    # -- collections ----------------------------------------------------------------------------
    def name(self, kind: str) -> str:
        return self.prefix + (FILES if kind == FILES else COLLECTIONS[kind])

    def has(self, kind: str) -> bool:
        return self.conn.has(self.name(kind))

    def _properties(self, kind: Kind) -> dict[str, str] | None:
        if not self.has(kind):
            return None
        return self.conn.describe(self.name(kind)).get("properties") or {}

    def model_of(self, kind: Kind) -> ModelSpec | None:
        """The model stamped into ``kind``'s collection, or None if it does not exist."""
        return _stamped_model(self._properties(kind))

    def signals_of(self, kind: Kind) -> tuple[SignalSpec, ...] | None:
        """The copy signals stamped into ``kind``'s collection, or None (no collection, or no stamp)."""
        return _stamped_signals(self._properties(kind))

    def ensure(self, kind: Kind, spec: ModelSpec | None, signals: Sequence[SignalSpec] | None = None) -> None:
        """Create ``kind``'s collection for ``spec`` and ``signals`` (default: this version's copy
        signals of the kind), or check that it was filled by them. ``spec`` None: only read what is
        stored (library-wide duplicates), so an existing collection's model is not checked."""
        want = tuple(sorted(SIGNALS[kind] if signals is None else signals, key=lambda s: s.name))
        if kind in self._checked and self._checked[kind][1] == want and spec in (None, self._checked[kind][0]):
            return
        self.manifest.ensure()
        name = self.name(kind)
        if not self.has(kind):
            if spec is None:
                raise ValueError(f"no {kind} collection to read")
            self._create(kind, spec, want)
        else:
            described = self.conn.describe(name)  # its fields and stamps, in one call
            self._check_signal_field(kind, described)
            properties = described.get("properties") or {}
            stamped = _stamped_model(properties)
            if spec is None:
                spec = stamped
            elif stamped != spec:
                raise IndexMismatchError(
                    f"The {kind} collection {name} was built with "
                    f"{stamped.describe() if stamped else 'an unknown model'}, but this run uses "
                    f"{spec.describe()}. Use the same weights setting as when it was built, or "
                    f"rebuild: " + _REBUILD.format(kind=kind)
                )
            have = _stamped_signals(properties)
            if have != want:
                built = f"copy signals {SignalSpec.describe(have)}" if have is not None else "no copy-signal stamp (an older media_search)"
                raise IndexMismatchError(
                    f"The {kind} collection {name} was built with {built}, but this run uses "
                    f"{SignalSpec.describe(want)}: its stored copy signals would not match new ones. "
                    f"Rebuild it: " + _REBUILD.format(kind=kind)
                )
            self.conn.load(name)
        self._checked[kind] = (spec, want)

    def _check_signal_field(self, kind: Kind, described: dict[str, Any]) -> None:
        names = {f.get("name") for f in described.get("fields", [])}
        self.local.learn(kind, names)
        for field in self.local.fields(kind):
            if field.signal and field.name not in names:
                raise IndexMismatchError(
                    f"The {kind} collection {self.name(kind)} was built by an older media_search, without "
                    f"the copy-detection field {field.name!r}. Rebuild it: " + _REBUILD.format(kind=kind)
                )

    def _create(self, kind: Kind, spec: ModelSpec, signals: tuple[SignalSpec, ...]) -> None:
        index = {"index_type": "HNSW", "metric_type": spec.metric, "params": _HNSW}
        properties = {MODEL_PROPERTY: spec.to_json()}
        if signals:
            properties[SIGNALS_PROPERTY] = SignalSpec.to_json(signals)
        fields = self.local.fields(kind)
        if self.local.beside(kind):
            self.local.file.forget(self.name(kind))  # a new collection: what an older one of the name left
            if kind in LOOKED_UP:
                self.local.file.fill(self.name(kind), [])  # empty, so complete: its rows are added as written
        self.conn.create("create a collection", self.name(kind), fields, spec.dim, index, properties)
        self.local.learn(kind, {f.name for f in fields})
        log.info("created collection %s for %s", self.name(kind), spec.describe())

    def drop(self, kind: str) -> None:
        """Drop ``kind``'s collection and forget its files in the manifest."""
        if kind != FILES and self.manifest.exists():
            stale = [r.file_id for r in self.iter_files() if r.kind == kind or (kind == "audio" and r.kind == "video")]
            self.forget_files(stale)
        if self.has(kind):
            beside = self.local.beside(kind)
            self.conn.drop(self.name(kind))
            if beside:
                self.local.file.forget(self.name(kind))
        if kind == FILES:
            self.manifest.forget_ready()
        self._checked.pop(kind, None)
        self.local.forget(kind)

    # -- content rows -------------------------------------------------------------------------
    def upsert_rows(self, kind: Kind, columns: dict[str, Sequence[Any] | np.ndarray]) -> int:
        """Upsert rows given as columns (``id``, ``vector`` and the collection's fields)."""
        n = len(columns["id"])
        mode = self.local.mode(kind)
        if mode == "beside":  # written first: a row never lacks what it was written with
            local = columns.get("local")
            if local is not None:
                self.local.file.put(self.name(kind), zip(map(str, columns["id"]), map(str, columns["file_id"]), local))
            if kind in LOOKED_UP:
                self.local.file.put_hashes(self.name(kind), hash_rows(columns))
        if mode != "collection":
            columns = {k: v for k, v in columns.items() if k != "local"}
        signals = [f for f in self.local.fields(kind) if f.signal]
        for signal in signals:
            if signal.name not in columns:  # a writer without copy signals: never copies
                columns = {**columns, signal.name: [[] if signal.dtype == "ARRAY" else ""] * n}
        names = list(columns)
        vectors = np.asarray(columns["vector"], dtype=np.float32)
        plain = {k: list(v.tolist() if isinstance(v, np.ndarray) else v) for k, v in columns.items() if k != "vector"}
        for signal in signals:
            if signal.dtype == "ARRAY":
                plain[signal.name] = [[int(x) for x in v] for v in plain[signal.name]]
        done = 0
        for start in range(0, n, _BATCH):
            stop = min(start + _BATCH, n)
            rows = [
                {**{k: plain[k][i] for k in names if k != "vector"}, "vector": vectors[i]}
                for i in range(start, stop)
            ]
            self.conn.call("write rows", self.client.upsert, self.name(kind), rows)
            done += stop - start
        return done

    def delete_rows(self, kind: Kind, file_ids: Iterable[str]) -> None:
        """Delete every row of the given files from ``kind``'s collection."""
        ids = list(file_ids)
        if not ids or not self.has(kind):
            return
        for start in range(0, len(ids), _BATCH):
            expr = filters.is_in("file_id", ids[start : start + _BATCH])
            self.conn.call("delete rows", self.client.delete, self.name(kind), filter=expr)
        if self.local.beside(kind):
            self.local.file.forget_files(self.name(kind), ids)

    def remove_files(self, file_ids: Sequence[str]) -> int:
        """Delete the given files' rows from every collection and their manifest entries; returns how many."""
        for kind in COLLECTIONS:
            self.delete_rows(kind, file_ids)  # type: ignore[arg-type]
        self.forget_files(file_ids)
        return len(file_ids)

    def search(
        self, kind: Kind, vectors: np.ndarray, limit: int, *, exclude_hash: str | None = None, source: str | None = None,
        exclude_files: Sequence[str] = (),
    ) -> list[list[Hit]]:
        """Nearest rows for each query vector (cosine, best first), the query's content excluded, and
        the rows of ``exclude_files`` (file ids: a widened search looks past the files it found)."""
        if not self.has(kind) or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        clauses = []
        if exclude_hash:
            clauses.append(filters.ne("content_hash", exclude_hash))
        if exclude_files:
            clauses.append(filters.not_in("file_id", exclude_files))
        if source is not None:
            clauses.append(f"source == {filters.quote(source)}")
        data = np.asarray(vectors, dtype=np.float32)
        out: list[list[Hit]] = []
        # A batch of query vectors per call: a 1-hour video's 2,342 keyframe vectors in one call
        # held all their results at once, twice (the server's reply and the client's), +350 MB.
        for start in range(0, len(data), _BATCH):
            result = self.conn.call(
                "search",
                self.client.search,
                self.name(kind),
                data=list(data[start : start + _BATCH]),
                limit=int(min(max(limit, 1), 16384)),
                filter=" and ".join(clauses),
                output_fields=TABLES[kind].search_fields,
                search_params={"metric_type": "COSINE", "params": {"ef": max(64, min(limit, 16384))}},
                **SESSION,
            )
            out.extend([hit(h) for h in hits] for hits in result)
        return out

    def fetch_rows(
        self, kind: Kind, file_ids: Sequence[str], *, vectors: bool = True, copy_fields: bool | Sequence[str] = False
    ) -> list[Row]:
        """Every row of the given files (with vectors, and the copy-signal fields if asked: all of them,
        or the ones named, for example ``("phash",)``).

        Vectors and fingerprints are read ``FETCH_PART`` rows at a time, each part made into arrays
        before the next is read: pymilvus returns them as Python lists, about ten times their size,
        so a long file's rows read at once (an 8-hour recording: 5,760 windows) cost half a gigabyte.
        Files whose rows fit in one part (nearly all) are read in one query, as before."""
        if not file_ids or not self.has(kind):
            return []
        name = self.name(kind)
        fields = self._fetch_fields(kind, vectors=vectors, signals=copy_fields)
        part = FETCH_PART if (vectors or copy_fields) else None
        out: list[Row] = []
        for start in range(0, len(file_ids), 64):
            expr = filters.is_in("file_id", file_ids[start : start + 64])
            first = [row(r) for r in self.conn.query_all(name, expr, fields, SESSION, limit=part)]
            out.extend(first)
            if part is None or len(first) < part:
                continue
            have = {r.id for r in first}
            rest = [r["id"] for r in self.conn.query_all(name, expr, ["id"], SESSION) if r["id"] not in have]
            for at in range(0, len(rest), part):
                ids = filters.is_in("id", rest[at : at + part])
                out.extend(row(r) for r in self.conn.query_all(name, ids, fields, SESSION, limit=part))
        wants_local = copy_fields is True or "local" in (copy_fields or ())
        if wants_local and self.local.beside(kind):
            kept = self.local.file.get(name, [r.id for r in out])
            out = [dataclasses.replace(r, local=kept.get(r.id)) for r in out]
        return out

    def local_features(self, kind: Kind, row_ids: Sequence[str]) -> dict[str, str]:
        """The stored local features (``signals.image.pack_features`` text) of the given rows, by row id;
        rows without any are left out."""
        ids = [i for i in dict.fromkeys(row_ids) if i]
        if not ids or not self.has(kind) or "local" not in TABLES[kind].names:
            return {}
        mode = self.local.mode(kind)
        if mode != "collection":
            return self.local.file.get(self.name(kind), ids) if mode == "beside" else {}
        out: dict[str, str] = {}
        for start in range(0, len(ids), 64):
            expr = filters.is_in("id", ids[start : start + 64])
            for r in self.conn.query_all(self.name(kind), expr, ["id", "local"], SESSION):
                if r.get("local"):
                    out[r["id"]] = r["local"]
        return out

    def near_pictures(
        self, kind: Kind, hashes: Sequence[int], bits: int, *, exclude_hash: str | None, limit: int
    ) -> list[Near] | None:
        """The ``limit`` rows of ``kind`` whose pHash is within ``bits`` of one of ``hashes``, nearest
        first, the query's own bytes left out (``store.hashes``); None where the store keeps no
        pHash lookup (a server, or a Lite collection that keeps its local features in itself)."""
        if kind not in LOOKED_UP or not self.has(kind) or not self.local.beside(kind):
            return None
        lookup = self.local.lookup(self.name(kind))
        if not lookup.ready():  # an index made before the lookup: filled from the collection, once
            rows = self.all_rows(kind, signals=["phash"])
            self.local.file.fill(self.name(kind), [(r.id, r.file_id, r.path, r.content_hash, r.timestamp, r.phash or "") for r in rows])
            log.info("filled the pHash lookup of %s (%d rows)", self.name(kind), len(rows))
        return lookup.near(hashes, bits, exclude_hash=exclude_hash, limit=limit)

    def vectors_of(self, kind: Kind, row_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of the given rows, by row id (rows that no longer exist are left out): a point
        read by primary key, which Milvus Lite answers without a pass over the collection."""
        ids = [i for i in dict.fromkeys(row_ids) if i]
        if not ids or not self.has(kind):
            return {}
        found = self.conn.call("read vectors", self.client.get, self.name(kind), ids=ids, output_fields=["id", "vector"])
        return {r["id"]: np.asarray(r["vector"], dtype=np.float32) for r in found}

    def all_rows(self, kind: Kind, *, vectors: bool = False, signals: Sequence[str] = ()) -> list[Row]:
        """Every row of ``kind``'s collection in one read, duplicates included (loads it if released);
        ``signals``: copy-signal fields to return too (``phash``, ``local``, ``fp``).

        What a library-wide job (``duplicates``) reads instead of ``fetch_rows`` per file, which on
        Lite is a pass over the collection per call. The row ids come in one read; rows with vectors
        or copy signals come ``ALL_PART`` at a time: a reply is at most 256 MB (gRPC's limit), and
        10k images with their local features in the collection made a 400 MB one."""
        if not self.has(kind):
            return []
        name = self.name(kind)
        self.conn.load(name)
        small = TABLES[kind].fetch_fields(vectors=False, signals=False)
        fields = small + ["vector"] * vectors + [f.name for f in self.local.fields(kind) if f.signal and f.name in signals]
        if fields == small:
            rows = [row(r) for r in self.conn.query_all(name, "", fields)]
        else:
            ids = [r["id"] for r in self.conn.query_all(name, "", ["id"])]
            rows = []
            for start in range(0, len(ids), ALL_PART):
                part = ids[start : start + ALL_PART]
                rows += [row(r) for r in self.conn.query_all(name, filters.is_in("id", part), fields, limit=len(part))]
        if "local" in signals and self.local.beside(kind):
            kept = dict(self.local.file.all(name))
            rows = [dataclasses.replace(r, local=kept.get(r.id)) for r in rows]
        return rows

    def _fetch_fields(self, kind: Kind, *, vectors: bool, signals: bool | Sequence[str]) -> list[str]:
        names = TABLES[kind].fetch_fields(vectors=vectors, signals=bool(signals))
        if signals and signals is not True:  # the named ones
            signal = {f.name for f in TABLES[kind].signal_fields}
            names = [n for n in names if n not in signal or n in signals]  # type: ignore[operator]
        return [n for n in names if n != "local"] if signals and self.local.mode(kind) != "collection" else names

    def count(self, kind: str) -> int:
        return self.conn.count(self.name(kind)) if self.has(kind) else 0

    def flush(self) -> None:
        for kind in (*COLLECTIONS, FILES):
            if self.has(kind):
                self.conn.call("flush", self.client.flush, self.name(kind))

    # -- the files manifest (``store.manifest``) -------------------------------------------------
    def get_files(self, file_ids: Sequence[str]) -> dict[str, FileRecord]:
        return self.manifest.get(file_ids)

    def put_files(self, records: Sequence[FileRecord]) -> None:
        self.manifest.put(records)

    def forget_files(self, file_ids: Sequence[str]) -> None:
        self.manifest.forget(file_ids)

    def iter_files(
        self, *, state: str | None = None, content_hash: str | None = None, strong: bool = True
    ) -> Iterator[FileRecord]:
        """Manifest entries, filtered; ``strong=False`` for query-time reads (``Session``, no tick wait)."""
        return self.manifest.iter(state=state, content_hash=content_hash, strong=strong)

    def pending_files(self) -> list[str]:
        """File ids a killed run left ``pending`` (their rows may be half-written)."""
        return self.manifest.pending()


def _stamped_model(properties: dict[str, str] | None) -> ModelSpec | None:
    raw = (properties or {}).get(MODEL_PROPERTY)
    return ModelSpec.from_json(raw) if raw else None


def _stamped_signals(properties: dict[str, str] | None) -> tuple[SignalSpec, ...] | None:
    raw = (properties or {}).get(SIGNALS_PROPERTY)
    return SignalSpec.from_json(raw) if raw else None
