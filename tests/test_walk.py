"""The walk: which files the indexer looks at (no model, no store)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from media_search.indexing.walk import walk


def _jpeg(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(path, "JPEG")
    return path


def _names(root: Path, **kw: object) -> dict[str, str | None]:
    return {os.path.relpath(e.path, root): e.error for e in walk([str(root)], **kw)}  # type: ignore[arg-type]


def test_recursive_hidden_and_databases_skipped_content_sniffed(tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg")
    _jpeg(tmp_path / "sub" / "deeper" / "b.JPEG")
    _jpeg(tmp_path / "no_suffix", seed=1)  # found by its content
    (tmp_path / "notes.txt").write_text("not media")
    _jpeg(tmp_path / ".hidden" / "c.jpg")
    _jpeg(tmp_path / ".dotfile.jpg")
    db = tmp_path / "index.db"  # a Milvus Lite database folder
    (db / "collections").mkdir(parents=True)
    (db / "LOCK").touch()
    _jpeg(db / "collections" / "x.jpg")
    _jpeg(tmp_path / "own" / "y.jpg")
    found = _names(tmp_path, skip={str(tmp_path / "own")})
    assert found == {"a.jpg": None, "no_suffix": None, os.path.join("sub", "deeper", "b.JPEG"): None}


def test_entries_carry_stat_and_resolved_path(tmp_path: Path) -> None:
    p = _jpeg(tmp_path / "we ird 'name\" ü 🎞.jpg")
    (e,) = list(walk([str(tmp_path)]))
    st = p.stat()
    assert (e.real, e.size, e.mtime, e.error) == (os.path.realpath(p), st.st_size, st.st_mtime, None)


def test_symlinks_not_followed_by_default_and_noted(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _jpeg(lib / "a.jpg")
    outside = _jpeg(tmp_path / "elsewhere" / "b.jpg")
    (lib / "link.jpg").symlink_to(outside)
    (lib / "dirlink").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (lib / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")
    notes: list[str] = []
    assert _names(lib, notes=notes) == {"a.jpg": None}
    assert notes and "skipped 3 symbolic link(s)" in notes[0] and "--follow-symlinks" in notes[0]


def test_follow_symlinks_never_loops_and_reports_broken_links(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _jpeg(lib / "a.jpg")
    _jpeg(lib / "sub" / "b.jpg", seed=2)
    (lib / "sub" / "loop").symlink_to(lib, target_is_directory=True)  # lib/sub/loop -> lib
    (lib / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")
    (lib / "self.jpg").symlink_to(lib / "self.jpg")  # a link to itself
    (lib / "again.jpg").symlink_to(lib / "a.jpg")  # same file twice: listed once
    found = _names(lib, follow_symlinks=True)
    assert found["a.jpg"] is None and found[os.path.join("sub", "b.jpg")] is None
    assert "broken symbolic link" in (found["dangling.jpg"] or "")
    assert "broken symbolic link" in (found["self.jpg"] or "")
    assert "again.jpg" not in found  # resolved to a.jpg, already listed
    assert len(found) == 4


def test_directory_named_like_media_is_reported(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").mkdir()
    _jpeg(tmp_path / "x.jpg" / "inside.jpg")
    found = _names(tmp_path)
    assert "is a directory" in (found["x.jpg"] or "")
    assert found[os.path.join("x.jpg", "inside.jpg")] is None


def test_explicit_paths_are_always_tried_and_listed_once(tmp_path: Path) -> None:
    a = _jpeg(tmp_path / "a.jpg")
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    entries = list(walk([str(a), str(text), str(tmp_path), str(tmp_path / "gone.png")]))
    by_path = {e.path: e.error for e in entries}
    assert by_path[str(a)] is None and by_path[str(text)] is None  # detect() decides later
    assert "No such file" in (by_path[str(tmp_path / "gone.png")] or "")
    assert len(entries) == 3  # a.jpg once, though given explicitly and inside the folder


def test_unlistable_folder_is_reported(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    _jpeg(locked / "a.jpg")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            import pytest

            pytest.skip("running as root: permissions do not stop reading, so an unreadable folder cannot be made")
        found = _names(tmp_path)
        assert "cannot be listed" in (found["locked"] or "")
    finally:
        locked.chmod(0o755)
