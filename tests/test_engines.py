"""Inference engines: the ONNX copy is interchangeable with torch, cached, and rebuilt when damaged."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from media_search.embed import engines as E
from media_search.embed import onnx as O
from media_search.embed.spec import ModelSpec
from media_search.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _pictures(n: int = 30, seed: int = 7) -> list[np.ndarray]:
    """Prepared 224x224 pictures: shapes on gradients, with near-duplicate variants among them."""
    from PIL import Image, ImageDraw, ImageFilter

    from media_search.decode.image import prepare

    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    while len(out) < n:
        w, h = int(rng.integers(300, 900)), int(rng.integers(300, 900))
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        c0, c1 = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
        base = (c0 * (1 - xx[..., None]) + c1 * yy[..., None]).clip(0, 255).astype(np.uint8)
        im = Image.fromarray(base)
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = int(rng.integers(0, w - 50)), int(rng.integers(0, h - 50))
            box = (x0, y0, x0 + int(rng.integers(30, w // 2)), y0 + int(rng.integers(30, h // 2)))
            fill = tuple(int(v) for v in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        out.append(prepare(im))
        if len(out) < n:  # a near duplicate: blurred and cropped
            out.append(prepare(im.filter(ImageFilter.GaussianBlur(2)).crop((10, 10, w - 10, h - 10))))
    return out


def _top(queries: np.ndarray, library: np.ndarray, k: int = 5) -> list[list[int]]:
    """Top-k library rows per query by cosine, the query's own row excluded."""
    scores = queries @ library.T
    np.fill_diagonal(scores, -np.inf)
    return [[int(i) for i in np.argsort(-row, kind="stable")[:k]] for row in scores]


def _same_ranking(got: list[list[int]], want: list[list[int]], reference: np.ndarray, eps: float = 1e-6) -> bool:
    """Equal rankings, where two items whose reference cosines differ by < eps count as a tie.

    Random-init ResNet50 puts every picture at cosine 0.99 to 0.99999 of the others, so
    some neighbours differ by less than float32 rounding: their order is a tie, not a ranking.
    """
    scores = reference @ reference.T
    for q, (g, w) in enumerate(zip(got, want)):
        if any(abs(scores[q, a] - scores[q, b]) >= eps for a, b in zip(g, w)):
            return False
    return True


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home shared by this module's ResNet50 tests, so that it is exported once."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def resnet(home: Path):
    """The random-weights ResNet50, its torch engine and a fresh ONNX export of it."""
    from media_search.embed.image import PREPROCESS, _load_model

    model = _load_model("random", "", 0, "cpu")
    spec = ModelSpec("resnet50", "random:0", 2048, "COSINE", PREPROCESS)
    return E.TorchEngine(model, "cpu"), O.onnx_engine(spec, lambda: model, home / "engines", E.IMAGE)


def test_onnx_embeddings_and_rankings_equal_torch(resnet) -> None:
    torch_engine, onnx_engine = resnet
    batch = np.stack(_pictures())
    a = np.concatenate([torch_engine(batch[i : i + 16]) for i in range(0, len(batch), 16)])
    b = np.concatenate([onnx_engine(batch[i : i + 16]) for i in range(0, len(batch), 16)])
    assert a.shape == b.shape == (30, 2048)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert float(np.abs(a - b).max()) < O.PROBE_TOLERANCE
    # A library indexed with one engine and queried with the other ranks exactly as torch alone.
    reference = _top(a, a)
    for got in (_top(b, a), _top(a, b), _top(b, b)):
        assert _same_ranking(got, reference, a)
        assert sum(g == w for g, w in zip(got, reference)) >= 27  # near-ties aside, identical lists


