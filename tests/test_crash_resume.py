"""Kill real indexing runs (SIGKILL, SIGINT) and check that the next run completes the index exactly.

Each run is ``scripts/index_media.py`` (the same code path as ``media-search
index``) in a subprocess. Kill points are taken from its ``--debug`` log: a
line is logged after each batch is written, so "N s after the k-th write"
lands inside decoding, embedding or the next write.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media_search import Library
from media_search.identity import file_id
from media_search.store.schema import COLLECTIONS

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "index_media.py"
WROTE = "media_search.indexing.run: wrote"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MEDIA_SEARCH_HOME=str(home),
        MEDIA_SEARCH_IMAGE_WEIGHTS="random",
        MEDIA_SEARCH_AUDIO_WEIGHTS="random",
        MEDIA_SEARCH_DEVICE="cpu",
        MEDIA_SEARCH_ENGINE="torch",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        p = folder / f"photo {i:03d}.jpg"
        Image.fromarray(arr).save(p, "JPEG")
        paths.append(p)
    return paths


class Run:
    """One indexing subprocess whose stderr is watched for the indexer's 'wrote' lines."""

    def __init__(self, folder: Path, uri: str, env: dict[str, str], *extra: str) -> None:
        cmd = [sys.executable, str(SCRIPT), str(folder), "--uri", uri, "--json", "--debug", "--workers", "1", *extra]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.writes = 0
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.stderr.append(line)
                if WROTE in line:
                    self.writes += 1
                self._cond.notify_all()

    def wait_writes(self, n: int, timeout: float = 120) -> bool:
        """Block until the run has written ``n`` batches (False if it ended first)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.writes >= n or self.proc.poll() is not None, timeout) and self.writes >= n

    def finish(self, timeout: float = 300) -> tuple[int, dict[str, Any] | None]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()  # stderr is drained by the reader thread
        self.proc.wait(timeout)
        self._reader.join(timeout)
        try:
            return self.proc.returncode, json.loads(out)
        except json.JSONDecodeError:
            return self.proc.returncode, None


def contents(uri: str) -> dict[str, Any]:
    """Row ids per collection and the manifest, read in this process (call after every run is over)."""
    with Library(uri=uri) as lib:
        store = lib.store
        snap: dict[str, Any] = {}
        for kind in COLLECTIONS:
            rows = []
            if store.has(kind):
                rows = store.all_rows(kind)  # loads the collection: after a restart it comes back released
            ids = [r.id for r in rows]
            assert len(ids) == len(set(ids)), f"duplicate rows in {kind}"
            snap[kind] = {(r.id, r.file_id) for r in rows}
        snap["files"] = {r.file_id: (r.path, r.kind, r.state, r.rows) for r in store.iter_files()}
    for kind in COLLECTIONS:
        for _, fid in snap[kind]:
            assert fid in snap["files"] and snap["files"][fid][2] == "done", f"orphan row in {kind}"
    for fid, (path, _, state, n) in snap["files"].items():
        assert state == "done", f"{path} left {state}"
        assert sum(1 for k in COLLECTIONS for _, f in snap[k] if f == fid) == n, f"{path}: row count"
    return snap


def test_sigkill_mid_run_then_rerun_completes_without_duplicates(tmp_path: Path) -> None:
    """Default suite: one real kill -9 while a run is between batches' work, then a rerun."""
    paths = make_images(tmp_path / "lib", 20)
    uri = str(tmp_path / "index.db")
    env = _env(tmp_path / "home")
    run = Run(tmp_path / "lib", uri, env)
    assert run.wait_writes(1), "".join(run.stderr[-20:])
    time.sleep(0.3)  # inside the next batch: decoding or embedding
    run.proc.kill()
    run.proc.wait()
    rc, report = Run(tmp_path / "lib", uri, env).finish()
    assert rc == 0 and report is not None
    assert report["indexed"] + report["unchanged"] == 20 and report["indexed"] < 20
    snap = contents(uri)
    expected = {file_id(str(p.resolve())) for p in paths}
    assert {fid for _, fid in snap["image"]} == expected == set(snap["files"])
    assert len(snap["image"]) == 20


