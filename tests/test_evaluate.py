"""``media-search evaluate`` on a small generated library, through the real CLI entry point.

Random weights (ResNet50, Cnn14 and a tiny SigLIP registered as its own model,
as in ``test_models.py``): the figures test the pipeline, not the models.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from media_search import Library  # noqa: E402
from media_search.cli import main  # noqa: E402
from media_search.embed import registry  # noqa: E402
from media_search.evaluate import edits  # noqa: E402

from test_models import TINY_NAME, tiny_siglip  # noqa: E402


def _picture(path: Path, seed: int) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w] / w
    base = np.stack([127 + 100 * np.sin(rng.uniform(2, 9) * xx + rng.uniform(0, 6) + rng.uniform(1, 5) * yy) for _ in range(3)], -1)
    im = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = rng.integers(0, w - 40), rng.integers(0, h - 40)
        d.ellipse([x, y, x + rng.integers(20, 80), y + rng.integers(20, 80)], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    im.save(path, quality=90)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three pictures, a 4 s video (with a tone soundtrack) and a 6 s sound."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("generated")
    for i in range(3):
        _picture(root / f"picture{i}.jpg", i)
    if shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=4",
                        "-f", "lavfi", "-i", "sine=frequency=330:duration=4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                        "-c:a", "aac", "-shortest", str(root / "clip.mp4")], check=True)  # fmt: skip
    sr = 32000
    t = np.arange(6 * sr) / sr
    tone = sum(np.sin(2 * np.pi * f * t * (1 + 0.01 * np.sin(t))) for f in (220, 277, 330)) / 4
    sf.write(root / "chord.wav", (tone * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32), sr)
    return root


def test_edits_make_every_family(generated: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for family in edits.FAMILIES["image"]:
        out = edits.edit("image", family, generated / "picture0.jpg", tmp_path, rng)
        assert out.is_file() and out.stat().st_size > 0
    for family in edits.FAMILIES["audio"]:
        assert edits.edit("audio", family, generated / "chord.wav", tmp_path, rng).stat().st_size > 0


def test_evaluate_json_compares_models_and_writes_nothing(
    generated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "lib.db")
    with Library(uri=db) as lib:
        assert lib.index([generated], workers=0).indexed == len(list(generated.iterdir()))
    registry.register(tiny_siglip())
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp_root))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    try:
        before = sorted(os.listdir(tmp_path))
        code = main(["evaluate", "--json", "--uri", db, "--models", f"resnet50,{TINY_NAME}", "--sample", "5"])
        assert code == 0
        report = json.loads(capsys.readouterr().out)
    finally:
        registry.unregister(TINY_NAME)
    assert [r["name"] for r in report["models"]][:2] == ["resnet50", TINY_NAME]
    has_video = (generated / "clip.mp4").exists()
    for row in report["models"][:2]:
        want = set(edits.FAMILIES["image"]) | (set(edits.FAMILIES["video"]) if has_video else set())
        assert set(row["families"]) == want
        for fam in row["families"].values():
            assert 0 <= fam["recall@1"] <= fam["recall@5"] <= 1
        assert row["index_per_s"] > 0 and row["query_ms"] > 0 and row["vector_bytes"] == 4 * row["dim"]
    assert report["models"][1]["dim"] == 32 and report["models"][0]["dim"] == 2048
    audio = report["models"][2]
    assert audio["name"] == "panns-cnn14" and set(audio["families"]) == set(edits.FAMILIES["audio"])
    assert report["recommended"] in ("resnet50", TINY_NAME) and report["weights"] == "random"
    # Nothing written into the library, nothing left in the temporary folder.
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(temp_root) == []
    with Library(uri=db) as lib:
        assert lib.stats()["image_models"].keys() == {"resnet50"}
        assert sum(lib.stats()["files"].values()) == len(list(generated.iterdir()))

    assert main(["evaluate", "--uri", db, "--models", "resnet50", "--sample", "2"]) == 0
    text = capsys.readouterr().out
    assert "recall@1/recall@5" in text and "recommended: resnet50" in text and "RANDOM" in text


def test_evaluate_empty_library_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--uri", str(tmp_path / "empty.db")]) == 1
    assert "no indexed files to sample" in capsys.readouterr().err
