"""Odd file names: indexed, found, excluded and deleted correctly; never put in a filter."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

PHOTOS = sorted((Path(__file__).resolve().parents[1] / "sample_media" / "photos").glob("*.jpg"))
ODD = [
    'it\'s "q" \\ #1 😀 фото 写真.jpg',
    "100% done  (copy) #2.jpg",
    "back\\slash\\n and \\\"escaped\\\".jpg",
    "new\nline\ttab.jpg",
    "Ünïcödé ελληνικά عربى.jpeg",
]
FRAGMENTS = ["it's", "фото", "写真", "😀", "100%", "back\\", "line", "ελληνικά", "#"]


def build(folder: Path) -> dict[str, Path]:
    """The library: each odd name holds a different photo; normal names hold the rest."""
    folder.mkdir()
    placed = {}
    for i, src in enumerate(PHOTOS):
        name = ODD[i] if i < len(ODD) else src.name
        shutil.copy(src, folder / name)
        placed[src.name] = folder / name
    return placed


def record_filters(lib: Any) -> list[str]:
    """Every filter expression the store sends to Milvus, recorded from the real client."""
    seen: list[str] = []
    client = lib.store.client
    for method in ("query", "query_iterator", "search", "delete", "get"):
        original = getattr(client, method)

        @functools.wraps(original)
        def spy(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            seen.append(str(kwargs.get("filter", "")))
            return __original(*args, **kwargs)

        setattr(client, method, spy)
    return seen


def test_odd_names_through_the_library(library: Any, tmp_path: Path) -> None:
    folder = tmp_path / "lib # 1 'ü'"
    placed = build(folder)
    twin = folder / "twin of it's \"q\" 😀.jpg"  # the same bytes as ODD[0]
    shutil.copy(placed[PHOTOS[0].name], twin)
    filters = record_filters(library)

    report = library.index([folder])
    assert report.failed == [] and report.indexed == len(PHOTOS) + 1

    queries = tmp_path / "queries"
    queries.mkdir()
    for i, name in enumerate(ODD):
        odd = os.path.realpath(folder / name)
        # Found: a half-size copy kept outside the library finds the odd name first.
        small = queries / f"q{i}.jpg"
        im = Image.open(PHOTOS[i]).convert("RGB")
        im.resize((im.width // 2, im.height // 2)).save(small, quality=90)
        top = library.find_similar(small, k=3)[0]
        assert top.path in ({odd, os.path.realpath(twin)} if i == 0 else {odd}), (name, top)
        # Excluded: queried with itself, it is not a result.
        result = library.search(folder / name, k=5)
        assert len(result.results) == 5
        assert odd not in [m.path for m in result.results]
        if i == 0:
            assert result.exact_copies == [os.path.realpath(twin)]
            assert os.path.realpath(twin) not in [m.path for m in result.results]
        else:
            assert result.exact_copies == []

    # Deleted: remove two odd files (one with a twin) and re-index the folder.
    gone = [folder / ODD[0], folder / ODD[3]]
    for p in gone:
        p.unlink()
    again = library.index([folder])
    assert (again.removed, again.indexed, again.failed) == (2, 0, [])
    assert library.store.count("image") == len(PHOTOS) - 1
    indexed = {rec.path for rec in library.store.iter_files()}
    assert not indexed & {os.path.realpath(p) for p in gone}
    assert os.path.realpath(twin) in indexed
    result = library.search(queries / "q0.jpg", k=len(PHOTOS))
    assert os.path.realpath(gone[0]) not in [m.path for m in result.results]
    assert result.results[0].path == os.path.realpath(twin)  # the surviving twin

    # The product never put a path, a name or any of their characters in a filter.
    assert filters, "no filter was recorded"
    for expr in filters:
        assert not any(f in expr for f in FRAGMENTS), expr
        assert str(tmp_path) not in expr


@pytest.mark.parametrize("store_uri", ["lite"], indirect=True)
def test_odd_names_through_the_cli(tmp_path: Path, store_uri: str, cli_env: dict[str, str]) -> None:
    folder = tmp_path / "фото album"
    folder.mkdir()
    for src in PHOTOS[:4]:
        shutil.copy(src, folder / src.name)
    odd, twin = folder / ODD[0], folder / ODD[1]
    shutil.copy(PHOTOS[4], odd)
    shutil.copy(PHOTOS[4], twin)
    env = {**cli_env, "MEDIA_SEARCH_HOME": os.environ["MEDIA_SEARCH_HOME"]}
    index = subprocess.run(
        ["media-search", "index", str(folder), "--json", "--uri", store_uri],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert index.returncode == 0, index.stderr
    out = subprocess.run(
        ["media-search", "query", str(odd), "--json", "-k", "3", "--uri", store_uri],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    index_line, query_line = index.stdout.strip(), out.stdout.strip()
    assert json.loads(index_line)["indexed"] == 6
    result = json.loads(query_line)
    assert result["query"] == str(odd)
    assert result["exact_copies"] == [os.path.realpath(twin)]
    paths = [m["path"] for m in result["results"]]
    assert len(paths) == 3 and os.path.realpath(odd) not in paths and os.path.realpath(twin) not in paths
    assert "Traceback" not in out.stderr + index.stderr
