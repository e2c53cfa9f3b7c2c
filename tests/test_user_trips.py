"""Small things a user trips on: ``~`` in paths given to the library, the module-level
functions keeping a Milvus Lite file locked, and decode workers outliving a killed indexer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import media_search
from media_search import Library

ROOT = Path(__file__).resolve().parents[1]


def _photos(folder: Path, n: int, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    out = []
    for i in range(n):
        path = folder / f"p{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).resize((size * 4, size * 4)).save(path, quality=85)
        out.append(path)
    return out


def test_library_expands_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    photos = _photos(tmp_path / "Pictures", 3)
    with Library(uri="~/photos.db") as lib:
        assert lib.settings.uri == str(tmp_path / "photos.db")
        report = lib.index(["~/Pictures"])
        assert report.indexed == 3 and not report.to_dict()["failed"], report.to_dict()
        results = lib.find_similar("~/Pictures/p000.jpg", k=2)
        assert len(results) == 2 and all(Path(m.path).parent == photos[0].parent for m in results)
    assert (tmp_path / "photos.db").is_dir()
    assert not (Path.cwd() / "~").exists()


def test_module_level_functions_release_the_lite_file(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 3)
    db = str(tmp_path / "lib.db")
    media_search.index(photos[0].parent, uri=db)
    assert media_search.find_similar(photos[0], k=1, uri=db)
    assert media_search.search(photos[1], k=1, uri=db).results
    # Right after, another process opens the same .db (Milvus Lite allows one process at a time).
    code = f"from media_search import Library\nwith Library(uri={db!r}) as lib:\n    print(lib.stats()['files']['image'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "3"
    # ... and this process can still use it afterwards (the models stayed loaded).
    assert media_search.find_similar(photos[2], k=1, uri=db)


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, out, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent (init) has to reap it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_indexer_leaves_no_worker_behind(tmp_path: Path, cli_env: dict[str, str]) -> None:
    _photos(tmp_path / "photos", 150, size=256)
    env = {**cli_env, "MEDIA_SEARCH_MILVUS_URI": str(tmp_path / "lib.db"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "media_search", "index", str(tmp_path / "photos"), "--workers", "2", "--json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            children = _descendants(proc.pid)
            if len(children) >= 3:  # two decode workers and the resource tracker
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"the indexer finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(1.0)  # mid-run: workers busy decoding
        children = _descendants(proc.pid)
        assert children, "no decode worker started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        left = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for p in children if _alive(p)}
        assert not left, f"still running 5 s after kill -9 of the indexer: {left}"
    finally:
        for pid in [proc.pid, *children]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.stderr:
            proc.stderr.close()


def test_worker_watchdog_exits_when_its_parent_changes() -> None:
    """The watchdog itself, in a grandchild whose parent is killed (no indexer, no model). The
    grandchild reads its parent's pid before it says it is ready, as a decode worker is handed
    the indexer's pid: read after, the parent could already be gone (a race of this test: 1 run
    in 5 failed here)."""
    code = textwrap.dedent(
        """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import os, time; from media_search.indexing.pool import _exit_with_parent; "
            "ppid = os.getppid(); print(os.getpid(), flush=True); _exit_with_parent(ppid, every=0.05)"],
            stdout=subprocess.PIPE, text=True)
        print(child.stdout.readline().strip(), flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        grandchild = int(parent.stdout.readline())
        assert _alive(grandchild)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(grandchild):
            time.sleep(0.05)
        assert not _alive(grandchild)
    finally:
        parent.stdout.close()


def test_videos_indexed_without_ffmpeg_say_their_soundtracks_were_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, library) -> None:
    import shutil

    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(ROOT / "sample_media" / "videos" / "space_tour.mp4", folder)
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on it
    report = library.index([folder], workers=0)
    assert report.indexed == 1, report.to_dict()
    assert any("ffmpeg is not installed: the soundtracks of 1 video(s)" in note for note in report.notes), report.notes