def test_fp32_engine_keeps_model_identity(resnet, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from media_search.embed.image import ImageEmbedder

    monkeypatch.setenv("MEDIA_SEARCH_HOME", str(home))  # reuse the module's export

    onnx = ImageEmbedder("random", "cpu", engine="onnx")
    monkeypatch.setenv("MEDIA_SEARCH_ENGINE", "torch")
    torch_ = ImageEmbedder("random", "cpu")
    assert onnx.engine.name == "onnx" and torch_.engine.name == "torch"
    assert onnx.spec == torch_.spec
    pics = _pictures(4)
    assert np.abs(onnx.embed(pics) - torch_.embed(pics)).max() < O.PROBE_TOLERANCE
    assert onnx.embed([]).shape == (0, 2048)


# -- cache behaviour, on a tiny real model (fast to export) ----------------------------------------


def _tiny_model(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    ).eval()


class _Counter:
    """Builds the tiny model and counts how often it was asked for (an export needs it)."""

    def __init__(self, model=None) -> None:
        self.model = model if model is not None else _tiny_model()
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.model


TINY = ModelSpec("tiny", "random:0", 8, "COSINE", "test")


def test_export_is_cached(tmp_path: Path) -> None:
    load = _Counter()
    first = O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    path = O.onnx_cache_path(TINY, tmp_path)
    stat = path.stat()
    second = O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    assert load.calls == 1, "the second construction must reuse the exported file"
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    probe = E.probe_batch(3, seed=9)
    assert np.array_equal(first(probe), second(probe))
    # Another model identity gets its own file.
    other = ModelSpec("tiny", "random:1", 8, "COSINE", "test")
    O.onnx_engine(other, _Counter(_tiny_model(1)), tmp_path, E.IMAGE)
    assert O.onnx_cache_path(other, tmp_path) != path and O.onnx_cache_path(other, tmp_path).is_file()


def test_optimized_graph_is_kept_and_rebuilt_when_damaged(tmp_path: Path) -> None:
    """Later loads read ONNX Runtime's optimised graph (no optimisation pass); a damaged one is made again."""
    import onnxruntime as ort

    load = _Counter()
    first = O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    optimized = O._optimized_path(O.onnx_cache_path(TINY, tmp_path))
    assert optimized.is_file() and optimized.with_suffix(".json").is_file()
    second = O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    level = second.session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "the kept graph is loaded as it is"
    probe = E.probe_batch(3, seed=9)
    assert np.array_equal(first(probe), second(probe))
    optimized.write_bytes(optimized.read_bytes()[:100])  # truncated
    third = O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    assert load.calls == 1, "a damaged optimised graph is remade from the checked export, not re-exported"
    assert third.session.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert np.array_equal(third(probe), first(probe))
    assert len(optimized.read_bytes()) > 100, "and kept again"


def test_an_unchanged_export_is_not_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A load from an intact cache skips hashing the export (a tenth of a cold query for ResNet50);
    a touched export is hashed once, then stamped again."""
    load = _Counter()
    O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    hashed: list[Path] = []
    real = O.content_hash
    monkeypatch.setattr(O, "content_hash", lambda p: hashed.append(p) or real(p))
    O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    assert hashed == []
    path = O.onnx_cache_path(TINY, tmp_path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # same bytes, new times
    O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    assert hashed == [path] and load.calls == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_cache_is_rebuilt(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    load = _Counter()
    O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    path = O.onnx_cache_path(TINY, tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # same size, a weight byte changed: loads fine, hash does not match
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        path.write_bytes(b"not an onnx file")
    with caplog.at_level(logging.WARNING, logger=O.__name__):
        engine = O.onnx_engine(TINY, load, tmp_path, E.IMAGE)
    assert load.calls == 2
    assert "exporting it again" in caplog.text
    assert path.read_bytes() != b"not an onnx file" and len(path.read_bytes()) == len(data)
    probe = E.probe_batch(2)
    with torch.inference_mode():
        want = E.IMAGE.wrap(load.model)(torch.from_numpy(probe)).numpy()
    assert np.abs(engine(probe) - want).max() < O.PROBE_TOLERANCE


def test_mismatching_export_falls_back_to_torch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A model whose ONNX copy does not reproduce its outputs is run by torch, with a warning."""
    import torch

    class Noisy(torch.nn.Module):  # random noise in forward: no two runs agree
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3)) + torch.rand_like(x.mean(dim=(2, 3)))

    spec = ModelSpec("noisy", "random:0", 3, "COSINE", "test")
    with caplog.at_level(logging.WARNING, logger=E.__name__):
        engine = E.build_engine("auto", "cpu", spec, Noisy, tmp_path)
    assert engine.name == "torch"
    assert "differs from torch" in caplog.text
    assert not O.onnx_cache_path(spec, tmp_path).exists()
    with pytest.raises(ConfigError, match="MEDIA_SEARCH_ENGINE=torch"):
        E.build_engine("onnx", "cpu", spec, Noisy, tmp_path)


