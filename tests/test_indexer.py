"""The bulk indexer: incremental runs, bad input, the process pool, repair after a failed write, the CLI."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from media_search import Library
from media_search.cli import main
from media_search.identity import file_id
from media_search.indexing.run import index_paths
from media_search.store.schema import COLLECTIONS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _torch_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine is not under test here; torch needs no per-home ONNX export.
    monkeypatch.setenv("MEDIA_SEARCH_ENGINE", "torch")


def make_images(folder: Path, n: int, *, seed: int = 0, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """``n`` distinct small JPEGs (smooth colour fields plus noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    w, h = size
    for i in range(n):
        base = rng.integers(0, 255, (2, 2, 3), dtype=np.uint8)
        im = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
        arr = np.clip(np.asarray(im, dtype=np.int16) + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        p = folder / f"img_{i:03d}.jpg"
        Image.fromarray(arr).save(p, "JPEG", quality=90)
        out.append(p)
    return out


def parts(lib: Library) -> dict[str, Any]:
    """What ``index_paths`` receives: the library's store, embedders and settings."""
    return {"store": lib.store, "embedders": lib.embedders, "settings": lib.settings}


def contents(lib: Library) -> dict[str, Any]:
    """Row ids per collection, and the manifest as {file_id: (path, state, rows)}."""
    store = lib.store
    out: dict[str, Any] = {}
    for kind in COLLECTIONS:
        if store.has(kind):
            rows = store.all_rows(kind)
            out[kind] = sorted((r.id, r.file_id) for r in rows)
    out["files"] = {r.file_id: (r.path, r.state, r.rows) for r in store.iter_files()} if store.has("files") else {}
    return out


def assert_consistent(snap: dict[str, Any]) -> None:
    """No duplicate ids, no orphan rows, no pending entry; each file has the rows its entry says."""
    files = snap["files"]
    per_file: dict[str, int] = {}
    for kind in COLLECTIONS:
        rows = snap.get(kind, [])
        ids = [i for i, _ in rows]
        assert len(ids) == len(set(ids)), f"duplicate rows in {kind}"
        for _, fid in rows:
            assert fid in files, f"orphan row of {fid} in {kind}"
            per_file[fid] = per_file.get(fid, 0) + 1
    for fid, (path, state, n) in files.items():
        assert state == "done", f"{path} left {state}"
        assert per_file.get(fid, 0) == n, f"{path}: {per_file.get(fid, 0)} rows, manifest says {n}"


def test_incremental_runs_skip_replace_and_remove(library: Library, tmp_path: Path) -> None:
    paths = make_images(tmp_path / "lib", 6)
    r = index_paths([tmp_path / "lib"], **parts(library))
    assert (r.indexed, r.unchanged, r.removed, r.failed, r.by_kind) == (6, 0, 0, [], {"image": 6})

    events: list[dict[str, Any]] = []
    r = index_paths([tmp_path / "lib"], **parts(library), progress=events.append)
    assert (r.indexed, r.unchanged, r.removed) == (0, 6, 0)
    assert events == [{"event": "start", "total": 0, "unchanged": 6}]  # nothing was even read

    before = contents(library)
    make_images(tmp_path / "other", 1, seed=99)[0].replace(paths[0])  # new bytes at the same path
    os.utime(paths[1], (1_000_000, 1_000_000))  # new mtime, same bytes
    r = index_paths([tmp_path / "lib"], **parts(library))
    assert (r.indexed, r.unchanged, r.removed) == (1, 5, 0)
    after = contents(library)
    assert after["image"] == before["image"]  # same ids: the row was replaced, not added
    files = library.store.get_files([file_id(str(paths[1].resolve()))])
    assert next(iter(files.values())).mtime == 1_000_000  # touched: manifest updated, not re-embedded

    paths[2].unlink()
    r = index_paths([tmp_path / "lib"], **parts(library))
    assert (r.indexed, r.unchanged, r.removed) == (0, 5, 1)
    paths[3].unlink()
    r = index_paths([tmp_path / "lib"], **parts(library), delete_missing=False)
    assert (r.indexed, r.unchanged, r.removed) == (0, 4, 0)
    snap = contents(library)
    assert len(snap["image"]) == 5
    assert_consistent(snap)


def _png_bomb(path: Path) -> None:
    """A valid PNG header declaring 50000x50000 pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_bad_files_are_reported_and_good_ones_indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIA_SEARCH_MILVUS_URI", str(tmp_path / "index.db"))
    folder = tmp_path / "lib"
    good = make_images(folder, 4)
    good_bytes = good[0].read_bytes()
    bad = {
        "empty.jpg": "empty",
        "truncated.jpg": "truncated",
        "text.png": "not an image",
        "bomb.png": "decompression bomb",
        "x.jpg": "is a directory",
        "loop.jpg": "broken symbolic link",
        "dangling.jpg": "broken symbolic link",
        "vanishing.jpg": "disappeared",
    }
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(good_bytes[: len(good_bytes) // 2])
    (folder / "text.png").write_text("hello, I am text\n" * 20)
    _png_bomb(folder / "bomb.png")
    (folder / "x.jpg").mkdir()
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    (folder / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (folder / "vanishing.jpg").write_bytes(good_bytes)
    (folder / "notes.txt").write_text("not media, not a candidate: ignored")

    def delete_after_listing(event: dict[str, Any]) -> None:
        if event["event"] == "start":
            (folder / "vanishing.jpg").unlink()

    with Library() as lib:
        report = index_paths([folder], **parts(lib), follow_symlinks=True, progress=delete_after_listing, workers=1)
        snap = contents(lib)
    failed = {Path(f.path).name: f.error for f in report.failed}
    assert set(failed) == set(bad), failed
    for name, reason in bad.items():
        assert reason in failed[name], (name, failed[name])
        assert failed[name].endswith(".") and name in failed[name]
    assert (report.indexed, report.exit_code) == (4, 2)
    assert {p for p, _, _ in snap["files"].values()} == {str(p.resolve()) for p in good}
    assert_consistent(snap)
    if os.geteuid() == 0:
        pytest.skip("unreadable files: running as root, chmod 000 does not stop reading (covered by the error path above)")


def test_worker_processes_and_inline_decoding_give_the_same_vectors(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    make_images(folder, 10, size=(300, 200))
    vectors = []
    for workers in (0, 1):
        with Library(uri=str(tmp_path / f"w{workers}.db")) as lib:
            report = index_paths([folder], **parts(lib), workers=workers)
            assert report.indexed == 10
            rows = lib.store.all_rows("image", vectors=True)
            vectors.append({r.id: np.asarray(r.vector) for r in rows})
    assert vectors[0].keys() == vectors[1].keys()
    for key, vec in vectors[0].items():
        np.testing.assert_allclose(vec, vectors[1][key], atol=1e-5)


def test_a_write_that_dies_midway_is_repaired_by_the_next_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "lib"
    paths = make_images(folder, 10)
    with Library(uri=str(tmp_path / "index.db")) as lib:
        index_paths([folder], **parts(lib), workers=0)
        for p, new in zip(paths[:5], make_images(tmp_path / "new", 10, seed=7)):
            new.replace(p)  # 5 changed files ...
        for new in sorted((tmp_path / "new").iterdir()):
            new.replace(folder / f"more_{new.name}")  # ... and 5 new ones
        real_upsert = lib.store.upsert_rows

        def dies(kind: str, columns: dict[str, Any]) -> int:
            # pending marks written, the changed files' old rows deleted: the process "dies" here
            raise SystemExit("killed mid-write")

        monkeypatch.setattr(lib.store, "upsert_rows", dies)
        with pytest.raises(SystemExit):
            index_paths([folder], **parts(lib), workers=0)
        pending = [p for p, s, _ in contents(lib)["files"].values() if s == "pending"]
        assert pending
        monkeypatch.setattr(lib.store, "upsert_rows", real_upsert)
        report = index_paths([folder], **parts(lib), workers=0)
        assert any(f"repaired {len(pending)} file(s)" in n for n in report.notes)
        assert report.indexed + report.unchanged == 15 and report.indexed >= 10
        snap = contents(lib)
    assert len(snap["image"]) == 15
    assert_consistent(snap)


def test_cli_json_report_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lib"
    make_images(folder, 2)
    uri = str(tmp_path / "index.db")
    assert main(["index", str(folder), "--uri", uri, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["indexed"] == 2 and report["failed"] == [] and report["by_kind"] == {"image": 2}
    assert {"indexed", "unchanged", "removed", "failed", "seconds", "keyframes", "windows", "notes"} <= report.keys()

    (folder / "broken.png").write_text("text")
    assert main(["index", str(folder), "--uri", uri, "--json", "--workers", "0"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert (report["indexed"], report["unchanged"]) == (0, 2)
    assert report["failed"][0]["path"] == str(folder / "broken.png")

    assert main(["index", str(folder), "--uri", str(tmp_path / "not-a-db")]) == 1  # fatal: a bad URI
    assert ".db" in capsys.readouterr().err


def test_bulk_script_is_the_cli_index_command(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "index_media.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--json", "--no-delete", "--follow-symlinks", "--workers", "--uri"):
        assert option in out
