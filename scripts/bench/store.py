"""Milvus insert throughput (Lite and a real server), and a server to measure against."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
import uuid
from contextlib import contextmanager
from collections.abc import Iterator
from typing import Any

import numpy as np

DIM = 2048
#: Why no server could be measured, when that happens.
SERVER_PROBLEM: list[str] = []


@contextmanager
def milvus_server() -> Iterator[str | None]:
    """A real Milvus 2.3.5 standalone server (the ``milvus`` package), or None if unavailable."""
    try:
        from milvus import default_server
    except ImportError:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = tempfile.mkdtemp(prefix="bench-milvus-")
    default_server.set_base_dir(base)
    default_server.config.set("proxy_port", port)
    default_server.start()
    uri = f"http://127.0.0.1:{default_server.listen_port}"
    try:
        # start() returns even when the server died at once (e.g. its embedded etcd's fixed
        # peer port 2380 is taken by another embedded Milvus on this machine).
        time.sleep(3)
        if default_server.server_proc is None or default_server.server_proc.poll() is not None:
            SERVER_PROBLEM.append(
                "the embedded Milvus server exited at start (another embedded Milvus holding port 2380?); "
                "see its logs under " + default_server.config.base_data_dir
            )
            yield None
            return
        yield uri
    finally:
        default_server.stop()
        shutil.rmtree(base, ignore_errors=True)  # about 550 MB of server data per run


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def insert_rates(uri: str, rows: int, batches: tuple[int, ...] = (64, 256, 1024)) -> dict[str, Any]:
    """rows/s of ``MilvusClient.insert`` with row dicts at each batch size, and of ``MilvusStore.upsert_rows``."""
    from pymilvus import DataType, MilvusClient

    from media_search.embed.spec import ModelSpec
    from media_search.store.milvus import MilvusStore

    client = MilvusClient(uri=uri)
    vecs = unit_vectors(rows, seed=1)
    out: dict[str, Any] = {}
    for b in batches:
        name = f"bench_insert_{uuid.uuid4().hex[:8]}"
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("path", DataType.VARCHAR, max_length=1024)
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 200})
        client.create_collection(name, schema=schema, index_params=index)
        started = time.perf_counter()
        for i in range(0, rows, b):
            client.insert(name, [{"id": f"{j:032x}", "vector": vecs[j].tolist(), "path": f"/photos/{j}.jpg"} for j in range(i, min(i + b, rows))])
        client.flush(name)
        out[f"insert_rows_batch{b}"] = round(rows / (time.perf_counter() - started), 1)
        client.drop_collection(name)
    client.close()
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    store = MilvusStore(uri, prefix=prefix)
    store.ensure("image", ModelSpec("bench", "synthetic", DIM, "COSINE", "-"))
    started = time.perf_counter()
    _upsert_synthetic(store, 0, rows, vecs)
    store.flush()
    out["store_upsert_rows"] = round(rows / (time.perf_counter() - started), 1)
    store.drop("image")
    store.drop("files")
    store.close()
    return out


def _upsert_synthetic(store: Any, start: int, stop: int, vecs: np.ndarray) -> None:
    """Rows ``start..stop`` of a synthetic image library: one row per fake file."""
    for i in range(start, stop, 1024):
        j = min(i + 1024, stop)
        ids = [f"{k:032x}" for k in range(i, j)]
        store.upsert_rows("image", {
            "id": ids, "vector": vecs[i - start : j - start], "file_id": ids,
            "path": [f"/library/photo_{k:06d}.jpg" for k in range(i, j)],
            "content_hash": [f"{k:064x}" for k in range(i, j)], "size": [100_000] * (j - i), "mtime": [0.0] * (j - i),
        })


def fill_synthetic(store: Any, spec: Any, have: int, want: int, seed: int) -> None:
    """Grow ``store``'s image collection (stamped with ``spec``) to ``want`` synthetic rows."""
    store.ensure("image", spec)
    for i in range(have, want, 8192):
        j = min(i + 8192, want)
        _upsert_synthetic(store, i, j, unit_vectors(j - i, seed=seed + i))
    store.flush()
