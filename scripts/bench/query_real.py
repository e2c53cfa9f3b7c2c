"""Query latency on real files on disk, copy verification on (issue 18).

A library of real-photo image files (``bench.query_lib``: 10k by default),
some videos and sounds, all on disk (``ROOT/images``, ``videos``, ``audio``), indexed with the product's own indexer
(``media-search index``, a child process). Then:

* warm: one child process opens the library and times queries of each kind
  (edited copies of library images and unrelated pictures; a 10 s 720p clip
  cut from a library video; a 5 s snippet of a library sound), each after a
  warm-up, and where the image query's time goes (decode, embed, search,
  fetching stored features, verification): ``Timers`` wraps the query
  module's functions;
* cold: a fresh ``media-search query FILE --json`` process, wall time and its
  CPU seconds (user + system, from ``resource``: less sensitive to other
  load on a shared machine than wall time).

Milvus Lite holds its ``.db`` for one process: the indexer and each measuring
process run one after another. Every row points to a file that exists.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def percentiles(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1), "runs": len(xs)}


def env(uri: str) -> dict[str, str]:
    return dict(os.environ, MEDIA_SEARCH_MILVUS_URI=uri, MEDIA_SEARCH_IMAGE_WEIGHTS="random",
                MEDIA_SEARCH_AUDIO_WEIGHTS="random", MEDIA_SEARCH_DEVICE="cpu")  # fmt: skip


def build(root: Path, n_images: int, videos: int, sounds: int, sound_seconds: float, real_sounds: bool) -> dict[str, Any]:
    """The library's files under ``root`` (made once, reused) and the queries. ``real_sounds``: every
    real recording ``bench.real_audio`` finds joins the library in place (about 8,800 files and
    9,300 windows of 5 s with its packages installed), and 4 s excerpts of three of them are
    queries too."""
    from bench import media, query_lib, real_audio

    images = query_lib.make_library(root / "images", n_images)
    vids = [media.make_video(root / "videos" / f"video_{i:02d}.mp4", size="1280x720", seconds=30) for i in range(videos)]
    snds = [media.make_audio(root / "audio" / f"sound_{i:02d}.mp3", seconds=sound_seconds, seed=100 + i) for i in range(sounds)]
    qdir = root / "queries"
    qdir.mkdir(parents=True, exist_ok=True)
    clip = qdir / "clip_10s_720p.mp4"
    if vids and not clip.exists():
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-ss", "8", "-t", "10", "-i", str(vids[0]), "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "26", "-c:a", "aac", str(clip)], check=True)  # fmt: skip
    snippet = qdir / "snippet_5s.wav"
    if snds and not snippet.exists():
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-ss", "20", "-t", "5", "-i", str(snds[0]), str(snippet)], check=True)
    other = media.make_audio(qdir / "unrelated_5s.wav", seconds=5, seed=999) if snds else None
    recordings = real_audio.find_recordings(capped=False) if real_sounds else []  # reads and hashes each file
    real = [p for p, _ in recordings]
    real_queries = []
    for p, d in sorted(recordings, key=lambda r: -r[1])[:3]:
        q = qdir / f"real_4s_{Path(p).stem}.wav"
        if not q.exists():
            subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-ss", str(round(d / 3, 2)), "-t", "4", "-i", p, str(q)], check=True)
        real_queries.append(str(q))
    return {
        "files": [str(p) for p in [*images, *vids, *snds, *real]], "n_images": len(images), "n_videos": len(vids),
        "n_sounds": len(snds), "n_real_recordings": len(real),
        "image_queries": query_lib.make_queries(qdir / f"images_{len(images)}", images, 40),  # edits of this library's files
        "video_queries": [str(clip)] if vids else [],
        "audio_queries": ([str(snippet)] if snds else []) + ([str(other)] if other else []) + real_queries,
    }  # fmt: skip


def index(uri: str, files: list[str]) -> dict[str, Any]:
    """``media-search index FILE...`` (the product's indexer); a second run over indexed files reads none."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "media_search", "index", *files, "--json"], env=env(uri),
                       capture_output=True, text=True, timeout=6 * 3600)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1:])
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - t, 1)}
    try:
        out["report"] = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out["report"] = r.stdout.strip().splitlines()[-1:]
    return out