def _tiny_model_noting_pid(note: str, seed: int = 0):
    Path(note).write_text(str(os.getpid()))
    return _tiny_model(seed)


def _tiny_model_dying_in_a_child(parent: int):
    if os.getpid() != parent:
        os.kill(os.getpid(), 9)  # as the kernel's OOM killer would
    return _tiny_model()


def test_isolated_work_runs_in_a_child_unless_there_is_no_interpreter_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from media_search.embed.child import call_maybe_in_child

    def where(isolate: bool) -> int:
        return call_maybe_in_child(os.getpid, isolate=isolate, what="a probe", error=RuntimeError)

    assert where(True) != os.getpid()
    assert where(False) == os.getpid()
    monkeypatch.setattr(sys, "executable", "")  # an embedded interpreter (README, "Long media")
    assert where(True) == os.getpid()


def test_a_missing_engine_is_made_in_a_child_process(tmp_path: Path) -> None:
    """``isolate``: the export (torch model, traced graph, optimising session) runs in a child, so this
    process never holds it; the engine it loads is the same, and later loads need no child."""
    import functools

    import torch

    note = tmp_path / "pid"
    engine = E.build_engine("onnx", "cpu", TINY, functools.partial(_tiny_model_noting_pid, str(note)), tmp_path, isolate=True)
    assert engine.name == "onnx" and int(note.read_text()) != os.getpid()
    assert O._optimized_path(O.onnx_cache_path(TINY, tmp_path)).is_file(), "the child keeps the optimised graph too"
    probe = E.probe_batch(3, seed=9)
    with torch.inference_mode():
        want = E.IMAGE.wrap(_tiny_model())(torch.from_numpy(probe)).numpy()
    assert np.abs(engine(probe) - want).max() < O.PROBE_TOLERANCE
    note.unlink()
    E.build_engine("onnx", "cpu", TINY, functools.partial(_tiny_model_noting_pid, str(note)), tmp_path, isolate=True)
    assert not note.exists(), "a cached engine is loaded, not made again"


def test_a_child_that_dies_while_making_an_engine_is_a_clear_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import functools

    load = functools.partial(_tiny_model_dying_in_a_child, os.getpid())
    with pytest.raises(ConfigError, match="killed by signal 9.*MEDIA_SEARCH_ENGINE=torch"):
        E.build_engine("onnx", "cpu", TINY, load, tmp_path, isolate=True)
    assert not O.onnx_cache_path(TINY, tmp_path).exists()
    with caplog.at_level(logging.WARNING, logger=E.__name__):
        engine = E.build_engine("auto", "cpu", TINY, load, tmp_path, isolate=True)
    assert engine.name == "torch" and "killed by signal 9" in caplog.text


def test_engine_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert E.choose_engine("auto", "cpu") == "onnx"
    assert E.choose_engine("torch", "cpu") == "torch"
    assert E.choose_engine("auto", "cuda") == "torch"
    assert E.choose_engine("int8", "cpu") == "int8"
    for setting in ("onnx", "int8"):
        with pytest.raises(ConfigError, match="CPU only"):
            E.choose_engine(setting, "cuda")
    from media_search.config import Settings, engine_from_env

    monkeypatch.setenv("MEDIA_SEARCH_ENGINE", "tensorrt")
    with pytest.raises(ConfigError, match="auto, torch, onnx, int8"):
        engine_from_env()
    with pytest.raises(ConfigError, match="auto, torch, onnx, int8"):
        Settings.from_env(uri="x.db")
    monkeypatch.setenv("MEDIA_SEARCH_ENGINE", "ONNX")
    assert engine_from_env() == "onnx" and Settings.from_env(uri="x.db").engine == "onnx"
    with pytest.raises(ConfigError, match="auto, torch, onnx, int8"):
        Settings.from_env(uri="x.db", engine="tensorrt")


# -- int8: a model identity of its own -------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_int8(resnet, home: Path):
    """The int8 engine quantised from the module's fp32 export (random weights)."""
    from media_search.embed.image import PREPROCESS, _load_model

    spec = ModelSpec("resnet50", "random:0", 2048, "COSINE", PREPROCESS)
    return O.int8_engine(spec, lambda: _load_model("random", "", 0, "cpu"), home / "engines", E.IMAGE)


