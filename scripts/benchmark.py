#!/usr/bin/env python3
"""Benchmark media_search against naive baselines measured in the same run.

Sections (``--sections``, default all but gpu and long; ``--gpu`` adds the GPU one):

  images  image indexing files/s: ``Library.index`` against the naive loop
          (Pillow full-size decode, torchvision transforms, eager fp32
          ResNet50 batch 16, MilvusClient.insert of row dicts into Milvus
          Lite), with the share of decode / inference / insert time, on
          1-12 megapixel JPEGs made from sample_media/photos; and with
          each number of decode worker processes in ``--workers``
  unchanged  a re-run over a folder of small files that are all indexed
          already (seconds; the claim: no file is read)
  video   keyframe sampling and video indexing, in multiples of real time
          (720p and 1080p H.264 with scene cuts, made with ffmpeg), with
          the decoding floor (grab every frame) and CPU seconds
  audio   audio indexing in multiples of real time (30 s to 5 min mp3), and
          the window pipeline per engine, library hop and batch size
  insert  rows/s into Milvus Lite and a real Milvus 2.3.5 server (2048-d,
          row dicts, batches of 64/256/1024), and what that costs at GPU speed
  query   query latency p50/p95 with copy verification on, on real files on
          disk: 10k image files made from real photos (1k with --quick),
          videos and sounds, indexed by `media-search index`; edited-copy
          and unrelated image queries, a 10 s 720p clip, a 5 s snippet, warm
          (in process, with where the time goes) and cold (a fresh
          `media-search query` process); Milvus Lite. The library is kept in
          OUT/media/query_library (BENCH_QUERY_LIBRARY) and reused
  gpu     ResNet50 bf16 channels_last images/s, GPU JPEG decoding, files/s
          end to end on a folder of JPEGs, store writes beside it (skipped
          cleanly without CUDA)
  long    hours-long media (only when asked for): index and query a stereo
          44.1 kHz MP3 of each of ``--long-audio`` seconds (default 600 3600
          14400) and a 720p H.264 video of each of ``--long-video`` seconds
          (default 600 3600) with the real CLI: seconds and peak memory
  load    the page under load (only when asked for): ``--clients`` threads
          (default 6) send image and audio queries one after another to the
          page's public ``search`` API (gradio_client) while ``media-search
          index`` adds files to the same Milvus server: p50/p95, errors,
          counts afterwards
  page    the page in Chromium (only when asked for): edited copies of the
          sample photos chosen one after another; time from the end of the
          upload to the first result on screen

All models use seeded random weights (MEDIA_SEARCH_IMAGE_WEIGHTS=random): speed
does not depend on the weights' values. Generated media is cached in
OUT/media; the engine cache and indexes live in OUT/work.
Results: OUT/results.json, OUT/results.md, and OUT/*.png plots (matplotlib).

Examples:
  python scripts/benchmark.py --quick                 # about 5 minutes on 2 cores
  python scripts/benchmark.py                         # default sizes
  python scripts/benchmark.py --full --gpu            # everything
  python scripts/benchmark.py --gpu --sections gpu    # the GPU check alone (H200: ~2 minutes)
  python scripts/benchmark.py --sections long --long-audio 600 3600 --long-video 600
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

SECTIONS = ("images", "unchanged", "video", "audio", "insert", "query", "gpu", "long", "load", "page")
OPT_IN = ("gpu", "long", "load", "page")  # run only when named
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"workers": [], "unchanged": 1000, "audio_engines": ["onnx"], "audio_hops": [5.0], "audio_batches": [16],
              "photos": 40, "videos": [("1280x720", 20)], "audio": [30], "insert_rows": 1024,
              "lite_sizes": [1000, 10000], "server_sizes": [10000], "warm_runs": 10,
              "query_images": 1000, "query_videos": 1, "query_sounds": 4, "query_sound_seconds": 60, "cold_runs": 2, "gpu_files": 2048},
    "default": {"workers": [0, 1], "unchanged": 5000, "audio_engines": ["onnx", "torch", "int8"], "audio_hops": [5.0, 2.5],
                "audio_batches": [16], "photos": 150, "videos": [("1280x720", 60), ("1920x1080", 60)], "audio": [30, 120], "insert_rows": 4096,
                "lite_sizes": [1000, 10000, 100000], "server_sizes": [10000], "warm_runs": 20,
                "query_images": 10000, "query_videos": 4, "query_sounds": 20, "query_sound_seconds": 120, "cold_runs": 3, "gpu_files": 8192},
    "full": {"workers": [0, 1, 2], "unchanged": 5000, "audio_engines": ["onnx", "torch", "int8"], "audio_hops": [5.0, 2.5],
             "audio_batches": [8, 16, 32], "photos": 400, "videos": [("1280x720", 300), ("1920x1080", 300)], "audio": [30, 120, 300], "insert_rows": 16384,
             "lite_sizes": [1000, 10000, 100000], "server_sizes": [10000, 100000], "warm_runs": 30,
             "query_images": 10000, "query_videos": 8, "query_sounds": 60, "query_sound_seconds": 180, "cold_runs": 5, "gpu_files": 20000},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    size.add_argument("--full", action="store_true", help="large sizes (an hour or more on 2 cores)")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, help="which sections to run (default: all but gpu)")
    ap.add_argument("--gpu", action="store_true", help="add the GPU section (skipped cleanly without CUDA)")
    ap.add_argument("--no-server", action="store_true", help="skip the real Milvus server measurements")
    ap.add_argument("--photos", type=int, help="number of photos for the images section")
    ap.add_argument("--workers", type=int, nargs="*", help="decode processes to try in the images section (0: inline)")
    ap.add_argument("--unchanged", type=int, help="files for the unchanged section")
    ap.add_argument("--query-images", type=int, help="image files in the query section's library")
    ap.add_argument("--clients", type=int, default=6, help="load: concurrent clients of the page")
    ap.add_argument("--long-audio", type=int, nargs="*", default=[600, 3600, 14400], metavar="S", help="long section: audio durations (s)")
    ap.add_argument("--long-video", type=int, nargs="*", default=[600, 3600], metavar="S", help="long section: video durations (s)")
    ap.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder (default: bench-results)")
    args = ap.parse_args(argv)

    mode = "quick" if args.quick else "full" if args.full else "default"
    cfg = dict(SIZES[mode], mode=mode, clients=args.clients)
    if args.photos:
        cfg["photos"] = args.photos
    if args.workers is not None:
        cfg["workers"] = args.workers
    if args.unchanged:
        cfg["unchanged"] = args.unchanged
    if args.query_images:
        cfg["query_images"] = args.query_images
    cfg["long_audio"], cfg["long_video"] = args.long_audio, args.long_video
    sections = list(args.sections or [s for s in SECTIONS if s not in OPT_IN])
    if args.gpu and "gpu" not in sections:
        sections.append("gpu")
    out = args.out.resolve()
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ.setdefault("MEDIA_SEARCH_HOME", str(out / "home"))
    os.environ.update(MEDIA_SEARCH_IMAGE_WEIGHTS="random", MEDIA_SEARCH_AUDIO_WEIGHTS="random")

    results: dict[str, Any] = {"mode": mode, "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                               "machine": _machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    server_needed = not args.no_server and ("insert" in sections or "load" in sections)
    from bench.store import milvus_server

    with milvus_server() if server_needed else _nothing() as server:
        for name in sections:
            _log(f"== {name}")
            t = time.perf_counter()
            try:
                results[name] = RUNNERS[name](cfg, out, work, server)
            except Exception as e:  # noqa: BLE001 - one failed section must not lose the others
                results[name] = {"error": f"{type(e).__name__}: {e}"}
            results[name]["section_seconds"] = round(time.perf_counter() - t, 1)
            _log(json.dumps(results[name], indent=1, default=str))
            _write(out, results)
    _log(f"results in {out}/results.md and results.json")
    return 0


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _machine() -> dict[str, Any]:
    import torch

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": os.getloadavg()}


# -- sections ---------------------------------------------------------------------------------------


def run_images(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    from bench import images, media

    files = media.make_photos(out / "media" / f"photos_{cfg['photos']}", cfg["photos"])
    folder = files[0].parent
    res: dict[str, Any] = {"photos": images.megapixels(files)}
    res["stage_costs"] = images.stage_costs(files, work / "stages.db")
    res["ours"] = images.ours(folder, work / "ours.db", len(files))
    res["ours_int8"] = _guard(lambda: images.ours(folder, work / "ours_int8.db", len(files), engine="int8"))
    if cfg["mode"] == "full":
        res["ours_torch_engine"] = images.ours(folder, work / "ours_torch.db", len(files), engine="torch")
    res["naive"] = images.naive_loop(files, work / "naive.db")
    res["ratio"] = round(res["ours"]["files_per_s"] / res["naive"]["files_per_s"], 2)
    for w in cfg["workers"]:
        r = _guard(lambda w=w: images.ours(folder, work / f"ours_w{w}.db", len(files), workers=w))
        if "files_per_s" in r:
            r["ratio"] = round(r["files_per_s"] / res["naive"]["files_per_s"], 2)
        res[f"ours_workers{w}"] = r
    if "files_per_s" in res["ours_int8"]:
        res["ratio_int8"] = round(res["ours_int8"]["files_per_s"] / res["naive"]["files_per_s"], 2)
    res["target"] = ">= 3x the naive loop on 2 cores"
    return res


def run_unchanged(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    from bench import images

    n = cfg["unchanged"]
    return images.unchanged(out / "media" / f"small_{n}", work / "unchanged.db", n)


def run_video(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    try:
        from media_search.decode.video import iter_keyframes  # noqa: F401
    except ImportError:
        return {"skipped": "media_search.decode.video.iter_keyframes does not exist yet"}
    if not shutil.which("ffmpeg"):
        return {"skipped": "ffmpeg is not installed"}
    from bench import av, media

    res: dict[str, Any] = {}
    for size, seconds in cfg["videos"]:
        path = media.make_video(out / "media" / f"video_{size}_{seconds}s.mp4", size=size, seconds=seconds)
        res[f"{size.split('x')[1]}p_{seconds}s"] = av.video(path, work / f"video_{size}.db")
    return res


def run_audio(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    try:
        from media_search.decode.audio import decode_audio  # noqa: F401
        from media_search.embed.audio import AudioEmbedder  # noqa: F401
    except ImportError:
        return {"skipped": "media_search.embed.audio / decode.audio do not exist yet"}
    from bench import av, media

    res: dict[str, Any] = {}
    paths = []
    for seconds in cfg["audio"]:
        path = media.make_audio(out / "media" / f"audio_{seconds}s.mp3", seconds=seconds)
        paths.append(path)
        res[f"{seconds}s"] = av.audio(path, work / f"audio_{seconds}.db")
    res["sweep"] = _guard(lambda: {"runs": av.audio_sweep(paths, cfg["audio_engines"], cfg["audio_hops"], cfg["audio_batches"])})
    return res


def run_insert(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    from bench.store import insert_rates

    res: dict[str, Any] = {"rows": cfg["insert_rows"], "lite": insert_rates(str(work / "insert.db"), cfg["insert_rows"])}
    res["server"] = _guard(lambda: insert_rates(server, cfg["insert_rows"])) if server else {"skipped": _no_server()}
    gpu_rate = 5000.0
    for where in ("lite", "server"):
        rate = res[where].get("store_upsert_rows")
        if rate:
            res[f"at_{int(gpu_rate)}_embeddings_per_s_{where}"] = {
                "insert_seconds_per_gpu_second": round(gpu_rate / rate, 2),
                "insert_share_if_sequential": round((1 / rate) / (1 / rate + 1 / gpu_rate), 3),
                "parallel_writers_needed": round(gpu_rate / rate, 1),
            }
    return res


def run_query(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    """Real files on disk, copy verification on (``bench.query_real``). The library and its index live
    in ``OUT/media/query_library`` (or ``--query-library``) and are reused by later runs."""
    from bench import query_real

    root = Path(os.environ.get("BENCH_QUERY_LIBRARY") or out / "media" / "query_library")
    res = query_real.run(root, n_images=cfg["query_images"], videos=cfg["query_videos"], sounds=cfg["query_sounds"],
                         sound_seconds=cfg["query_sound_seconds"], real_sounds=cfg["mode"] != "quick", runs=cfg["warm_runs"],
                         cold_runs=cfg["cold_runs"])  # fmt: skip
    res["target"] = ("warm image query p50 <= 250 ms, p95 <= 500 ms at 10k image files; audio <= 500 ms; "
                     "10 s 720p video <= 2 s; cold CLI image query <= 2 s; 2 cores")  # fmt: skip
    return res


def run_long(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    if not shutil.which("ffmpeg"):
        return {"skipped": "ffmpeg is not installed"}
    from bench import long

    return long.run(out, work, cfg["long_audio"], cfg["long_video"])


def run_load(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    if server is None:
        return {"skipped": _no_server()}
    from bench import load

    return load.run(out / "media" / "load_library", server, clients=cfg["clients"])


def run_page(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    from bench import page

    return page.run(work / "page")


def run_gpu(cfg: dict[str, Any], out: Path, work: Path, server: str | None) -> dict[str, Any]:
    from bench import gpu

    device = os.environ.get("BENCH_GPU_DEVICE", "cuda")  # "cpu": try the code path without a GPU
    n = 64 if device == "cpu" else cfg["gpu_files"]
    return gpu.run(out / "media" / "jpeg_720p", work / "gpu_store.db", n_files=n, device=device, quick=cfg["mode"] == "quick")


def _guard(fn: Any) -> dict[str, Any]:
    """``fn()``, or its error as a result entry: one failed measurement must not lose the others."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}


def _no_server() -> str:
    from bench.store import SERVER_PROBLEM

    return SERVER_PROBLEM[0] if SERVER_PROBLEM else "no Milvus server (--no-server, or the `milvus` package is missing)"


RUNNERS = {"images": run_images, "unchanged": run_unchanged, "video": run_video, "audio": run_audio, "insert": run_insert, "query": run_query, "gpu": run_gpu, "long": run_long, "load": run_load, "page": run_page}


# -- output -----------------------------------------------------------------------------------------


def _write(out: Path, results: dict[str, Any]) -> None:
    from bench.report import markdown, plots

    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.md").write_text(markdown(results))
    try:
        plots(results, out)
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())
