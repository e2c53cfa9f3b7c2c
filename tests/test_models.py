"""The model registry, SigLIP's two towers, two image models in one library, and text search.

SigLIP runs through the real code path (``embed.siglip`` with ``transformers``)
on a tiny random ``SiglipConfig`` registered as its own model (32-d, 32 px
patches of 8, 2 layers): pretrained weights cannot be downloaded here. Its
checked download runs against a local HTTP server, as ResNet50's does in
``test_weights.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from media_search import IndexMismatchError, Library, NoTextTowerError  # noqa: E402
from media_search.cli import main  # noqa: E402
from media_search.config import Settings  # noqa: E402
from media_search.embed import registry  # noqa: E402
from media_search.embed.models import SIGLIP_BASE, Model  # noqa: E402
from media_search.errors import ConfigError, WeightsUnavailableError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_media"
TINY_NAME = "siglip-tiny-test"
TINY_CONFIG = {
    "text_config": {"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 2, "max_position_embeddings": 16},
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                      "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
}  # fmt: skip


def tiny_siglip(name: str = TINY_NAME, **changes: object) -> Model:
    """A registry entry for a tiny random SigLIP: one ``register`` call, as adding any model is."""
    return dataclasses.replace(
        SIGLIP_BASE, name=name, dim=32, config=json.dumps(TINY_CONFIG), text_length=16, **changes  # type: ignore[arg-type]
    )


@pytest.fixture
def tiny() -> Model:
    model = registry.register(tiny_siglip())
    yield model
    registry.unregister(model.name)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small library: four photos and one short video."""
    root = tmp_path_factory.mktemp("media")
    for name in ("astronaut.jpg", "coffee.jpg", "rocket.jpg", "chelsea.jpg"):
        shutil.copy(SAMPLE / "photos" / name, root / name)
    shutil.copy(SAMPLE / "videos" / "cat_and_coffee.mp4", root / "cat_and_coffee.mp4")
    return root


# -- the registry ----------------------------------------------------------------------------------


def test_models_json_lists_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert {"resnet50", "siglip-base-patch16-224", "panns-cnn14"} <= set(rows)
    assert rows["resnet50"]["embeds"] == ["image"] and rows["resnet50"]["dim"] == 2048
    assert rows["panns-cnn14"]["embeds"] == ["audio"]
    sig = rows["siglip-base-patch16-224"]
    assert sig["embeds"] == ["image", "text"] and sig["dim"] == 768 and sig["extra"] == "multimodal"
    assert sig["revision"] in sig["weights"] and len(sig["revision"]) == 40 and len(sig["sha256"]) == 64
    for row in rows.values():
        assert {"name", "embeds", "dim", "weights"} <= set(row)
    assert main(["models"]) == 0
    assert "siglip-base-patch16-224" in capsys.readouterr().out


def test_model_setting_and_collection_names(monkeypatch: pytest.MonkeyPatch, tiny: Model) -> None:
    s = Settings.from_env(uri="x.db")
    assert s.image_model == "resnet50" and s.store_prefix == "media_search_"
    monkeypatch.setenv("MEDIA_SEARCH_IMAGE_MODEL", "siglip-base-patch16-224")
    assert Settings.from_env(uri="x.db").store_prefix == "media_search_siglip_base_patch16_224_"
    assert Settings.from_env(uri="x.db", image_model=TINY_NAME).store_prefix == "media_search_siglip_tiny_test_"
    with pytest.raises(ConfigError, match="no model called 'clip-h'.*resnet50"):
        Settings.from_env(uri="x.db", image_model="clip-h")
    with pytest.raises(ConfigError, match="not images"):
        Settings.from_env(uri="x.db", image_model="panns-cnn14")


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tiny: Model) -> None:
    monkeypatch.setitem(registry.EXTRA_LIBRARY, "multimodal", "transformers_not_installed_here")
    assert registry.describe(tiny)["installed"] is False
    with Library(uri="unused.db", image_model=TINY_NAME) as lib, pytest.raises(ConfigError) as err:
        lib.model("image")
    assert "pip install -e '.[multimodal]'" in str(err.value)


