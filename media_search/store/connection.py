"""One connection to Milvus (a Lite file or a server), shared by the collections and the manifest.

Milvus Lite holds its ``.db`` for one process: a second process gets
``StoreLockedError`` (``lite``). Every client call goes through ``call``, which
turns Milvus's own exceptions into ``StoreError``. Writes, counts and the
manifest use ``Strong`` consistency so that a read sees the writes before it
on the server too. Query-time reads use ``Session``: they see this client's
own writes and do not wait for the server's next time tick (200 ms on Milvus
2.3, paid by every Strong read; README "Benchmarks", the query section).
Another process's writes reach them a tick later.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ..config import is_lite_uri
from ..errors import IndexMismatchError, StoreError, StoreLockedError, reason
from . import lite
from .schema import Field

__all__ = ["Connection", "STRONG", "SESSION", "QUERY_WINDOW"]

log = logging.getLogger(__name__)

STRONG = {"consistency_level": "Strong"}
SESSION = {"consistency_level": "Session"}
#: The most rows one server query returns; past it, reads page with an iterator.
QUERY_WINDOW = 16384
#: Float vectors come back as numpy rows of one array per reply, not as Python lists of floats
#: (pymilvus's ``strict_float32``): 422 audio rows with their vectors and fingerprints read in 124
#: ms instead of 178 (median of 30, Milvus Lite).
VECTORS = {"strict_float32": True}
#: gRPC keepalive off for Milvus Lite: its server is a thread of this process, so pings find
#: nothing, and pymilvus pings every 10 s even when idle, which Lite's gRPC server refuses after
#: two: a long-running process (the page, a notebook) then printed ``Received a GOAWAY ...
#: too_many_pings`` from gRPC's C core, which no Python logging setting reaches.
#: (Lite file, collection) pairs known to exist, for every connection of this process (``Connection.has``).
_PRESENT: set[tuple[str, str]] = set()
LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}


class Connection:
    """The ``MilvusClient`` of one URI, opened on first use."""

    def __init__(self, uri: str, *, token: str | None = None) -> None:
        self.uri = uri
        self.token = token
        self.is_lite = is_lite_uri(uri)
        self._client: Any = None
        # Threads (a program's threads sharing a Library, a query's own) may ask for the client
        # first at once: one opens it (a second open of a Lite file in this process found the file
        # locked). The page answers one search at a time (``web.app``).
        self._opening = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._opening:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        if self.is_lite:
            lite.write_buffer()
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
            if self.is_lite:
                kwargs["grpc_options"] = LITE_GRPC_OPTIONS
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
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real outcome
                log.debug("closing the Milvus client failed", exc_info=True)
            self._client = None
            if self.is_lite:  # another process may hold the file next
                _PRESENT.difference_update({k for k in _PRESENT if k[0] == os.path.abspath(self.uri)})
            if self.is_lite:
                lite.release(os.path.abspath(self.uri))

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (IndexMismatchError, StoreError):
            raise
        except Exception as e:
            raise StoreError(f"Milvus failed to {what}: {reason(e)}.") from e

    # -- collections ----------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether collection ``name`` exists. On Lite a yes is remembered (no other process can
        drop it while this one holds the ``.db``; ``drop`` forgets it): a query asks several times,
        and each ask is a round trip through Lite's server threads (1-20 ms under load)."""
        key = (os.path.abspath(self.uri), name)
        if key in _PRESENT:
            return True
        found = bool(self.call("list collections", self.client.has_collection, name))
        if found and self.is_lite:
            _PRESENT.add(key)
        return found

    def drop(self, name: str) -> None:
        _PRESENT.discard((os.path.abspath(self.uri), name))
        self.call("drop a collection", self.client.drop_collection, name)

    def describe(self, name: str) -> dict[str, Any]:
        return self.call("describe a collection", self.client.describe_collection, name)  # type: ignore[no-any-return]

    def create(
        self, what: str, name: str, fields: tuple[Field, ...], dim: int, index: dict[str, Any], properties: dict[str, str] | None = None
    ) -> None:
        """Create, index and load a collection of ``fields`` (besides ``id`` and a ``dim``-d ``vector``).
        Lite builds its index on its own: waiting for it would call a method Lite does not implement
        (its server logs a traceback), so it is skipped."""
        params = self.client.prepare_index_params()
        params.add_index(field_name="vector", **index)
        kwargs = {"properties": properties} if properties else {}
        self.call(what, self.client.create_collection, name, schema=self._schema(fields, dim), **STRONG, **kwargs)
        self.call(what, self.client.create_index, name, params, sync=not self.is_lite)
        self.call(what, self.client.load_collection, name)

    @staticmethod
    def _schema(fields: tuple[Field, ...], dim: int) -> Any:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        for f in fields:
            params = f.params
            if "element_type" in params:
                params = {**params, "element_type": getattr(DataType, params["element_type"])}
            schema.add_field(f.name, getattr(DataType, f.dtype), **params)
        return schema

    def load(self, name: str) -> None:
        """After a restart a collection may come back released: load it."""
        state = self.call("read a load state", self.client.get_load_state, name)
        if "NotLoad" in str(state.get("state", "")):
            self.call("load a collection", self.client.load_collection, name)

    # -- reads ----------------------------------------------------------------------------------
    def query_all(
        self, name: str, expr: str, fields: list[str], consistency: dict[str, str] = STRONG, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Every row matching ``expr`` (the first ``limit`` of them, if given). Lite answers one
        unbounded query; a server answers one query of up to ``QUERY_WINDOW`` rows and pages with an
        iterator (several times slower) only past that (Lite's iterator works too, but logs errors for
        a timestamp call it does not implement)."""
        if limit is not None and not 0 < limit <= QUERY_WINDOW:
            raise ValueError(f"a limited read takes 1 to {QUERY_WINDOW} rows, not {limit}")
        try:
            if self.is_lite or limit is not None:  # one query answers it
                bound = {} if limit is None else {"limit": limit}
                return list(self.client.query(name, filter=expr or 'id != ""', output_fields=fields, **bound, **VECTORS, **consistency))
            first = self.client.query(name, filter=expr or 'id != ""', output_fields=fields, limit=QUERY_WINDOW, **VECTORS, **consistency)
            if len(first) < QUERY_WINDOW:
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

    def count(self, name: str) -> int:
        res = self.call("count rows", self.client.query, name, filter="", output_fields=["count(*)"], **STRONG)
        return int(res[0]["count(*)"]) if res else 0
