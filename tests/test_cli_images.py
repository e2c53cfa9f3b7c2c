"""End to end through the real ``media-search`` command, on Milvus Lite and the server.

The library folder holds the 12 sample photos and one byte-identical copy; the
transformed copies (crop, resize, JPEG re-encode, flip) live outside it and are
used as queries. Weights are ``random`` (seeded): no download.

Every ``media-search`` process loads the model (~5 s), so the 48 transformed
queries run in one Python process that calls the console script's entry point
(``media_search.cli:main``) once per query with the same arguments.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image, ImageOps

PHOTOS = sorted((Path(__file__).resolve().parents[1] / "sample_media" / "photos").glob("*.jpg"))
TRANSFORMS = ("crop", "resize", "jpeg", "flip")
COPY_OF = "astronaut.jpg"
COPY_NAME = "zz_copy_of_astronaut.jpg"


def make_transforms(src: Path, out: Path) -> dict[str, Path]:
    """Crop to 70% (centred), resize to 50%, re-encode at JPEG quality 30, mirror."""
    im = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
    w, h = im.size
    cw, ch = int(w * 0.7), int(h * 0.7)
    left, top = (w - cw) // 2, (h - ch) // 2
    variants = {
        "crop": (im.crop((left, top, left + cw, top + ch)), 90),
        "resize": (im.resize((w // 2, h // 2), Image.Resampling.LANCZOS), 90),
        "jpeg": (im, 30),
        "flip": (im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 90),
    }
    paths = {}
    for name, (picture, quality) in variants.items():
        path = out / f"{src.stem}_{name}.jpg"
        picture.save(path, "JPEG", quality=quality)
        paths[name] = path
    return paths


def run_cli(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["media-search", *args], env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    """stderr without the random-weights announcement every run makes."""
    return [line for line in stderr.strip().splitlines() if line and "note: MEDIA_SEARCH_" not in line]


_QUERY_MANY = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from media_search.cli import main
    uri, files = sys.argv[1], sys.argv[2:]
    out = {}
    for f in files:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["query", f, "--json", "-k", "5", "--uri", uri])
        out[f] = {"code": code, "result": json.loads(buf.getvalue())}
    print(json.dumps(out))
    """
)


@pytest.fixture
def env(store_uri: str, cli_env: dict[str, str]) -> dict[str, str]:
    env = dict(cli_env)
    env["MEDIA_SEARCH_HOME"] = os.environ["MEDIA_SEARCH_HOME"]
    env["MEDIA_SEARCH_MILVUS_URI"] = store_uri
    if "MEDIA_SEARCH_PREFIX" in os.environ:  # the server: a prefix of this test's own
        env["MEDIA_SEARCH_PREFIX"] = os.environ["MEDIA_SEARCH_PREFIX"]
    else:
        env.pop("MEDIA_SEARCH_PREFIX", None)
    return env