# -- SigLIP's towers -------------------------------------------------------------------------------


def test_tiny_siglip_towers_give_unit_vectors(tiny: Model) -> None:
    from media_search.embed.engines import probe_batch
    from media_search.embed.siglip import SiglipEmbedder

    emb = SiglipEmbedder(tiny, "random", "cpu")
    assert emb.spec.name == TINY_NAME and emb.spec.dim == 32 and emb.spec.weights_id == "random:0"
    pics = emb.embed(probe_batch(3))
    words = emb.embed_text(["a cat asleep on a sofa", "a rocket", "a cat asleep on a sofa"])
    for v in (pics, words):
        assert v.dtype == np.float32 and v.shape[1] == 32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(words[0], words[2], atol=1e-6)
    assert not np.allclose(words[0], words[1])
    again = SiglipEmbedder(tiny, "random", "cpu").embed(probe_batch(3))  # seeded: the same vectors
    np.testing.assert_allclose(pics, again, atol=1e-5)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_pretrained_siglip_download_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny: Model) -> None:
    """``pretrained``: the checkpoint folder comes from its URLs into the cache, model.safetensors
    checked against its sha256; a wrong checksum leaves nothing behind."""
    from transformers import SiglipConfig, SiglipModel

    from media_search.embed.siglip import SiglipEmbedder, resolve_folder

    served = tmp_path / "served"
    kwargs = json.loads(tiny.config)
    kwargs["text_config"].update(bos_token_id=1, eos_token_id=1, pad_token_id=1)
    SiglipModel(SiglipConfig(**kwargs)).save_pretrained(served)
    digest = hashlib.sha256((served / "model.safetensors").read_bytes()).hexdigest()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/"
        weights = dataclasses.replace(tiny.weights, url=base + "model.safetensors", sha256=digest, size=None, weights_id="tiny@abc")
        config = dataclasses.replace(tiny.files[0], url=base + "config.json")
        model = registry.register(dataclasses.replace(tiny, name="siglip-tiny-served", weights=weights, files=(config,), revision="abc"))
        resolved = resolve_folder("pretrained", model)
        assert resolved.folder == tmp_path / "torch" / "hub" / "checkpoints" / "siglip-tiny-served@abc"
        assert (resolved.folder / "model.safetensors").is_file() and resolved.weights_id == f"tiny@abc:{digest[:16]}"
        emb = SiglipEmbedder(model, "pretrained", "cpu")
        np.testing.assert_allclose(np.linalg.norm(emb.embed_text(["hello"]), axis=1), 1.0, atol=1e-5)

        bad = registry.register(dataclasses.replace(model, name="siglip-tiny-bad", weights=dataclasses.replace(weights, sha256="0" * 64)))
        with pytest.raises(WeightsUnavailableError, match="sha256"):
            resolve_folder("pretrained", bad)
        assert not list((tmp_path / "torch" / "hub" / "checkpoints" / "siglip-tiny-bad@abc").glob("model.safetensors*"))
    finally:
        httpd.shutdown()
        registry.unregister("siglip-tiny-served")
        registry.unregister("siglip-tiny-bad")
    with pytest.raises(WeightsUnavailableError, match="config.json and model.safetensors"):
        resolve_folder(str(tmp_path / "nothing"), tiny)


# -- two models in one library, the stamp, text search --------------------------------------------


