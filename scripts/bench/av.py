"""Video and audio indexing throughput, in multiples of real time, against naive baselines.

One naive baseline per claim, measured in the same run:

* video sampling: OpenCV ``read()`` of every frame, one kept per second
  (``cap.grab()`` of every frame is reported too, as the decoding floor, not a
  baseline; CPU seconds beside wall seconds, as other jobs share the cores).
* video indexing: that, plus eager fp32 ResNet50 (batch 16) on the kept frames.
* audio indexing: ``librosa.load`` at 32 kHz of the whole file and one torch
  Cnn14 forward pass over all of it (one vector per file, no offsets).
  ``audio_sweep`` compares the window pipeline (``decode_audio`` -> 5 s windows
  -> batched Cnn14 through an engine) under several engines, hops and batch
  sizes against that same baseline.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np


def _duration(path: Path) -> float:
    import subprocess

    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def _naive_frames(path: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    kept, i = [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % int(round(fps)) == 0:
            kept.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (224, 224), interpolation=cv2.INTER_AREA))
        i += 1
    cap.release()
    return kept


def _eager_embed(frames: list[np.ndarray]) -> None:
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50(weights=None).eval()
    model.fc = torch.nn.Identity()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        for i in range(0, len(frames), 16):
            x = torch.from_numpy(np.stack(frames[i : i + 16])).permute(0, 3, 1, 2).float() / 255
            model((x - mean) / std)


def video(path: Path, db: Path) -> dict[str, Any]:
    from media_search import Library
    from media_search.decode.video import iter_keyframes

    dur = _duration(path)
    t = time.perf_counter()
    frames = _naive_frames(path)
    naive_sample = time.perf_counter() - t
    t = time.perf_counter()
    _eager_embed(frames)
    naive_embed = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    kfs = sum(1 for _ in iter_keyframes(path))
    ours_sample, ours_sample_cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    _grab_all(path)
    grab_floor = time.perf_counter() - t
    lib = Library(uri=str(db), image_weights="random", audio_weights="random", device="cpu")
    lib.model("video"), lib.model("audio")
    t = time.perf_counter()
    report = lib.index([path])
    ours_index = time.perf_counter() - t
    lib.close()
    return {
        "seconds_of_video": round(dur, 1),
        "naive_sampling_x_realtime": round(dur / naive_sample, 2),
        "ours_sampling_x_realtime": round(dur / ours_sample, 2),
        "sampling_ratio": round(naive_sample / ours_sample, 2),
        "ours_sampling_x_realtime_per_cpu_second": round(dur / ours_sample_cpu, 2),
        "grab_floor_x_realtime": round(dur / grab_floor, 2),
        "keyframes": kfs, "naive_frames": len(frames),
        "naive_index_x_realtime": round(dur / (naive_sample + naive_embed), 2),
        "ours_index_x_realtime": round(dur / ours_index, 2),
        "index_ratio": round((naive_sample + naive_embed) / ours_index, 2),
        "ours_index_includes": "keyframes + soundtrack windows + writes",
        "indexed": report.indexed, "failed": [f.error for f in report.failed],
    }


def audio(path: Path, db: Path) -> dict[str, Any]:
    """The naive whole-file baseline (``librosa.load`` + one torch Cnn14 pass, no offsets) against
    ``Library.index`` (windows, fingerprints, writes) with the default engine and with ``int8``."""
    dur = _duration(path)
    naive = naive_audio(path)
    out: dict[str, Any] = {"seconds_of_audio": round(dur, 1), "naive_x_realtime": round(dur / naive, 2)}
    for engine in ("auto", "int8"):
        ours, report = _index_audio(path, db.with_name(f"{db.stem}_{engine}.db"), engine)
        key = "ours" if engine == "auto" else f"ours_{engine}"
        out[f"{key}_x_realtime"] = round(dur / ours, 2)
        out["ratio" if engine == "auto" else f"ratio_{engine}"] = round(naive / ours, 2)
        out[f"{key}_failed"] = [f.error for f in report.failed]
    return out


def naive_audio(path: Path) -> float:
    """Seconds of the naive audio baseline on ``path`` (the model is built before the clock)."""
    import librosa
    import torch

    from media_search.embed.audio import SAMPLE_RATE, _load_model

    model = _load_model("random", "", 0, "cpu")
    t = time.perf_counter()
    y, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    with torch.inference_mode():
        model(torch.from_numpy(y[None].astype(np.float32)))["embedding"]
    return time.perf_counter() - t


def audio_sweep(paths: list[Path], engines: list[str], hops: list[float], batch_sizes: list[int]) -> list[dict[str, Any]]:
    """The window pipeline (no writes) per engine, library hop and batch size, against the naive
    baseline on the same files; ``x_realtime_if_idle`` divides by process CPU time over torch's threads."""
    import torch

    from media_search.decode.audio import decode_audio
    from media_search.embed.audio import AudioEmbedder

    threads = torch.get_num_threads()
    total = sum(_duration(p) for p in paths)
    naive_audio(paths[0])  # warm-up
    naive = sum(naive_audio(p) for p in paths)
    runs = []
    for engine in engines:
        embedder = AudioEmbedder("random", device="cpu", engine=engine)  # builds (once) and caches the engine
        embedder.embed_windows(decode_audio(paths[0]))  # warm-up
        for hop in hops:
            embedder.hop = hop
            for bs in batch_sizes:
                embedder.batch_size = bs
                t, c, windows = time.perf_counter(), time.process_time(), 0
                for p in paths:
                    windows += len(embedder.embed_windows(decode_audio(p)))
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                runs.append({"engine": engine, "hop": hop, "batch_size": bs, "windows": windows,
                             "x_realtime": round(total / wall, 1), "x_realtime_if_idle": round(total / (cpu / threads), 1),
                             "vs_naive": round(naive / wall, 2)})  # fmt: skip
    return runs


def _grab_all(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def _index_audio(path: Path, db: Path, engine: str) -> tuple[float, Any]:
    from media_search import Library

    lib = Library(uri=str(db), image_weights="random", audio_weights="random", device="cpu", engine=engine)
    lib.model("audio")  # loaded (and its engine built) before the clock starts
    t = time.perf_counter()
    report = lib.index([path])
    spent = time.perf_counter() - t
    lib.close()
    return spent, report
