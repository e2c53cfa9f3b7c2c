"""The GPU section: model-only throughput, GPU JPEG decoding, and files/s end to end.

End to end = read the JPEG files (a thread pool), decode them on the GPU
(``torchvision.io.decode_jpeg(device='cuda')``, batched), squash to 224x224 on
the GPU (bilinear, antialiased), ResNet50 bf16 channels_last through the
product's ``TorchEngine`` pipeline, unit vectors back to the host. Store writes
are measured beside it (Milvus Lite rows/s on those vectors), since they run
in parallel with the GPU in a real indexer.

``device`` may be ``cpu`` to try the code path without a GPU (tiny sizes).
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def cuda_status() -> str | None:
    """None when a CUDA GPU is usable, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"no CUDA GPU visible to torch {torch.__version__} (CUDA build: {torch.version.cuda})"
    return None


def make_jpegs(folder: Path, n: int, size: tuple[int, int] = (1280, 720), distinct: int = 64) -> list[Path]:
    """``n`` 720p JPEG files (``distinct`` different pictures, repeated under new names)."""
    from PIL import Image

    from .media import PHOTOS

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(PHOTOS.glob("*.jpg"))
    rng = np.random.default_rng(0)
    blobs = []
    for i in range(distinct):
        with Image.open(sources[i % len(sources)]) as im:
            arr = np.asarray(im.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.int16)
        arr = np.clip(arr + rng.normal(0, 6, arr.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
    paths = []
    for i in range(n):
        p = folder / f"frame_{i:06d}.jpg"
        if not p.exists():
            p.write_bytes(blobs[i % distinct])
        paths.append(p)
    return paths


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_only(device: str, batch: int, iters: int) -> dict[str, Any]:
    """ResNet50 images/s in the model alone (bf16 autocast, channels_last), and bf16 vs fp32 agreement."""
    import torch

    from media_search.embed.engines import TorchEngine, probe_batch
    from media_search.embed.image import _load_model

    model = _load_model("random", "", 0, device)
    engine = TorchEngine(model, device)
    x = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8, device=device)
    for _ in range(3):
        engine.run_tensor(x)
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        engine.run_tensor(x)
    _sync(device)
    rate = batch * iters / (time.perf_counter() - t)
    probe = torch.from_numpy(probe_batch(32, seed=3)).to(device)
    with torch.inference_mode():
        fp32 = engine.module(probe).float()
    lowp = engine.run_tensor(probe)
    cos = (fp32 * lowp).sum(1).cpu().numpy()
    return {"batch": batch, "images_per_s": round(rate, 1), "engine": engine.name,
            "bf16_vs_fp32_cosine_min": round(float(cos.min()), 6), "bf16_vs_fp32_cosine_mean": round(float(cos.mean()), 6)}


def _read(p: Path) -> bytes:
    with open(p, "rb") as f:
        return f.read()


def _to_tensors(blobs: list[bytes]) -> list[Any]:
    import torch

    return [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]


def gpu_decode(files: list[Path], device: str, batch: int) -> dict[str, Any]:
    """Images/s of batched ``decode_jpeg`` on ``device`` (files already in memory)."""
    from torchvision.io import decode_jpeg

    data = _to_tensors([_read(p) for p in files])
    decode_jpeg(data[:batch], device=device)
    _sync(device)
    t = time.perf_counter()
    for i in range(0, len(data), batch):
        decode_jpeg(data[i : i + batch], device=device)
    _sync(device)
    return {"images_per_s": round(len(data) / (time.perf_counter() - t), 1), "batch": batch}


def end_to_end(files: list[Path], device: str, batch: int, readers: int = 16) -> dict[str, Any]:
    """Files/s from file paths to unit vectors on the host, reading overlapped with the GPU."""
    import torch
    from torchvision.io import decode_jpeg

    from media_search.embed.engines import TorchEngine
    from media_search.embed.image import INPUT_SIZE, _load_model

    engine = TorchEngine(_load_model("random", "", 0, device), device)

    def embed(blobs: list[bytes]) -> np.ndarray:
        imgs = decode_jpeg(_to_tensors(blobs), device=device)  # list of (3, H, W) uint8
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(imgs):
            by_shape.setdefault(tuple(im.shape), []).append(i)
        x = torch.empty((len(imgs), INPUT_SIZE, INPUT_SIZE, 3), dtype=torch.uint8, device=device)
        for idx in by_shape.values():  # one resize per picture size, not per picture
            group = torch.stack([imgs[i] for i in idx]).float()
            small = torch.nn.functional.interpolate(group, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                                                    antialias=True, align_corners=False)
            x[idx] = small.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1)
        return engine.run_tensor(x).cpu().numpy()

    chunks = [files[i : i + batch] for i in range(0, len(files), batch)]
    embed([_read(p) for p in chunks[0]])  # warm-up (cudnn autotune)
    _sync(device)
    out: list[np.ndarray] = []
    t = time.perf_counter()
    with ThreadPoolExecutor(readers) as pool:
        pending = [pool.submit(lambda c=c: [_read(p) for p in c]) for c in chunks[:4]]
        for i in range(len(chunks)):
            blobs = pending.pop(0).result()
            if i + 4 < len(chunks):
                pending.append(pool.submit(lambda c=chunks[i + 4]: [_read(p) for p in c]))
            out.append(embed(blobs))
    _sync(device)
    seconds = time.perf_counter() - t
    vecs = np.concatenate(out)
    return {"files": len(files), "batch": batch, "files_per_s": round(len(files) / seconds, 1), "vectors": vecs}


def run(folder: Path, db: Path, *, n_files: int, device: str = "cuda", quick: bool = False) -> dict[str, Any]:
    """The whole GPU section; skipped (with the reason) when ``device`` is cuda and there is none."""
    if device.startswith("cuda"):
        why = cuda_status()
        if why:
            return {"skipped": f"GPU section skipped: {why}."}
    import torch

    from .store import insert_rates

    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else device}
    big = 8 if device == "cpu" else (256 if quick else 512)
    out["model_only"] = model_only(device, big, 2 if device == "cpu" else 20)
    files = make_jpegs(folder, n_files)
    out["jpeg_decode"] = gpu_decode(files, device, big)
    e2e = end_to_end(files, device, big)
    vecs = e2e.pop("vectors")
    out["end_to_end"] = e2e
    rows = min(len(vecs), 2048)
    writes = insert_rates(str(db), rows, batches=(1024,))
    out["store_writes_lite"] = writes
    rate = writes["store_upsert_rows"]
    out["store_vs_gpu"] = {
        "embeddings_per_s": e2e["files_per_s"],
        "lite_rows_per_s": rate,
        "writers_needed_to_keep_up": round(e2e["files_per_s"] / rate, 1),
    }
    return out
