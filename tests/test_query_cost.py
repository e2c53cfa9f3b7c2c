"""What a query costs (issue 18): local features stored at index time and used without reading the
library file again; a cold CLI image query with a cached ONNX engine imports no torch."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from media_search import Library
from media_search.errors import IndexMismatchError
from media_search.signals import LOCAL, PHASH, SignalSpec
from media_search.signals import image as fi
from media_search.store import schema

PHOTOS = sorted((Path(__file__).resolve().parents[1] / "sample_media" / "photos").glob("*.jpg"))
#: Never imported by an image query once the ONNX engine is cached (seconds each to import).
HEAVY = ("torch", "torchvision", "panns_inference", "_media_search_panns", "librosa", "gradio", "transformers")
#: Our own modules an image query has no use for (the sound path, the other image model).
NOT_FOR_AN_IMAGE = ("media_search.embed.audio", "media_search.decode.audio", "media_search.decode.file",
                    "media_search.embed.siglip")  # fmt: skip


def _crop(src: Path, dest: Path) -> Path:
    im = Image.open(src).convert("RGB")
    w, h = im.size
    im.crop((int(w * 0.2), int(h * 0.1), int(w * 0.9), int(h * 0.85))).save(dest, quality=60)
    return dest


def test_pack_features_round_trip_keeps_the_strongest() -> None:
    pic = np.asarray(Image.open(PHOTOS[2]).convert("RGB"))
    f = fi.features(fi.local_picture(pic))
    text = fi.pack_features(f)
    back = fi.unpack_features(text)
    assert back is not None and len(back) == min(len(f), fi.N_STORED) and back.shape == f.shape
    assert len(text) < 40_000 < schema.LOCAL_MAX  # tens of KB at most, stored as text
    strongest = np.sort(np.argsort(-f.response)[: fi.N_STORED])
    np.testing.assert_allclose(back.points, f.points[strongest], atol=0.13)
    np.testing.assert_array_equal(back.descriptors, f.descriptors[strongest])
    assert fi.unpack_features("") is None and fi.unpack_features("not base64 at all!") is None


def test_ratio_matches_equal_opencv_knn_match() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(0, 60, (300, 128)).astype(np.float32)
    c = np.concatenate([q[:100] + rng.normal(0, 3, (100, 128)), rng.integers(0, 60, (150, 128))]).astype(np.float32)
    qi, ci = fi._ratio_matches(q, c)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(q, c, k=2)
    good = [m for m, n in pairs if m.distance < fi.RATIO * n.distance]
    best: dict[int, cv2.DMatch] = {}
    for m in good:
        if m.trainIdx not in best or m.distance < best[m.trainIdx].distance:
            best[m.trainIdx] = m
    assert sorted(zip(qi.tolist(), ci.tolist())) == sorted((m.queryIdx, m.trainIdx) for m in best.values())


@pytest.fixture
def indexed(tmp_path: Path) -> dict[str, Path]:
    lib = tmp_path / "library"
    lib.mkdir()
    for p in PHOTOS[:6]:
        shutil.copy(p, lib / p.name)
    query = _crop(PHOTOS[2], tmp_path / "crop.jpg")
    return {"lib": lib, "query": query, "db": tmp_path / "index.db", "tmp": tmp_path}


def test_a_query_verifies_a_copy_from_stored_features_without_reading_the_file(indexed: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    lib = Library(uri=str(indexed["db"]))
    try:
        report = lib.index(indexed["lib"])
        assert report.indexed == 6
        stored = lib.store.local_features("image", [r.id for r in lib.store.all_rows("image")])
        assert len(stored) == 6 and all(fi.unpack_features(t) is not None for t in stored.values())
        original = indexed["lib"] / PHOTOS[2].name
        original.rename(indexed["tmp"] / "moved.jpg")  # the library file is gone: only its stored features remain

        def no_reading(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"a library file was read for verification: {args}")

        monkeypatch.setattr(fi, "file_features", no_reading)
        res = lib.search(indexed["query"], k=3)
        top = res.results[0]
        assert Path(top.path).name == PHOTOS[2].name and top.copy, res.results
        assert top.copy_confidence is not None and top.copy_confidence >= 0.5
    finally:
        lib.close()


def test_an_image_query_searches_every_kind_before_it_waits_for_its_local_features(indexed: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The query's own local features (``PictureQuery.prefetch``, about 0.1 s of SIFT on a core of
    its own) are waited for by the copy checks only: both kinds' vector searches and the read of
    the exact copies come first, in that time, instead of after it."""
    from media_search.query.rank import PictureQuery
    from media_search.store.milvus import MilvusStore

    size = (160, 120)
    slides = cv2.VideoWriter(str(indexed["lib"] / "slides.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 2, size)
    for p in PHOTOS[:3]:
        for _ in range(4):
            slides.write(cv2.resize(cv2.imread(str(p)), size))
    slides.release()
    lib = Library(uri=str(indexed["db"]))
    try:
        assert lib.index(indexed["lib"]).indexed == 7
        events: list[str] = []
        search, iter_files, direct = MilvusStore.search, MilvusStore.iter_files, PictureQuery.direct

        def searched(self: MilvusStore, kind: str, *a: object, **kw: object) -> object:
            events.append(f"search {kind}")
            return search(self, kind, *a, **kw)  # type: ignore[arg-type]

        def copies(self: MilvusStore, **kw: object) -> object:
            events.append("exact copies")
            return iter_files(self, **kw)  # type: ignore[arg-type]

        def waited(self: PictureQuery) -> object:
            events.append("local features")
            return direct(self)

        monkeypatch.setattr(MilvusStore, "search", searched)
        monkeypatch.setattr(MilvusStore, "iter_files", copies)
        monkeypatch.setattr(PictureQuery, "direct", waited)
        res = lib.search(indexed["query"], k=3)
        assert Path(res.results[0].path).name == PHOTOS[2].name and res.results[0].copy, res.results
        assert "local features" in events, events
        before = events[: events.index("local features")]
        assert {"search image", "search video", "exact copies"} <= set(before), events
    finally:
        lib.close()


def test_a_query_runs_the_checks_products_on_one_blas_thread(indexed: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's BLAS is set to one thread by the first query of a process (``signals.image.one_blas_thread``):
    every product of the copy checks runs on it."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen: list[set[int]] = []
    ratio = fi._ratio_matches

    def matched(*a: object) -> object:
        seen.append(blas_threads())
        return ratio(*a)  # type: ignore[arg-type]

    lib = Library(uri=str(indexed["db"]))
    try:
        assert lib.index(indexed["lib"]).indexed == 6
        with threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core machine; given back after the test
            assert blas_threads() == {2}
            monkeypatch.setattr(fi, "_BLAS_SET", False)  # as in a new process
            monkeypatch.setattr(fi, "_ratio_matches", matched)
            res = lib.search(indexed["query"], k=3)
            assert res.results[0].copy and seen and all(s == {1} for s in seen), seen
            assert blas_threads() == {1}
    finally:
        lib.close()


def test_stored_features_of_another_version_are_refused_with_a_rebuild_hint(indexed: dict[str, Path]) -> None:
    lib = Library(uri=str(indexed["db"]))
    try:
        lib.index(indexed["lib"])
        spec = lib.spec("image")
        older = SignalSpec("local", "sift640-top128-u8-v0")
        lib.store._checked.clear()
        with pytest.raises(IndexMismatchError, match=r"(?s)local sift640-top128-u8-v0.*Rebuild"):
            lib.store.ensure("image", spec, (older, PHASH))
        lib.store._checked.clear()
        lib.store.ensure("image", spec, (LOCAL, PHASH))  # this version's: accepted
    finally:
        lib.close()


def test_a_cold_image_query_with_a_cached_engine_imports_no_torch(indexed: dict[str, Path], cli_env: dict[str, str]) -> None:
    env = {**cli_env, **{k: v for k, v in os.environ.items() if k.startswith("MEDIA_SEARCH_")},
           "MEDIA_SEARCH_MILVUS_URI": str(indexed["db"]), "MEDIA_SEARCH_ENGINE": "auto",
           "MEDIA_SEARCH_VERBOSE": "1"}  # fmt: skip  (raw stderr: -X importtime writes there)
    r = subprocess.run([sys.executable, "-m", "media_search", "index", str(indexed["lib"])], env=env,
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr  # builds (or finds) the ONNX engine
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "media_search", "query", str(indexed["query"]), "--json"],
                       env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["results"] and out["results"][0]["copy"]
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", r.stderr, re.M))
    top = {m.split(".")[0] for m in imported}
    assert not top & set(HEAVY), sorted(top & set(HEAVY))
    assert not imported & set(NOT_FOR_AN_IMAGE), sorted(imported & set(NOT_FOR_AN_IMAGE))
    assert {"onnxruntime", "cv2", "pymilvus"} <= top  # the engine, the copy signals, the store


def test_the_command_leaves_its_objects_to_the_exit(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Run as the process (no argv), the CLI freezes the garbage collector's objects before exiting (the last
    collections at exit cost a cold query 0.3 s); called with arguments, as a library, it does not."""
    import gc

    from media_search.cli import main

    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    assert main(["models", "--json"]) == 0 and frozen == []
    monkeypatch.setattr(sys, "argv", ["media-search", "models", "--json"])
    assert main() == 0 and frozen == [True]
    capsys.readouterr()
