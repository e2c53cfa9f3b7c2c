"""Image indexing: the naive sequential loop against ``Library.index``; the unchanged re-run.

The naive loop is what a first version looks like: Pillow opens the full-size
JPEG, torchvision ``Resize(256) / CenterCrop(224) / ToTensor / Normalize``,
eager fp32 ResNet50 in batches of 16, ``MilvusClient.insert`` of row dicts into
Milvus Lite. It times each stage. Both use the same random-init ResNet50.
``ours`` runs with the default decode workers or a given number (0: inline).
``unchanged`` times a re-run over a folder whose files are all indexed already
(the claim: a re-run reads no file); its baseline is the store's own count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np


def naive_loop(files: list[Path], db: Path, batch: int = 16) -> dict[str, Any]:
    """Index ``files`` the naive way; returns files/s and the seconds in each stage."""
    import torch
    from PIL import Image
    from pymilvus import MilvusClient
    from torchvision import transforms
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    tf = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    client = MilvusClient(str(db))
    client.create_collection("naive", dimension=2048, metric_type="COSINE", auto_id=True)
    t = {"decode": 0.0, "inference": 0.0, "insert": 0.0}
    started = time.perf_counter()
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        t0 = time.perf_counter()
        x = torch.stack([tf(Image.open(f).convert("RGB")) for f in chunk])
        t1 = time.perf_counter()
        with torch.no_grad():
            v = torch.nn.functional.normalize(model(x), dim=1).numpy()
        t2 = time.perf_counter()
        client.insert("naive", [{"vector": v[j].tolist(), "path": str(f)} for j, f in enumerate(chunk)])
        t[ "insert"] += time.perf_counter() - t2
        t["decode"] += t1 - t0
        t["inference"] += t2 - t1
    total = time.perf_counter() - started
    client.close()
    return _summary(len(files), total, t)


def ours(files_dir: Path, db: Path, n: int, engine: str | None = None, workers: int | None = None) -> dict[str, Any]:
    """``Library.index`` on the folder (model loaded, and exported if needed, before the clock starts)."""
    from media_search import Library

    lib = Library(uri=str(db), image_weights="random", device="cpu", engine=engine)
    model = lib.model("image")
    lib.ensure("image")
    started = time.perf_counter()
    report = lib.index([files_dir], workers=workers)
    total = time.perf_counter() - started
    lib.close()
    out = _summary(n, total, None)
    out.update(engine=model.engine.name, indexed=report.indexed, failed=len(report.failed))
    return out


def unchanged(folder: Path, db: Path, n: int) -> dict[str, Any]:
    """Seconds to re-run the indexer over ``n`` indexed, unchanged files. The index state is written
    directly (manifest entries and image rows, what the indexer writes): filling it with ResNet50
    would take an hour."""
    import os

    from PIL import Image

    from media_search import Library
    from media_search.identity import content_hash, file_id
    from media_search.store.records import FileRecord

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        p = folder / f"sub{i % 50:02d}" / f"small_{i:05d}.jpg"
        if not p.exists():
            p.parent.mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(p, "JPEG")
    with Library(uri=str(db), image_weights="random", device="cpu") as lib:
        lib.ensure("image")
        records = []
        for p in sorted(folder.rglob("*.jpg")):
            real = os.path.realpath(p)
            st = os.stat(real)
            records.append(FileRecord(file_id(real), real, "image", content_hash(real), st.st_size, st.st_mtime, "done", 1))
        ids = [r.file_id for r in records]
        v = rng.normal(size=(len(ids), 2048)).astype(np.float32)
        lib.store.put_files(records)
        lib.store.upsert_rows("image", {
            "id": ids, "vector": v / np.linalg.norm(v, axis=1, keepdims=True), "file_id": ids,
            "path": [r.path for r in records], "content_hash": [r.content_hash for r in records],
            "size": [r.size for r in records], "mtime": [r.mtime for r in records],
        })  # fmt: skip
        lib.store.flush()
        started = time.perf_counter()
        report = lib.index([folder])
        seconds = time.perf_counter() - started
    return {"files": n, "seconds": round(seconds, 2), "unchanged": report.unchanged, "indexed": report.indexed}


def stage_costs(files: list[Path], db: Path, sample: int = 16) -> dict[str, float]:
    """Isolated, single-threaded cost of each of our stages, per file: what the profile of ours shows."""
    from media_search.decode.image import load_prepared
    from media_search.embed.image import ImageEmbedder
    from media_search.store.milvus import MilvusStore

    picks = files[:sample]
    t0 = time.perf_counter()
    prepared = [load_prepared(f) for f in picks]
    decode = (time.perf_counter() - t0) / len(picks)
    from PIL import Image

    t0 = time.perf_counter()
    for f in picks:
        with Image.open(f) as im:
            im.convert("RGB").load()
    full_decode = (time.perf_counter() - t0) / len(picks)
    emb = ImageEmbedder("random", "cpu")
    emb.embed(prepared[:2])
    t0 = time.perf_counter()
    vecs = emb.embed(prepared)
    infer = (time.perf_counter() - t0) / len(picks)
    store = MilvusStore(str(db))
    store.ensure("image", emb.spec)
    n = len(vecs)
    cols = {
        "id": [f"{i:032x}" for i in range(n)], "vector": vecs, "file_id": [f"{i:032x}" for i in range(n)],
        "path": [str(f) for f in picks], "content_hash": ["0" * 64] * n, "size": [1] * n, "mtime": [0.0] * n,
    }
    t0 = time.perf_counter()
    store.upsert_rows("image", cols)
    insert = (time.perf_counter() - t0) / n
    store.close()
    return {
        "decode_s_per_file": decode,
        "full_size_decode_s_per_file": full_decode,
        "inference_s_per_file": infer,
        "insert_s_per_file": insert,
        "engine": emb.engine.name,
    }


def _summary(n: int, seconds: float, stages: dict[str, float] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"files": n, "seconds": round(seconds, 2), "files_per_s": round(n / seconds, 2)}
    if stages:
        out["share"] = {k: round(v / seconds, 3) for k, v in stages.items()}
    return out


def megapixels(files: list[Path]) -> dict[str, float]:
    from PIL import Image

    mps = []
    for f in files:
        with Image.open(f) as im:
            mps.append(im.size[0] * im.size[1] / 1e6)
    return {"min": round(min(mps), 1), "mean": round(float(np.mean(mps)), 1), "max": round(max(mps), 1),
            "mean_file_mb": round(sum(f.stat().st_size for f in files) / len(files) / 1e6, 2)}
