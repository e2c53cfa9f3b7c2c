"""``index --ray``: the indexer's stages on Ray Data (``media_search.indexing.distributed``).

One local Ray runtime (2 CPUs, a small object store) serves the module; its workers run
``tests/ray_kill.py`` at start, which makes files named ``kill-*`` kill their worker. Each test
indexes the same folder with the local indexer and with Ray into two stores (two Lite files, or two
prefixes on the embedded Milvus 2.3.5 server) and compares what was written.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import BACKENDS
from media_search import Library
from media_search.cli import main
from media_search.embed.spec import ModelSpec
from media_search.errors import IndexMismatchError
from media_search.identity import file_id
from media_search.store.schema import COLLECTIONS

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


# A local Ray runtime takes a minute to start on 2 busy cores and has timed out there ("The current
# node timed out during startup"): the Ray tests run with `-m slow`, not in the default suite.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_runtime(tmp_path_factory: pytest.TempPathFactory, _engines_cache: Path) -> Path:
    """A local Ray runtime with 2 CPUs; returns the kill hook's marker folder."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
    home = tmp_path_factory.mktemp("ray-home")
    (home / "engines").symlink_to(_engines_cache, target_is_directory=True)
    markers = tmp_path_factory.mktemp("kill-markers")
    env = {
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "MEDIA_SEARCH_HOME": str(home),  # the workers' ONNX export cache: the session's
        "MEDIA_SEARCH_TEST_KILL_DIR": str(markers),
    }
    ray.init(num_cpus=2, object_store_memory=300 * 2**20, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": env, "worker_process_setup_hook": "ray_kill.install"})  # fmt: skip
    try:
        yield markers
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _torch_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch engine (no ONNX export to wait for); the setting travels to the workers with the work."""
    monkeypatch.setenv("MEDIA_SEARCH_ENGINE", "torch")


def _stores(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[dict[str, str], dict[str, str]]:
    """Settings of two fresh stores on ``backend``: one for the local indexer, one for Ray."""
    if backend == "lite":
        return {"uri": str(tmp_path / "local.db")}, {"uri": str(tmp_path / "ray.db")}
    uri = request.getfixturevalue("milvus_server_uri")
    return ({"uri": uri, "prefix": f"l{uuid.uuid4().hex[:10]}_"}, {"uri": uri, "prefix": f"r{uuid.uuid4().hex[:10]}_"})


def _media(folder: Path, *, kills: tuple[str, ...] = ()) -> None:
    """Pictures, a video, a short sound and one streamed in blocks (longer than stream_seconds), a bad file."""
    import cv2
    import soundfile as sf
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (48 + i, 64, 3), dtype=np.uint8)).save(folder / f"photo {i}.jpg")
    for name in kills:
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(folder / f"{name}.jpg")
    w = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for t in range(35):
        w.write(np.clip(rng.integers(0, 60, (64, 96, 3)) + (t // 10) * 60, 0, 255).astype(np.uint8))
    w.release()
    t = np.arange(32000 * 3) / 32000
    sf.write(folder / "short.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 32000)
    t = np.arange(32000 * 8) / 32000
    sf.write(folder / "long.wav", (0.3 * np.sin(2 * np.pi * 300 * t) * (1 + np.sin(t))).astype(np.float32), 32000)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def _contents(lib: Library) -> dict[str, Any]:
    """Every row (id, fields, vector) per collection, and the manifest, keyed by id."""
    store = lib.store
    out: dict[str, Any] = {}
    for kind in COLLECTIONS:
        rows = store.all_rows(kind, vectors=True)  # type: ignore[arg-type]
        assert len({r.id for r in rows}) == len(rows), f"duplicate rows in {kind}"
        out[kind] = {r.id: r for r in rows}
    out["files"] = {r.file_id: r for r in store.iter_files()} if store.has("files") else {}
    return out


def _assert_same(local: dict[str, Any], ray: dict[str, Any], *, without: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    for kind in COLLECTIONS:
        want = {i: r for i, r in local[kind].items() if r.file_id not in without}
        got = ray[kind]
        assert sorted(got) == sorted(want), f"{kind}: other row ids"
        for i, r in want.items():
            g = got[i]
            assert (g.file_id, g.path, g.content_hash, g.timestamp, g.duration, g.source) == (
                r.file_id, r.path, r.content_hash, r.timestamp, r.duration, r.source)  # fmt: skip
            np.testing.assert_allclose(g.vector, r.vector, atol=2e-5)
    want_files = {f: r for f, r in local["files"].items() if f not in without}
    assert ray["files"] == want_files
    assert all(r.state == "done" for r in ray["files"].values())
    rows_per_file: dict[str, int] = {}
    for kind in COLLECTIONS:
        for r in ray[kind].values():
            rows_per_file[r.file_id] = rows_per_file.get(r.file_id, 0) + 1
    assert rows_per_file == {f: r.rows for f, r in ray["files"].items() if r.rows}  # no orphan row


def _index_cli(folder: Path, store: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
               *extra: str) -> tuple[int, dict[str, Any]]:  # fmt: skip
    monkeypatch.setenv("MEDIA_SEARCH_PREFIX", store.get("prefix", "media_search_"))
    capsys.readouterr()
    code = main(["index", str(folder), "--uri", store["uri"], "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ray_writes_the_rows_the_local_indexer_writes_and_an_unchanged_rerun_writes_nothing(
    backend: str, ray_runtime: Path, tmp_path: Path, request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("MEDIA_SEARCH_STREAM_SECONDS", "5")  # long.wav goes through the streamed path
    folder = tmp_path / "lib"
    _media(folder)
    local_store, ray_store = _stores(backend, tmp_path, request)
    code, local = _index_cli(folder, local_store, capsys, monkeypatch)
    code_ray, report = _index_cli(folder, ray_store, capsys, monkeypatch, "--ray")
    assert (code, code_ray) == (2, 2)  # broken.jpg failed in both
    for key in ("indexed", "unchanged", "removed", "by_kind", "keyframes", "windows"):
        assert report[key] == local[key], key
    assert report["indexed"] == 8 and report["keyframes"] >= 3 and report["windows"] >= 2
    assert [f["path"] for f in report["failed"]] == [str(folder / "broken.jpg")]
    assert report["failed"] == local["failed"]
    with Library(**local_store) as a, Library(**ray_store) as b:
        _assert_same(_contents(a), _contents(b))
        before = _contents(b)
        (folder / "broken.jpg").unlink()
        events: list[dict[str, Any]] = []
        again = b.index(folder, ray="local", progress=events.append)
        assert (again.indexed, again.unchanged, again.removed, again.failed) == (0, 8, 0, [])
        assert events == [{"event": "start", "total": 0, "unchanged": 8}]  # nothing was read, nothing sent to Ray
        after = _contents(b)
        assert {k: sorted(v) for k, v in after.items()} == {k: sorted(v) for k, v in before.items()}


@pytest.mark.server
@pytest.mark.slow  # about 2.5 min: each killed worker is restarted
def test_killed_workers_are_retried_or_their_files_reported_never_half_written(
    ray_runtime: Path, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    folder = tmp_path / "lib"
    _media(folder, kills=("kill-once", "kill-always", "kill-write"))
    (folder / "broken.jpg").unlink()
    local_store, ray_store = _stores("server", tmp_path, request)
    with Library(**local_store) as a, Library(**ray_store) as b:
        local = a.index(folder)
        assert local.indexed == 11 and not local.failed  # the hook lives in Ray's workers only
        report = b.index(folder, ray="local")
        always = str(folder / "kill-always.jpg")
        assert [f.path for f in report.failed] == [always]
        assert "worker died" in report.failed[0].error
        assert report.indexed == 10
        assert {p.name for p in ray_runtime.iterdir()} >= {"decode-kill-once.jpg", "write-kill-write.jpg"}  # they did die
        _assert_same(_contents(a), _contents(b), without={file_id(os.path.realpath(always))})
        assert not b.store.pending_files()
        again = b.index(folder, ray="local")
        assert (again.indexed, again.unchanged, [f.path for f in again.failed]) == (0, 10, [always])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_whose_weights_differ_from_the_stamp_stops_the_run_before_writing(
    backend: str, ray_runtime: Path, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    folder = tmp_path / "lib"
    _media(folder)
    _, ray_store = _stores(backend, tmp_path, request)
    monkeypatch.setenv("MEDIA_SEARCH_PREFIX", ray_store.get("prefix", "media_search_"))
    with Library(**ray_store) as lib:
        other = ModelSpec("resnet50", "random:4242", 2048)  # a collection filled by other weights
        lib.store.ensure("image", other)
        with pytest.raises(IndexMismatchError, match="random:4242"):
            lib.index(folder, ray="local")
        assert lib.store.count("image") == 0 and lib.store.count("video") == 0
        assert not [r for r in lib.store.iter_files() if r.kind == "image" or r.state == "pending"]


def test_ray_not_installed_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from PIL import Image

    folder = tmp_path / "lib"
    folder.mkdir()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(folder / "red.jpg")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    code = main(["index", str(folder), "--uri", str(tmp_path / "index.db"), "--ray"])
    err = capsys.readouterr().err
    assert code == 1
    assert "pip install 'media_search[ray]'" in err
    with Library(uri=str(tmp_path / "index.db")) as lib:
        assert lib.store.count("image") == 0
