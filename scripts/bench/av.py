"""Video and audio indexing throughput, in multiples of real time, against naive baselines.

* video sampling baseline: OpenCV ``read()`` of every frame, one kept per second.
* video indexing baseline: that, plus eager fp32 ResNet50 (batch 16) on the kept frames.
* audio indexing baseline: librosa load at 32 kHz, Cnn14 on each 5 s window one at a time.
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
    t = time.perf_counter()
    kfs = sum(1 for _ in iter_keyframes(path))
    ours_sample = time.perf_counter() - t
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
    import librosa
    import torch

    from media_search.extractors.audio import SAMPLE_RATE, _load_model

    dur = _duration(path)
    model = _load_model("random", "", 0, "cpu")
    t = time.perf_counter()
    y, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    with torch.inference_mode():
        model(torch.from_numpy(y[None]))["embedding"]
    naive = time.perf_counter() - t
    out: dict[str, Any] = {"seconds_of_audio": round(dur, 1), "naive_x_realtime": round(dur / naive, 2)}
    for engine in ("auto", "int8"):
        ours, report = _index_audio(path, db.with_name(f"{db.stem}_{engine}.db"), engine)
        key = "ours" if engine == "auto" else f"ours_{engine}"
        out[f"{key}_x_realtime"] = round(dur / ours, 2)
        out["ratio" if engine == "auto" else f"ratio_{engine}"] = round(naive / ours, 2)
        out[f"{key}_failed"] = [f.error for f in report.failed]
    return out


def _index_audio(path: Path, db: Path, engine: str) -> tuple[float, Any]:
    from media_search import Library

    lib = Library(uri=str(db), image_weights="random", audio_weights="random", device="cpu", engine=engine)
    lib.model("audio")  # loaded (and its engine built) before the clock starts
    t = time.perf_counter()
    report = lib.index([path])
    spent = time.perf_counter() - t
    lib.close()
    return spent, report
