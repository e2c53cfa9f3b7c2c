"""The page under load: clients of its public ``search`` API while ``media-search index`` writes.

A library of real-photo images (``query_lib``) and generated sounds is indexed into a Milvus
server with the product's indexer; ``media-search serve`` is started on it; then ``clients``
threads, each with its own ``gradio_client.Client``, send image and audio queries one after
another (edited copies of library files) while a second ``media-search index`` adds
``new_images`` more files to the same server. Reported: per-query latency p50/p95 (wall, as a
client sees it, upload included), queries per second, errors, how long the indexer took beside
them, and the counts afterwards (``media-search stats --json``) against the files indexed.
``BENCH_LOAD_NICE=0`` runs that indexer at normal priority (default: the CLI's ``--nice``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "media_search", *args], env=env, capture_output=True, text=True, timeout=timeout)


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"media-search serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the page did not answer on {url} within {timeout:.0f} s")


def _client_loop(url: str, queries: list[str], stop: threading.Event, out: list[tuple[float, float, str | None]], offset: int) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    i = offset
    while not stop.is_set():
        path = queries[i % len(queries)]
        i += 1
        t = time.perf_counter()
        try:
            reply = json.loads(client.predict(handle_file(path), 10, [], api_name="/search"))
            err = None if "results" in reply else str(reply)[:200]
        except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
            err = f"{type(e).__name__}: {e}"[:200]
        out.append((t, time.perf_counter() - t, err))


def run(root: Path, server: str, *, clients: int = 6, n_images: int = 300, new_images: int = 200,
        n_sounds: int = 12, seconds: float = 90.0) -> dict[str, Any]:  # fmt: skip
    from bench import media, query_lib

    images = query_lib.make_library(root / "images", n_images + new_images, seed=23)
    first, later = images[:n_images], images[n_images:]
    sounds = [media.make_audio(root / "audio" / f"sound_{i:02d}.mp3", seconds=20, seed=300 + i) for i in range(n_sounds)]
    image_queries = [q["query"] for q in query_lib.make_queries(root / "queries", first, 24, seed=29) if q["query"]]
    snippets = []
    for i, s in enumerate(sounds[:6]):
        snip = root / "queries" / f"snippet_{i}.wav"
        if not snip.exists():
            subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-ss", "6", "-t", "5", "-i", str(s), str(snip)], check=True)
        snippets.append(str(snip))
    queries = [q for pair in zip(image_queries, snippets * 4) for q in pair]  # image, sound, image, ...

    prefix = f"load{int(time.time())}_"
    env = dict(os.environ, MEDIA_SEARCH_MILVUS_URI=server, MEDIA_SEARCH_PREFIX=prefix, MEDIA_SEARCH_IMAGE_WEIGHTS="random",
               MEDIA_SEARCH_AUDIO_WEIGHTS="random", MEDIA_SEARCH_DEVICE="cpu")  # fmt: skip
    t = time.perf_counter()
    r = _cli("index", *map(str, first), *map(str, sounds), "--json", env=env)
    if r.returncode != 0:
        raise RuntimeError(f"index failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    res: dict[str, Any] = {"library": {"images": len(first), "sounds": len(sounds), "added_under_load": len(later)},
                           "first_index_seconds": round(time.perf_counter() - t, 1), "clients": clients}  # fmt: skip

    port = _port()
    url = f"http://127.0.0.1:{port}/"
    page = subprocess.Popen([sys.executable, "-m", "media_search", "serve", "--port", str(port), "--library", str(root)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_up(url, page)
        stop = threading.Event()
        got: list[list[tuple[float, float, str | None]]] = [[] for _ in range(clients)]
        threads = [threading.Thread(target=_client_loop, args=(url, queries, stop, got[i], 3 * i), daemon=True) for i in range(clients)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        nice = ["--nice", os.environ["BENCH_LOAD_NICE"]] if os.environ.get("BENCH_LOAD_NICE") else []  # default: the CLI's
        indexer = subprocess.Popen([sys.executable, "-m", "media_search", "index", *map(str, later), "--json", *nice], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        out, _ = indexer.communicate(timeout=3600)
        index_seconds = time.perf_counter() - t0
        while time.perf_counter() - t0 < seconds:
            time.sleep(0.5)
        stop.set()
        for th in threads:
            th.join(timeout=120)
        wall = time.perf_counter() - t0
    finally:
        page.terminate()
        page.wait(timeout=30)
    times = [x for g in got for _, x, e in g if e is None]
    errors = [e for g in got for _, _, e in g if e is not None]
    during = np.asarray([x for g in got for t, x, e in g if e is None and t + x <= t0 + index_seconds]) * 1000
    a = np.asarray(times) * 1000
    res["under_load"] = {
        "queries": len(times) + len(errors), "errors": len(errors), "first_errors": sorted(set(errors))[:3],
        "p50_ms": round(float(np.percentile(a, 50)), 1) if len(a) else None,
        "p95_ms": round(float(np.percentile(a, 95)), 1) if len(a) else None,
        "queries_per_second": round(len(times) / wall, 2), "seconds": round(wall, 1),
        "while_indexing": {"queries": len(during), "p50_ms": round(float(np.percentile(during, 50)), 1) if len(during) else None,
                           "p95_ms": round(float(np.percentile(during, 95)), 1) if len(during) else None},
        "indexer_rc": indexer.returncode, "indexer_nice": nice[1] if nice else "default", "indexer_seconds_beside_the_queries": round(index_seconds, 1),
    }  # fmt: skip
    try:
        res["indexer_report"] = {k: v for k, v in json.loads(out.strip().splitlines()[-1]).items() if k in ("indexed", "failed", "by_kind")}
    except (ValueError, IndexError):
        res["indexer_report"] = out.strip().splitlines()[-1:]
    st = _cli("stats", "--json", env=env)
    try:
        res["stats_after"] = json.loads(st.stdout)
    except ValueError:
        res["stats_after"] = (st.stderr or st.stdout).strip().splitlines()[-1:]
    return res
