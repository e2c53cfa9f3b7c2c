#!/usr/bin/env python3
"""Benchmark the bulk indexer (a script, not a timed test).

1. **Throughput** on the same generated JPEGs (1 to 12 MP, made from
   ``sample_media/photos`` resized, with noise), in one run, random weights:

   * ``naive``: a sequential loop -- Pillow open -> torchvision transforms
     (Resize 256, CenterCrop 224, normalise) -> ResNet50 eager fp32 in batches
     of 16 -> row-dict ``insert`` into a fresh Milvus Lite file;
   * ``indexer``: ``media_search.indexer.index_paths`` into a fresh Lite file,
     for each ``--workers`` value (decode processes; 0 = inline).

   Models are loaded (and the ONNX engine exported) before the clock starts
   for both.

2. **Unchanged re-run**: seconds for ``index_paths`` over a folder of
   ``--unchanged`` small files that are all indexed already. The index state
   is written directly (manifest entries and image rows, exactly what the
   indexer writes) so that setting it up does not cost an hour of ResNet50.

    python scripts/bench_index.py --images 200 --workers 0 1 2 --unchanged 5000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_photos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` JPEGs of 1 to 12 megapixels from the sample photos (reused when already there)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((REPO / "sample_media" / "photos").glob("*.jpg"))
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"photo_{i:04d}.jpg"
        paths.append(p)
        mp = rng.uniform(1.0, 12.0) * 1e6
        if p.exists():
            continue
        src = Image.open(sources[i % len(sources)]).convert("RGB")
        aspect = src.width / src.height
        w = int((mp * aspect) ** 0.5)
        h = int(mp / w)
        big = np.asarray(src.resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        noise = rng.normal(0, 6, size=(h, w, 1)).astype(np.int16)
        Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8)).save(p, "JPEG", quality=90)
    return paths


def naive(paths: list[Path], uri: str) -> float:
    """The baseline loop; returns images per second."""
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
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])  # fmt: skip
    client = MilvusClient(uri)
    client.create_collection("naive", dimension=2048, id_type="string", max_length=64, metric_type="COSINE")
    started = time.perf_counter()
    batch: list[tuple[str, torch.Tensor]] = []

    def flush() -> None:
        with torch.no_grad():
            feats = torch.nn.functional.normalize(model(torch.stack([t for _, t in batch])), dim=1).numpy()
        rows = [{"id": key, "vector": v.tolist(), "path": key} for (key, _), v in zip(batch, feats)]
        client.insert("naive", rows)
        batch.clear()

    for n, p in enumerate(paths):
        with Image.open(p) as im:
            batch.append((f"{n:032x}", tf(im.convert("RGB"))))
        if len(batch) == 16:
            flush()
    if batch:
        flush()
    seconds = time.perf_counter() - started
    client.close()
    return len(paths) / seconds


def indexer(folder: Path, n: int, uri: str, workers: int) -> float:
    from media_search import Library
    from media_search.indexer import index_paths

    with Library(uri=uri) as lib:
        lib.model("image")  # load (and export the ONNX engine) before the clock
        started = time.perf_counter()
        report = index_paths(lib, [folder], workers=workers)
        seconds = time.perf_counter() - started
        assert report.indexed == n and not report.failed, report.to_dict()
    return n / seconds


def unchanged(folder: Path, n: int, uri: str) -> float:
    """Seconds to re-run over ``n`` indexed, unchanged files."""
    from PIL import Image

    from media_search import Library
    from media_search.identity import content_hash, file_id
    from media_search.indexer import index_paths
    from media_search.store.milvus import FileRecord

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        p = folder / f"sub{i % 50:02d}" / f"small_{i:05d}.jpg"
        if not p.exists():
            p.parent.mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(p, "JPEG")
    with Library(uri=uri) as lib:
        lib.ensure("image")
        records, ids, vecs, paths = [], [], [], []
        for p in sorted(folder.rglob("*.jpg")):
            real = os.path.realpath(p)
            st = os.stat(real)
            fid = file_id(real)
            records.append(FileRecord(fid, real, "image", content_hash(real), st.st_size, st.st_mtime, "done", 1))
            ids.append(fid)
            paths.append(real)
        v = rng.normal(size=(len(ids), 2048)).astype(np.float32)
        vecs = v / np.linalg.norm(v, axis=1, keepdims=True)
        lib.store.put_files(records)
        lib.store.upsert_rows("image", {
            "id": ids, "vector": vecs, "file_id": ids, "path": paths,
            "content_hash": [r.content_hash for r in records], "size": [r.size for r in records],
            "mtime": [r.mtime for r in records],
        })  # fmt: skip
        lib.store.flush()
        started = time.perf_counter()
        report = index_paths(lib, [folder])
        seconds = time.perf_counter() - started
        assert report.unchanged == n and report.indexed == 0, report.to_dict()
    return seconds


def _pixels(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200, help="generated photos for the throughput test (0: skip)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1], help="decode processes to try (default 1)")
    ap.add_argument("--unchanged", type=int, default=5000, help="files for the unchanged re-run (0: skip)")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "media_search_bench", help="where generated files are kept")
    args = ap.parse_args()
    os.environ.setdefault("MEDIA_SEARCH_IMAGE_WEIGHTS", "random")
    os.environ.setdefault("MEDIA_SEARCH_DEVICE", "cpu")
    import torch

    out: dict[str, object] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                              "engine": os.environ.get("MEDIA_SEARCH_ENGINE", "auto")}  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        if args.images:
            photos = make_photos(args.data / f"photos{args.images}", args.images)
            mp = sum(_pixels(p) for p in photos) / 1e6
            out["photos"] = {"n": len(photos), "megapixels_mean": round(mp / len(photos), 1)}
            out["naive_img_s"] = round(naive(photos, str(work / "naive.db")), 2)
            print(json.dumps(out), file=sys.stderr)
            for w in args.workers:
                out[f"indexer_workers{w}_img_s"] = round(indexer(args.data / f"photos{args.images}", len(photos), str(work / f"w{w}.db"), w), 2)
                out[f"speedup_workers{w}"] = round(out[f"indexer_workers{w}_img_s"] / out["naive_img_s"], 2)  # type: ignore[operator]
                print(json.dumps(out), file=sys.stderr)
        if args.unchanged:
            out[f"unchanged_rerun_{args.unchanged}_files_s"] = round(
                unchanged(args.data / f"small{args.unchanged}", args.unchanged, str(work / "unchanged.db")), 2
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