def test_index_and_query_end_to_end(tmp_path: Path, store_uri: str, env: dict[str, str]) -> None:
    library = tmp_path / "library"
    queries = tmp_path / "queries"
    library.mkdir()
    queries.mkdir()
    for p in PHOTOS:
        shutil.copy(p, library / p.name)
    shutil.copy(library / COPY_OF, library / COPY_NAME)
    transformed = {p.name: make_transforms(p, queries) for p in PHOTOS}
    real = lambda p: os.path.realpath(p)  # noqa: E731 - the index keeps resolved paths

    # -- index --------------------------------------------------------------------------
    out = run_cli(["index", str(library), "--json", "--uri", store_uri], env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    design = {"indexed": int, "unchanged": int, "removed": int, "failed": list, "seconds": float}
    for key, typ in design.items():
        assert isinstance(report[key], typ), (key, report)
    assert (report["indexed"], report["unchanged"], report["removed"], report["failed"]) == (13, 0, 0, [])
    assert "random" in out.stderr  # random weights are announced

    # -- every transformed copy finds its original first ----------------------------------
    files = [str(transformed[p.name][t]) for p in PHOTOS for t in TRANSFORMS]
    driver = subprocess.run(
        [sys.executable, "-c", _QUERY_MANY, store_uri, *files], env=env, capture_output=True, text=True, timeout=600
    )
    assert driver.returncode == 0, driver.stderr
    answers = json.loads(driver.stdout)
    hits: dict[str, list[bool]] = {t: [] for t in TRANSFORMS}
    misses = []
    for p in PHOTOS:
        same_bytes = {real(library / p.name)} | ({real(library / COPY_NAME)} if p.name == COPY_OF else set())
        for t in TRANSFORMS:
            answer = answers[str(transformed[p.name][t])]
            assert answer["code"] == 0
            result = answer["result"]
            assert result["kind"] == "image" and len(result["results"]) == 5
            top = result["results"][0]["path"]
            hits[t].append(top in same_bytes)
            if top not in same_bytes:
                misses.append(f"{t}:{p.name}->{Path(top).name}")
    recall = {t: sum(v) / len(v) for t, v in hits.items()}
    overall = sum(sum(v) for v in hits.values()) / sum(len(v) for v in hits.values())
    backend = "server" if store_uri.startswith("http") else "lite"
    print(f"\nrecall@1 [{backend}, random weights]: " + ", ".join(f"{t} {r:.3f}" for t, r in recall.items())
          + f"; overall {overall:.3f}; misses: {misses or 'none'}")
    for t in ("crop", "resize", "jpeg"):
        assert recall[t] == 1.0, misses
    # With random (untrained) weights a mirror image is not always closest to its
    # original (10 of 12 here); pretrained weights are far more robust to flips.
    assert overall >= 0.9, misses

    # -- a library file: itself excluded, its byte copy listed apart, exactly k results -----
    out = run_cli(["query", str(library / COPY_OF), "--json", "-k", "5", "--uri", store_uri], env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"query", "kind", "results", "exact_copies"}
    assert result["query"] == str(library / COPY_OF) and result["kind"] == "image"
    paths = [m["path"] for m in result["results"]]
    assert len(paths) == 5 and len(set(paths)) == 5
    assert real(library / COPY_OF) not in paths and real(library / COPY_NAME) not in paths
    assert result["exact_copies"] == [real(library / COPY_NAME)]
    for m in result["results"]:
        assert set(m) == {"path", "kind", "score", "timestamp", "query_timestamp", "copy", "copy_confidence"}
        assert m["kind"] == "image" and m["timestamp"] is None and -1.0 <= m["score"] <= 1.0001
    scores = [m["score"] for m in result["results"]]
    assert scores == sorted(scores, reverse=True)

    # -- re-index: nothing changed ----------------------------------------------------------
    out = run_cli(["index", str(library), "--json", "--uri", store_uri], env)
    assert out.returncode == 0, out.stderr
    again = json.loads(out.stdout)
    assert (again["indexed"], again["unchanged"], again["removed"], again["failed"]) == (0, 13, 0, [])

    # -- a file that is not media: one sentence, exit 1; --debug shows the traceback ---------
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list: milk, eggs\n")
    out = run_cli(["query", str(notes), "--uri", store_uri], env)
    assert out.returncode == 1 and out.stdout == ""
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and lines[0].startswith("media-search: ") and "not an image, video or audio" in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    out = run_cli(["query", str(notes), "--uri", store_uri, "--debug"], env)
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "UnsupportedMediaError" in out.stderr


def test_index_runs_at_a_lower_cpu_priority_unless_told_otherwise(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """``index`` lowers its own priority (default ``--nice 10``: a page's searches come first when
    both run); ``--nice 0`` keeps it; out of range is a usage error. Run through ``cli.main`` in a
    child, whose priority is read after the run (a niceness cannot be raised back)."""
    shutil.copy(PHOTOS[0], tmp_path / PHOTOS[0].name)
    env = dict(cli_env, MEDIA_SEARCH_MILVUS_URI=str(tmp_path / "x.db"), MEDIA_SEARCH_HOME=os.environ["MEDIA_SEARCH_HOME"])
    probe = "import os, sys; from media_search.cli import main; rc = main(sys.argv[1:]); print(rc, os.nice(0))"
    for extra, want in (([], 10), (["--nice", "0"], 0)):
        before = os.nice(0)
        r = subprocess.run([sys.executable, "-c", probe, "index", str(tmp_path / PHOTOS[0].name), "--json", *extra],
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[-2:] == ["0", str(min(19, before + want))]
    bad = run_cli(["index", str(tmp_path), "--nice", "40"], env)
    assert bad.returncode == 2 and "--nice takes 0 to 19" in bad.stderr
