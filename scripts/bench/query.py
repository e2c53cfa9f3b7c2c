"""Query latency at growing library sizes: warm (in process, repeated) and cold (a fresh CLI process).

The library is synthetic unit vectors in the real collections (right schema,
stamped with the real model's identity, written through ``MilvusStore``); the
queries are real files going through ``Library.search``. Milvus Lite holds its
``.db`` for one process, so the filling and the warm runs happen in child
processes that exit before the cold CLI runs.

Milvus Lite builds a segment's HNSW index in a background thread after a
flush, and searches brute force until it is there (``describe_index`` says
"Finished" either way). So the filling process also times a few searches
right after its flush (``just_after_fill``: what a query in the same process as
a big indexing run sees), and exits, which drains the build; the warm figures
come from a second process that opens the finished library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def percentiles(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1), "runs": len(xs)}


def _fill_kind(store: Any, kind: str, spec: Any, have: int, want: int, per_file: int, seed: int) -> None:
    """Synthetic keyframes / audio windows: ``per_file`` rows per fake file, one every second."""
    from bench.store import unit_vectors

    store.ensure(kind, spec)
    for i in range(have, want, 4096):
        j = min(i + 4096, want)
        ks = np.arange(i, j)
        fid = [f"{k // per_file:032x}" for k in ks]
        cols: dict[str, Any] = {
            "id": [f"{k:032x}" for k in ks], "vector": unit_vectors(j - i, seed=seed + i), "file_id": fid,
            "path": [f"/library/{kind}_{k // per_file:06d}.mp4" for k in ks],
            "content_hash": [f"{k // per_file:064x}" for k in ks],
            "timestamp": [float(k % per_file) for k in ks], "duration": [float(per_file)] * (j - i),
        }
        if kind == "audio":
            cols["source"] = ["audio"] * (j - i)
        store.upsert_rows(kind, cols)  # type: ignore[arg-type]
    store.flush()


def fill_worker(uri: str, have: int, want: int, queries: dict[str, str], prefix: str | None) -> dict[str, Any]:
    """Grow the library from ``have`` to ``want`` vectors per kind; time 3 image searches right after."""
    from bench.store import fill_synthetic

    from media_search import Library

    lib = Library(uri=uri, image_weights="random", audio_weights="random", device="cpu", prefix=prefix)
    t0 = time.perf_counter()
    fill_synthetic(lib.store, lib.spec("image"), have, want, seed=10)
    if "video" in queries:
        _fill_kind(lib.store, "video", lib.spec("video"), have, want, 60, seed=20)
    if "audio" in queries:
        _fill_kind(lib.store, "audio", lib.spec("audio"), have, want, 24, seed=30)
    out: dict[str, Any] = {"fill_seconds": round(time.perf_counter() - t0, 1)}
    lib.search(queries["image"], k=10)  # models loaded
    out["image_just_after_fill"] = percentiles([_time(lambda: lib.search(queries["image"], k=10)) for _ in range(3)])
    t0 = time.perf_counter()
    lib.close()
    out["close_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def warm_worker(uri: str, queries: dict[str, str], runs: int, prefix: str | None) -> dict[str, Any]:
    """Open the library, then time ``runs`` searches per query kind (after one warm-up each)."""
    from media_search import Library
    from media_search.decode.file import decode_image
    from media_search.embed.embedders import embed_frames

    lib = Library(uri=uri, image_weights="random", audio_weights="random", device="cpu", prefix=prefix)
    out: dict[str, Any] = {}
    for kind, path in queries.items():
        lib.search(path, k=10)  # warm-up: models loaded, collections loaded
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            res = lib.search(path, k=10)
            times.append(time.perf_counter() - t)
        out[kind] = {**percentiles(times), "results": len(res.results)}
    if "image" in queries:  # the parts of an image query
        def embed_image() -> Any:
            return embed_frames(lib.embedders.image, decode_image(queries["image"]).frames, lib.settings.batch_size)

        vec = embed_image()
        out["image"]["embed_ms"] = percentiles([_time(embed_image) for _ in range(5)])["p50_ms"]
        out["image"]["store_search_ms"] = percentiles([_time(lambda: lib.store.search("image", vec, 40)) for _ in range(10)])["p50_ms"]
    lib.close()
    return out


def _time(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def warm(uri: str, have: int, want: int, queries: dict[str, str], runs: int, prefix: str | None = None) -> dict[str, Any]:
    """``fill_worker``, then ``warm_worker``, each in a child process (which releases the Lite lock when it exits)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        out = pool.submit(fill_worker, uri, have, want, queries, prefix).result()
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return {**out, **pool.submit(warm_worker, uri, queries, runs, prefix).result()}


def cold(uri: str, query: str, runs: int, prefix: str | None = None) -> dict[str, Any]:
    """Wall time of a fresh ``media-search query FILE --json`` process, ``runs`` times."""
    env = dict(os.environ, MEDIA_SEARCH_MILVUS_URI=uri, MEDIA_SEARCH_IMAGE_WEIGHTS="random",
               MEDIA_SEARCH_AUDIO_WEIGHTS="random", MEDIA_SEARCH_DEVICE="cpu")
    if prefix:
        env["MEDIA_SEARCH_PREFIX"] = prefix
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "media_search", "query", query, "-k", "10", "--json"],
                           env=env, capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            return {"error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
        json.loads(r.stdout)
    return percentiles(times)