class Timers:
    """Wall time spent in named functions of the query modules during the calls in between."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.spent[label] += time.perf_counter() - t

        setattr(owner, name, timed)
        self._undo.append((owner, name, fn))

    def take(self) -> dict[str, float]:
        out = dict(self.spent)
        self.spent.clear()
        return out


def warm_worker(uri: str, queries: dict[str, Any], runs: int) -> dict[str, Any]:
    """Time each kind's queries (after one warm-up each) in one process that holds the library."""
    from media_search import Library
    from media_search.query import rank, search
    from media_search.signals import image as fi
    from media_search.store.milvus import MilvusStore

    tm = Timers()
    tm.wrap(search, "open_image", "decode")
    tm.wrap(search, "prepare", "decode")
    tm.wrap(search, "embed_frames", "embed")
    tm.wrap(MilvusStore, "search", "search")
    tm.wrap(MilvusStore, "local_features", "fetch_features")
    tm.wrap(rank, "rerank_pictures", "copy_verification")  # includes fetch_features
    tm.wrap(fi, "features", "query_features")
    lib = Library(uri=uri, image_weights="random", audio_weights="random", device="cpu")
    out: dict[str, Any] = {}
    image = queries["image_queries"]
    kinds = {"image": [q["query"] for q in image], "video": queries["video_queries"], "audio": queries["audio_queries"]}
    for kind, paths in kinds.items():
        if not paths:
            continue
        lib.search(paths[0], k=10)  # warm-up: the model and the collections loaded
        tm.take()
        times, cpu, parts = [], [], defaultdict(list)
        found: list[dict[str, Any]] = []
        reps = max(1, runs // len(paths)) if kind != "image" else 1
        for _ in range(reps):
            for p in paths:
                c, t = time.process_time(), time.perf_counter()
                res = lib.search(p, k=10)
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
                for label, s in tm.take().items():
                    parts[label].append(s)
                found.append({"query": p, "top": res.results[0].path if res.results else None,
                              "copy": bool(res.results and res.results[0].copy), "copies": sum(bool(m.copy) for m in res.results)})  # fmt: skip
        entry: dict[str, Any] = {**percentiles(times), "cpu": percentiles(cpu),
                                 "mean_ms_in": {k: round(1000 * float(np.mean(v + [0.0] * (len(times) - len(v)))), 1) for k, v in parts.items()}}  # fmt: skip
        if kind == "image":
            copies = [(q, f) for q, f in zip(image, found) if q["original"]]
            entry["edited_copies"] = len(copies)
            entry["copy_flagged_first"] = sum(f["copy"] for _, f in copies)
            entry["original_first"] = sum(f["top"] == q["original"] for q, f in copies)
            unrelated = [f for q, f in zip(image, found) if not q["original"]]
            entry["unrelated"] = len(unrelated)
            entry["unrelated_with_a_copy_flag"] = sum(f["copies"] > 0 for f in unrelated)
            entry["by_family_p50_ms"] = {
                fam: round(1000 * float(np.median([t for q, t in zip(image, times) if q["family"] == fam])), 1)
                for fam in sorted({q["family"] for q in image})
            }
        else:
            entry["copy_flagged_first"] = sum(f["copy"] for f in found)
        out[kind] = entry
    lib.close()
    return out


def warm(uri: str, queries: dict[str, Any], runs: int) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(warm_worker, uri, queries, runs).result()


def cold(uri: str, query: str, runs: int) -> dict[str, Any]:
    """A fresh ``media-search query FILE --json`` process, ``runs`` times: wall and CPU seconds."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "media_search", "query", query, "-k", "10", "--json"],
                           env=env(uri), capture_output=True, text=True, timeout=600)  # fmt: skip
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if r.returncode != 0:
            return {"error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
        json.loads(r.stdout)
    # MEDIA_SEARCH_VERBOSE: the command otherwise takes over its stderr (``decode.quiet``), and with
    # it the interpreter's import-time lines
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "media_search", "query", query, "-k", "10", "--json"],
                       env={**env(uri), "MEDIA_SEARCH_VERBOSE": "1"}, capture_output=True, text=True, timeout=600)  # fmt: skip
    heavy = {}
    for line in r.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and not parts[2].startswith("  "):
            name = parts[2].strip()
            if name in ("torch", "torchvision", "onnxruntime", "cv2", "pymilvus", "PIL", "numpy", "scipy", "gradio"):
                heavy[name] = round(int(parts[1]) / 1e6, 2)
    return {**percentiles(times), "cpu": percentiles(cpu), "top_level_import_seconds": heavy}


def run(root: Path, *, n_images: int, videos: int, sounds: int, sound_seconds: float, real_sounds: bool, runs: int,
        cold_runs: int) -> dict[str, Any]:  # fmt: skip
    queries = build(root, n_images, videos, sounds, sound_seconds, real_sounds)
    uri = str(root / f"index_{n_images}{'_real' if queries['n_real_recordings'] else ''}.db")
    res: dict[str, Any] = {"library": {k: queries[k] for k in ("n_images", "n_videos", "n_sounds", "n_real_recordings")}}
    res["index"] = index(uri, queries["files"])
    res["warm"] = warm(uri, queries, runs)
    res["cold_image"] = cold(uri, queries["image_queries"][0]["query"], cold_runs)
    return res
