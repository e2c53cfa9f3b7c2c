"""The Milvus store: one collection per kind, plus a ``files`` manifest.

Collections (names take the configured prefix):

* ``images``, ``video_frames``, ``audio_windows``: one row per image, keyframe
  or audio window (DESIGN.md section 2), plus ``file_id`` (hex of the resolved
  path) so that a file's rows can be found and deleted without putting a path
  in a filter, and a copy-detection field (``COPY_FIELDS``: ``phash`` or ``fp``).
* ``files``: one row per indexed file (path, kind, hash, size, mtime, state,
  rows). A file's rows are written between a ``pending`` and a ``done`` entry,
  so a run killed at any moment leaves a mark that the next run repairs: this
  is what makes indexing resumable without duplicates or orphans. Milvus needs
  a vector in every collection; ``files`` carries a constant 2-d one.

Each content collection records the model that filled it in the collection
property ``media_search.model`` (collection descriptions are not kept by
Milvus Lite; properties are kept by both Lite and the server).

Milvus Lite holds its ``.db`` for one process: a second process gets
``StoreLockedError``. Writes, counts and the manifest use ``Strong``
consistency so that a read sees the writes before it on the server too.
Query-time reads (``search``, ``fetch_rows``, ``iter_files(strong=False)``)
use ``Session``: they see this client's own writes and do not wait for the
server's next time tick (200 ms on Milvus 2.3, paid by every Strong read:
they made an image query on a 10k server library take 800 ms instead of
about 200, ``scripts/benchmark.py --sections query``). Another process's
writes reach them a tick later.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import IndexMismatchError, StoreError, StoreLockedError, reason
from ..extractors.spec import ModelSpec
from ..types import Kind
from . import filters, lite
from .records import FILE_FIELDS, FileRecord, Hit, file_record, hit

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["MilvusStore", "Hit", "FileRecord", "COLLECTIONS"]

log = logging.getLogger(__name__)

COLLECTIONS: dict[str, str] = {"image": "images", "video": "video_frames", "audio": "audio_windows"}
FILES = "files"
MODEL_PROPERTY = "media_search.model"
_PATH_MAX = 65535
_BATCH = 256
_WINDOW = 16384  # the most rows one server query returns
_STRONG = {"consistency_level": "Strong"}
_SESSION = {"consistency_level": "Session"}
_HNSW = {"M": 16, "efConstruction": 200}
#: Copy-detection fields (``copydetect``): a pHash per image and keyframe row (16 hex digits), the
#: landmark fingerprint of each audio window's stretch (``copydetect.audio.pack`` values). ARRAY
#: fields are stored and returned by Milvus Lite 3.2 and Milvus 2.3.5 alike; they are never
#: filtered on (``array_contains_any`` is a per-row Python loop on Lite), only fetched.
FP_CAPACITY = 4096
COPY_FIELDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "image": ("phash", "VARCHAR", {"max_length": 16}),
    "video": ("phash", "VARCHAR", {"max_length": 16}),
    "audio": ("fp", "ARRAY", {"element_type": "INT64", "max_capacity": FP_CAPACITY}),
}


class MilvusStore:
    """One Milvus database (Lite file or server) holding every kind's collection."""

    def __init__(self, uri: str, *, token: str | None = None, prefix: str = "media_search_") -> None:
        self.uri = uri
        self.token = token
        self.prefix = prefix
        self.is_lite = not uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix://"))
        self._client: Any = None
        self._checked: dict[str, ModelSpec] = {}
        self.writes = 0  # manifest writes by this object: the fingerprint index (``prints``) resyncs on a change

    @classmethod
    def from_settings(cls, settings: Settings) -> MilvusStore:
        return cls(settings.uri, token=settings.token, prefix=settings.prefix)

    # -- connection ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        try:
            from pymilvus import MilvusClient
        except ImportError as e:  # pragma: no cover - a broken install
            raise StoreError("pymilvus is not installed: pip install 'pymilvus[milvus-lite]'.") from e
        if self.is_lite:
            folder = os.path.dirname(os.path.abspath(self.uri))
            os.makedirs(folder, exist_ok=True)
            if lite.locked(self.uri):
                raise self._locked_error()
        try:
            kwargs: dict[str, Any] = {"uri": self.uri}
            if self.token:
                kwargs["token"] = self.token
            client = MilvusClient(**kwargs)
            if self.is_lite:
                lite.opened(os.path.abspath(self.uri))
        except Exception as e:
            if self.is_lite and lite.locked(self.uri):  # locked between our check and the open
                raise self._locked_error() from e
            where = f"the Milvus Lite file {self.uri}" if self.is_lite else f"the Milvus server at {self.uri}"
            raise StoreError(
                f"Cannot open {where}: {reason(e)}. Check MEDIA_SEARCH_MILVUS_URI "
                "(and MEDIA_SEARCH_MILVUS_TOKEN) or pass --uri."
            ) from e
        return client

    def _locked_error(self) -> StoreLockedError:
        return StoreLockedError(
            f"The index {self.uri} is in use by another process (Milvus Lite lets one "
            "process open a .db at a time): stop the other media-search process, or "
            "serve the index with `milvus-lite server` or a Milvus server and point "
            "MEDIA_SEARCH_MILVUS_URI at it."
        )

    def close(self) -> None:
        """Close the connection. For Milvus Lite, the last store of a ``.db`` in this process also
        stops its embedded server, which releases the file for other processes."""
        prints = self.__dict__.pop("_print_index", None)  # the fingerprint side index (``store.prints``)
        if prints is not None:
            prints.close()
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real outcome
                log.debug("closing the Milvus client failed", exc_info=True)
            self._client = None
            if self.is_lite:
                lite.release(os.path.abspath(self.uri))

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (IndexMismatchError, StoreError):
            raise
        except Exception as e:
            raise StoreError(f"Milvus failed to {what}: {reason(e)}.") from e

    # -- collections ----------------------------------------------------------------------------
    def name(self, kind: str) -> str:
        return self.prefix + (FILES if kind == FILES else COLLECTIONS[kind])

    def has(self, kind: str) -> bool:
        return bool(self._call("list collections", self.client.has_collection, self.name(kind)))

    def model_of(self, kind: Kind) -> ModelSpec | None:
        """The model stamped into ``kind``'s collection, or None if it does not exist."""
        if not self.has(kind):
            return None
        info = self._call("describe a collection", self.client.describe_collection, self.name(kind))
        raw = (info.get("properties") or {}).get(MODEL_PROPERTY)
        return ModelSpec.from_json(raw) if raw else None

    def ensure(self, kind: Kind, spec: ModelSpec) -> None:
        """Create ``kind``'s collection for ``spec``, or check that it was filled by ``spec``."""
        if self._checked.get(kind) == spec:
            return
        self._ensure_files()
        name = self.name(kind)
        if not self.has(kind):
            self._create(kind, spec)
        else:
            self._check_copy_field(kind)
            stamped = self.model_of(kind)
            if stamped != spec:
                raise IndexMismatchError(
                    f"The {kind} collection {name} was built with "
                    f"{stamped.describe() if stamped else 'an unknown model'}, but this run uses "
                    f"{spec.describe()}. Use the same weights setting as when it was built, or "
                    f"rebuild: `media-search reset --kind {kind}` then index again "
                    "(or choose another MEDIA_SEARCH_MILVUS_URI / prefix)."
                )
            self._load(name)
        self._checked[kind] = spec

    def _check_copy_field(self, kind: Kind) -> None:
        info = self._call("describe a collection", self.client.describe_collection, self.name(kind))
        names = {f.get("name") for f in info.get("fields", [])}
        field = COPY_FIELDS[kind][0]
        if field not in names:
            raise IndexMismatchError(
                f"The {kind} collection {self.name(kind)} was built by an older media_search, without "
                f"the copy-detection field {field!r}. Rebuild it: `media-search reset --kind {kind}` "
                "then index again (or choose another MEDIA_SEARCH_MILVUS_URI / prefix)."
            )

    def _schema(self, fields: list[tuple[str, Any, dict[str, Any]]], dim: int) -> Any:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        for fname, dtype, params in fields:
            if "element_type" in params:
                params = {**params, "element_type": getattr(DataType, params["element_type"])}
            schema.add_field(fname, getattr(DataType, dtype), **params)
        return schema

    def _create(self, kind: Kind, spec: ModelSpec) -> None:
        fields: list[tuple[str, Any, dict[str, Any]]] = [
            ("file_id", "VARCHAR", {"max_length": 64}),
            ("path", "VARCHAR", {"max_length": _PATH_MAX}),
            ("content_hash", "VARCHAR", {"max_length": 64}),
        ]
        if kind == "image":
            fields += [("size", "INT64", {}), ("mtime", "DOUBLE", {})]
        else:
            fields += [("timestamp", "DOUBLE", {}), ("duration", "DOUBLE", {})]
        if kind == "audio":
            fields += [("source", "VARCHAR", {"max_length": 16})]
        fields += [COPY_FIELDS[kind]]
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="HNSW", metric_type=spec.metric, params=_HNSW)
        self._create_collection(
            "create a collection", self.name(kind), self._schema(fields, spec.dim), index,
            properties={MODEL_PROPERTY: spec.to_json()},
        )
        log.info("created collection %s for %s", self.name(kind), spec.describe())

    def _create_collection(self, what: str, name: str, schema: Any, index: Any, **kwargs: Any) -> None:
        """Create, index and load a collection. Lite builds its index on its own: waiting for it
        would call a method Lite does not implement (its server logs a traceback), so it is skipped."""
        self._call(what, self.client.create_collection, name, schema=schema, **_STRONG, **kwargs)
        self._call(what, self.client.create_index, name, index, sync=not self.is_lite)
        self._call(what, self.client.load_collection, name)

    def _ensure_files(self) -> None:
        if FILES in self._checked:
            return
        name = self.name(FILES)
        if not self.has(FILES):
            fields: list[tuple[str, Any, dict[str, Any]]] = [
                ("path", "VARCHAR", {"max_length": _PATH_MAX}),
                ("kind", "VARCHAR", {"max_length": 16}),
                ("content_hash", "VARCHAR", {"max_length": 64}),
                ("size", "INT64", {}),
                ("mtime", "DOUBLE", {}),
                ("state", "VARCHAR", {"max_length": 16}),
                ("rows", "INT64", {}),
            ]
            index = self.client.prepare_index_params()
            index.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
            self._create_collection("create the files collection", name, self._schema(fields, 2), index)
        else:
            self._load(name)
        self._checked[FILES] = ModelSpec("files", "-", 2)

    def _load(self, name: str) -> None:
        # After a restart a collection may come back released: load it.
        state = self._call("read a load state", self.client.get_load_state, name)
        if "NotLoad" in str(state.get("state", "")):
            self._call("load a collection", self.client.load_collection, name)

    def drop(self, kind: str) -> None:
        """Drop ``kind``'s collection and forget its files in the manifest."""
        if kind != FILES and self.has(FILES):
            self._ensure_files()
            stale = [r.file_id for r in self.iter_files() if r.kind == kind or (kind == "audio" and r.kind == "video")]
            self.forget_files(stale)
        if self.has(kind):
            self._call("drop a collection", self.client.drop_collection, self.name(kind))
        self._checked.pop(kind, None)

    # -- content rows -------------------------------------------------------------------------
    def upsert_rows(self, kind: Kind, columns: dict[str, Sequence[Any] | np.ndarray]) -> int:
        """Upsert rows given as columns (``id``, ``vector`` and the collection's fields)."""
        n = len(columns["id"])
        copy_field = COPY_FIELDS[kind][0]
        if copy_field not in columns:  # a writer without copy signals: rows are simply never copies
            columns = {**columns, copy_field: [[] if copy_field == "fp" else ""] * n}
        names = list(columns)
        vectors = np.asarray(columns["vector"], dtype=np.float32)
        plain = {k: list(v.tolist() if isinstance(v, np.ndarray) else v) for k, v in columns.items() if k != "vector"}
        if copy_field == "fp":
            plain["fp"] = [[int(x) for x in v] for v in plain["fp"]]
        done = 0
        for start in range(0, n, _BATCH):
            stop = min(start + _BATCH, n)
            rows = [
                {**{k: plain[k][i] for k in names if k != "vector"}, "vector": vectors[i]}
                for i in range(start, stop)
            ]
            self._call("write rows", self.client.upsert, self.name(kind), rows)
            done += stop - start
        return done

    def delete_rows(self, kind: Kind, file_ids: Iterable[str]) -> None:
        """Delete every row of the given files from ``kind``'s collection."""
        ids = list(file_ids)
        if not ids or not self.has(kind):
            return
        for start in range(0, len(ids), _BATCH):
            expr = filters.is_in("file_id", ids[start : start + _BATCH])
            self._call("delete rows", self.client.delete, self.name(kind), filter=expr)

    def search(
        self,
        kind: Kind,
        vectors: np.ndarray,
        limit: int,
        *,
        exclude_hash: str | None = None,
        file_ids: Sequence[str] | None = None,
        source: str | None = None,
    ) -> list[list[Hit]]:
        """Nearest rows for each query vector (cosine, best first), the query's content excluded."""
        if not self.has(kind) or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        clauses = []
        if exclude_hash:
            clauses.append(filters.ne("content_hash", exclude_hash))
        if file_ids is not None:
            clauses.append(filters.is_in("file_id", file_ids))
        if source is not None:
            clauses.append(f"source == {filters.quote(source)}")
        fields = ["file_id", "path", "content_hash"] + (
            [] if kind == "image" else ["timestamp", "duration"] + (["source"] if kind == "audio" else [])
        ) + (["phash"] if kind != "audio" else [])
        data = np.asarray(vectors, dtype=np.float32)
        result = self._call(
            "search",
            self.client.search,
            self.name(kind),
            data=[v for v in data],
            limit=int(min(max(limit, 1), 16384)),
            filter=" and ".join(clauses),
            output_fields=fields,
            search_params={"metric_type": "COSINE", "params": {"ef": max(64, min(limit, 16384))}},
            **_SESSION,
        )
        return [[hit(h) for h in hits] for hits in result]

    def fetch_rows(
        self, kind: Kind, file_ids: Sequence[str], *, vectors: bool = True, copy_fields: bool = False
    ) -> list[dict[str, Any]]:
        """Every row of the given files (with vectors, and the copy-detection field, if asked)."""
        if not file_ids or not self.has(kind):
            return []
        fields = ["id", "file_id", "path", "content_hash"]
        fields += ["timestamp", "duration"] if kind != "image" else []
        fields += ["source"] if kind == "audio" else []
        fields += ["vector"] if vectors else []
        fields += [COPY_FIELDS[kind][0]] if copy_fields else []
        out: list[dict[str, Any]] = []
        for start in range(0, len(file_ids), 64):
            expr = filters.is_in("file_id", file_ids[start : start + 64])
            out.extend(self._query_all(self.name(kind), expr, fields, _SESSION))
        return out

    def count(self, kind: str) -> int:
        if not self.has(kind):
            return 0
        res = self._call("count rows", self.client.query, self.name(kind), filter="", output_fields=["count(*)"], **_STRONG)
        return int(res[0]["count(*)"]) if res else 0

    def flush(self) -> None:
        for kind in (*COLLECTIONS, FILES):
            if self.has(kind):
                self._call("flush", self.client.flush, self.name(kind))

    # -- the files manifest ----------------------------------------------------------------------
    def get_files(self, file_ids: Sequence[str]) -> dict[str, FileRecord]:
        self._ensure_files()
        out: dict[str, FileRecord] = {}
        for start in range(0, len(file_ids), _BATCH):
            expr = filters.is_in("id", file_ids[start : start + _BATCH])
            for row in self._query_all(self.name(FILES), expr, FILE_FIELDS):
                rec = file_record(row)
                out[rec.file_id] = rec
        return out

    def put_files(self, records: Sequence[FileRecord]) -> None:
        self._ensure_files()
        self.writes += 1
        rows = [
            {
                "id": r.file_id,
                "vector": [0.0, 0.0],
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
            self._call("write the files manifest", self.client.upsert, self.name(FILES), rows[start : start + _BATCH])

    def forget_files(self, file_ids: Sequence[str]) -> None:
        self.writes += 1
        if not file_ids:
            return
        self._ensure_files()
        for start in range(0, len(file_ids), _BATCH):
            expr = filters.is_in("id", file_ids[start : start + _BATCH])
            self._call("delete from the files manifest", self.client.delete, self.name(FILES), filter=expr)

    def iter_files(
        self, *, state: str | None = None, content_hash: str | None = None, strong: bool = True
    ) -> Iterator[FileRecord]:
        """Manifest entries, filtered; ``strong=False`` for query-time reads (``Session``, no tick wait)."""
        self._ensure_files()
        clauses = []
        if state is not None:
            clauses.append(f"state == {filters.quote(state)}")
        if content_hash is not None:
            clauses.append(filters.eq("content_hash", content_hash))
        consistency = _STRONG if strong else _SESSION
        for row in self._query_all(self.name(FILES), " and ".join(clauses), FILE_FIELDS, consistency):
            yield file_record(row)

    def _query_all(
        self, name: str, expr: str, fields: list[str], consistency: dict[str, str] = _STRONG
    ) -> list[dict[str, Any]]:
        """Every row matching ``expr``. Lite answers one unbounded query; a server answers one query of
        up to ``_WINDOW`` rows (0.2 s) and pages with an iterator (0.6 s and more) only past that
        (Lite's iterator works too, but logs errors for a timestamp call it does not implement)."""
        try:
            if self.is_lite:
                return list(self.client.query(name, filter=expr or 'id != ""', output_fields=fields, **consistency))
            first = self.client.query(name, filter=expr or 'id != ""', output_fields=fields, limit=_WINDOW, **consistency)
            if len(first) < _WINDOW:
                return list(first)
            it = self.client.query_iterator(name, batch_size=1000, filter=expr, output_fields=fields, **consistency)
            rows: list[dict[str, Any]] = []
            try:
                while batch := it.next():
                    rows.extend(batch)
            finally:
                it.close()
            return rows
        except (StoreError, IndexMismatchError):
            raise
        except Exception as e:
            raise StoreError(f"Milvus failed to read rows: {reason(e)}.") from e