def test_two_models_side_by_side_and_text_search(
    tmp_path: Path, media: Path, tiny: Model, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "lib.db")
    with Library(uri=db) as lib:
        assert lib.index([media], workers=0).indexed == 5
    with Library(uri=db, image_model=TINY_NAME) as lib:
        report = lib.index([media], workers=0)
        assert report.indexed == 5 and not report.failed  # its own manifest: nothing is "unchanged"
        assert lib.store.name("image") == "media_search_siglip_tiny_test_images"
        assert lib.store.model_of("image").name == TINY_NAME and lib.store.model_of("video").dim == 32
        hits = lib.find_similar(SAMPLE / "variants" / "astronaut_crop.jpg", k=3, kinds=["image"])
        assert len(hits) == 3 and all(m.kind == "image" for m in hits)
        found = lib.search(text="a cat and a cup of coffee", k=5)
        assert found.kind == "text" and len(found.results) == 5
        videos = [m for m in found.results if m.kind == "video"]
        assert videos and videos[0].timestamp is not None
        # The page's text box, through its handler.
        from media_search.web.app import Searcher, build_app
        from media_search.web.roots import LibraryRoots

        assert build_app(lib) is not None
        page = Searcher(lib, LibraryRoots(lib))
        status, html, as_json = page.page_text_search("a cup of coffee", 3)
        assert status == "" and "data-rank='1'" in html and as_json["kind"] == "text" and len(as_json["results"]) == 3
        stats = lib.stats()
        assert set(stats["image_models"]) == {"resnet50", TINY_NAME}
        assert stats["image_models"]["resnet50"]["files"]["image"] == 4
        assert stats["image_models"][TINY_NAME]["rows"]["image"] == 4
    with Library(uri=db) as lib:  # the first model's library is untouched
        assert lib.store.model_of("image").name == "resnet50" and lib.store.count("image") == 4
        assert lib.find_similar(SAMPLE / "variants" / "astronaut_crop.jpg", k=1)[0].path.endswith("astronaut.jpg")
        with pytest.raises(NoTextTowerError):
            lib.search(text="a cat")
        from media_search.web.app import Searcher
        from media_search.web.roots import LibraryRoots

        status, html, _ = Searcher(lib, LibraryRoots(lib)).page_text_search("a cat", 3)
        assert "no text tower" in status and "siglip-base-patch16-224" in status and html == ""

    # The real CLI entry point: --text, JSON like a file query's.
    assert main(["query", "--text", "a cat asleep on a sofa", "-k", "3", "--json", "--uri", db, "--image-model", TINY_NAME]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "a cat asleep on a sofa" and out["kind"] == "text" and len(out["results"]) == 3
    assert {"path", "kind", "score", "timestamp", "query_timestamp"} <= set(out["results"][0]) and out["exact_copies"] == []
    assert main(["query", "--text", "a cat", "--uri", db, "--image-model", TINY_NAME]) == 0
    assert "1. " in capsys.readouterr().out
    assert main(["query", "--text", "a cat", "--uri", db]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "note: " not in line]  # the random-weights note aside
    assert len(err) == 1 and "resnet50 has no text tower" in err[0] and "siglip-base-patch16-224" in err[0]
    assert main(["query", "--uri", db]) == 1
    assert "either a FILE" in capsys.readouterr().err
    assert main(["stats", "--json", "--uri", db]) == 0
    assert set(json.loads(capsys.readouterr().out)["image_models"]) == {"resnet50", TINY_NAME}
    assert main(["stats", "--uri", db]) == 0
    text = capsys.readouterr().out
    assert "image model resnet50: collections media_search_*" in text and "media_search_siglip_tiny_test_*" in text

    # The stamp: other weights of the same model raise the re-index error instead of mixing vectors.
    from media_search.embed.siglip import _load_model

    folder = tmp_path / "tiny-weights"
    _load_model(tiny, "random", "", 7, "cpu").save_pretrained(folder)
    with Library(uri=db, image_model=TINY_NAME, image_weights=str(folder)) as lib:
        with pytest.raises(IndexMismatchError, match="reset --kind image"):
            lib.find_similar(SAMPLE / "variants" / "astronaut_crop.jpg", k=1, kinds=["image"])