def _media(folder: Path) -> None:
    make_images(folder, 40)
    if shutil.which("ffmpeg"):  # a video with a soundtrack: keyframe rows and audio-window rows
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=6",
             "-f", "lavfi", "-i", "sine=frequency=440:duration=6", "-shortest", "-c:v", "libx264", "-c:a", "aac",
             str(folder / "clip.mp4")],
            check=True,
        )  # fmt: skip


def _kill_and_resume(tmp_path: Path, uri_clean: str, uri: str, env: dict[str, str]) -> None:
    folder = tmp_path / "lib"
    _media(folder)
    rc, clean = Run(folder, uri_clean, env).finish()
    assert rc == 0 and clean is not None and clean["failed"] == []
    rng = np.random.default_rng(5)
    for point in range(3):  # kill at three points: 1st, 2nd, 3rd batch written, plus a random delay
        run = Run(folder, uri, env)
        if run.wait_writes(1 + point % 2):
            time.sleep(float(rng.uniform(0.0, 1.5)))
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait()
    rc, last = Run(folder, uri, env).finish()
    assert rc == 0 and last is not None and last["failed"] == []
    a, b = contents(uri_clean), contents(uri)
    for kind in (*COLLECTIONS, "files"):
        assert a[kind] == b[kind], kind
    assert len(a["image"]) == 40


@pytest.mark.slow
def test_repeated_sigkill_gives_the_same_index_as_a_clean_run_lite(tmp_path: Path) -> None:
    _kill_and_resume(tmp_path, str(tmp_path / "clean.db"), str(tmp_path / "killed.db"), _env(tmp_path / "home"))


@pytest.mark.slow
@pytest.mark.server
def test_repeated_sigkill_gives_the_same_index_as_a_clean_run_server(tmp_path: Path, milvus_server_uri: str) -> None:
    clean_env = _env(tmp_path / "home", MEDIA_SEARCH_PREFIX=f"c{uuid.uuid4().hex[:10]}_")
    killed_env = _env(tmp_path / "home", MEDIA_SEARCH_PREFIX=f"k{uuid.uuid4().hex[:10]}_")
    folder = tmp_path / "lib"
    _media(folder)
    assert Run(folder, milvus_server_uri, clean_env).finish()[0] == 0
    for delay in (0.0, 0.8):
        run = Run(folder, milvus_server_uri, killed_env)
        if run.wait_writes(1):
            time.sleep(delay)
        run.proc.kill()
        run.proc.wait()
    assert Run(folder, milvus_server_uri, killed_env).finish()[0] == 0
    snaps = []
    for env in (clean_env, killed_env):
        os.environ["MEDIA_SEARCH_PREFIX"] = env["MEDIA_SEARCH_PREFIX"]
        try:
            snaps.append(contents(milvus_server_uri))
        finally:
            del os.environ["MEDIA_SEARCH_PREFIX"]
    for kind in (*COLLECTIONS, "files"):
        assert snaps[0][kind] == snaps[1][kind], kind


@pytest.mark.slow
def test_ctrl_c_exits_130_keeps_written_files_and_a_query_meanwhile_gets_a_lock_message(tmp_path: Path) -> None:
    paths = make_images(tmp_path / "lib", 64)
    uri = str(tmp_path / "index.db")
    env = _env(tmp_path / "home")
    run = Run(tmp_path / "lib", uri, env)
    assert run.wait_writes(1)
    # another process reading the index meanwhile (`stats` opens the store first thing; a query too, after embedding)
    probe = subprocess.run(
        [sys.executable, "-m", "media_search", "stats", "--uri", uri], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.proc.poll() is None, "the indexing run ended before the probe: make it longer"
    assert probe.returncode == 1 and "in use by another process" in probe.stderr, probe.stderr
    run.proc.send_signal(signal.SIGINT)
    rc, _ = run.finish()
    assert rc == 130, "".join(run.stderr[-20:])
    assert "interrupted" in "".join(run.stderr) and "KeyboardInterrupt" not in "".join(run.stderr)
    rc, report = Run(tmp_path / "lib", uri, env).finish()
    assert rc == 0 and report is not None and 0 < report["unchanged"] < 64
    snap = contents(uri)
    assert {fid for _, fid in snap["image"]} == {file_id(str(p.resolve())) for p in paths}