def test_int8_engine_is_close_to_fp32_and_finds_the_same_duplicates(resnet, resnet_int8) -> None:
    _, fp32 = resnet
    batch = np.stack(_pictures())
    a = np.concatenate([fp32(batch[i : i + 16]) for i in range(0, len(batch), 16)])
    b = np.concatenate([resnet_int8(batch[i : i + 16]) for i in range(0, len(batch), 16)])
    assert resnet_int8.name == "int8" and b.shape == (30, 2048)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    cosine = np.sum(a * b, axis=1)
    assert cosine.min() >= O.INT8_MIN_COSINE, cosine.min()
    assert not np.allclose(a, b, atol=O.PROBE_TOLERANCE)  # close, not equal: hence its own identity
    # every near duplicate (pairs 2i, 2i+1) is found first, in an int8-only library as in an fp32 one
    for emb in (a, b):
        top1 = [row[0] for row in _top(emb, emb, k=1)]
        assert top1 == [i ^ 1 for i in range(30)]


def test_int8_identity_and_cache(resnet_int8, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from media_search.embed.image import ImageEmbedder

    monkeypatch.setenv("MEDIA_SEARCH_HOME", str(home))
    int8 = ImageEmbedder("random", "cpu", engine="int8")
    fp32 = ImageEmbedder("random", "cpu", engine="onnx")
    assert int8.spec.weights_id == "random:0:int8r" and int8.spec.is_random
    assert int8.spec != fp32.spec and int8.spec.preprocess == fp32.spec.preprocess
    assert int8.engine.path == resnet_int8.path, "the cached int8 file is reused"
    meta = json.loads(resnet_int8.path.with_suffix(".json").read_text())
    assert meta["spec"] == int8.spec.to_json() and meta["min_cosine_to_fp32"] >= O.INT8_MIN_COSINE


def test_int8_refused_when_too_far_from_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quantised model that misses the cosine bar is never cached or used; asking for it is an error."""
    monkeypatch.setattr(O, "INT8_MIN_COSINE", 1.000001)
    with pytest.raises(ConfigError, match="too far from fp32"):
        E.build_engine("int8", "cpu", TINY, _Counter(), tmp_path)
    assert not O.onnx_cache_path(E.engine_spec(TINY, "int8"), tmp_path).exists()
    assert O.onnx_cache_path(TINY, tmp_path).exists()  # the fp32 step it started from is fine


def test_int8_library_is_not_searched_with_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Vectors of the int8 engine and of fp32 never meet in one collection: the user is told to pick one."""
    from PIL import Image

    from media_search import Library
    from media_search.errors import IndexMismatchError

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, pic in enumerate(_pictures(4)):
        Image.fromarray(pic).save(folder / f"{i}.png")
    uri = str(tmp_path / "lib.db")
    monkeypatch.setenv("MEDIA_SEARCH_ENGINE", "int8")
    with Library(uri=uri) as lib:
        lib.index(folder)
        found = lib.search(folder / "0.png", k=1)
        assert [Path(m.path).name for m in found.results] == ["1.png"]
    monkeypatch.setenv("MEDIA_SEARCH_ENGINE", "onnx")
    with Library(uri=uri) as lib, pytest.raises(IndexMismatchError, match="int8"):
        lib.search(folder / "0.png", k=1)


def test_audio_engines(tmp_path: Path) -> None:
    """Cnn14 through ONNX equals torch; its int8 copy keeps the log-mel front end in fp32 and stays close."""
    from media_search.embed.audio import _load_model

    spec = ModelSpec("panns-cnn14", "random:0", 2048, "COSINE", "test")
    model = _load_model("random", "", 0, "cpu")
    probe = E.audio_probe(6, seed=3)
    want = E.TorchEngine(model, "cpu", E.AUDIO)(probe)
    fp32 = O.onnx_engine(spec, lambda: model, tmp_path, E.AUDIO)
    assert np.abs(fp32(probe) - want).max() < O.PROBE_TOLERANCE
    int8 = O.int8_engine(spec, lambda: model, tmp_path, E.AUDIO)
    assert np.sum(int8(probe) * want, axis=1).min() >= O.INT8_MIN_COSINE
    meta = json.loads(int8.path.with_suffix(".json").read_text())
    assert meta["kept_fp32_nodes"] >= 3  # STFT (real, imaginary) and the mel projection at least
