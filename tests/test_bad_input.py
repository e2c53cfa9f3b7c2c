"""Bad input through the real command: listed with a reason (exit 2), the rest indexed; a query on
each gives one sentence and exit 1."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

PHOTOS = sorted((Path(__file__).resolve().parents[1] / "sample_media" / "photos").glob("*.jpg"))
GOOD = 4

#: bad file name -> what its error must say
REASONS = {
    "empty.jpg": "empty",
    "truncated.jpg": "damaged or truncated",
    "notes.png": "not an image, video or audio file",
    "bomb.png": "megapixel limit",
    "x.jpg": "directory",
}


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def make_bad(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    data = PHOTOS[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.png").write_text("a shopping list, not a picture\n")
    (folder / "bomb.png").write_bytes(png_claiming(50000, 50000))
    (folder / "x.jpg").mkdir()
    return {name: folder / name for name in REASONS}


def _env(cli_env: dict[str, str]) -> dict[str, str]:
    env = {**cli_env, "MEDIA_SEARCH_HOME": os.environ["MEDIA_SEARCH_HOME"]}
    for key in ("MEDIA_SEARCH_MILVUS_URI", "MEDIA_SEARCH_PREFIX"):
        if key in os.environ:
            env[key] = os.environ[key]
        else:
            env.pop(key, None)
    return env


def error_lines(stderr: str) -> list[str]:
    """stderr without the random-weights announcement every run makes."""
    return [line for line in stderr.strip().splitlines() if line and "note: MEDIA_SEARCH_" not in line]


def test_index_lists_each_bad_file_and_indexes_the_rest(tmp_path: Path, store_uri: str, cli_env: dict) -> None:
    folder = tmp_path / "mixed"
    bad = make_bad(folder)
    for src in PHOTOS[:GOOD]:
        shutil.copy(src, folder / src.name)
    out = subprocess.run(
        ["media-search", "index", str(folder), "--json", "--uri", store_uri],
        env=_env(cli_env), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    report = json.loads(out.stdout)
    assert report["indexed"] == GOOD and report["unchanged"] == 0
    failed = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert set(failed) == set(REASONS), failed
    for name, reason in REASONS.items():
        assert reason in failed[name], (name, failed[name])
        assert str(bad[name]) in failed[name]  # the sentence names the file
        assert "\n" not in failed[name] and "Traceback" not in failed[name]


@pytest.mark.parametrize("name", list(REASONS))
def test_query_on_a_bad_file_is_one_sentence(tmp_path: Path, cli_env: dict, name: str) -> None:
    path = make_bad(tmp_path / "bad")[name]
    out = subprocess.run(
        ["media-search", "query", str(path), "--uri", str(tmp_path / "index.db")],
        env=_env(cli_env), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 1 and out.stdout == ""
    lines = error_lines(out.stderr)
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert line.startswith("media-search: ") and REASONS[name] in line and str(path) in line
    assert line.rstrip().endswith((".", ")")), line
    assert "Traceback" not in out.stderr
