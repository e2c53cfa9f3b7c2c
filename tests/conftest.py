"""Shared fixtures: random weights, a private data folder, and the two Milvus backends.

``store_uri`` is parametrised over Milvus Lite (a fresh ``.db`` per test) and the
real Milvus 2.3.5 standalone server from the ``milvus`` package (started once per
session on free ports, each test on its own collection prefix).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The quick start as a new user runs first, while the disk holds least: its fresh venv takes
    about 8 GB (PyPI's torch) until its module ends. The others keep their order."""
    items.sort(key=lambda item: item.path.name != "test_quickstart.py")


@pytest.fixture(scope="session")
def _engines_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export cache for the session (an export costs seconds; each test has its own home)."""
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, _engines_cache: Path) -> None:
    home = tmp_path_factory.mktemp("home")
    (home / "engines").symlink_to(_engines_cache, target_is_directory=True)
    monkeypatch.setenv("MEDIA_SEARCH_HOME", str(home))
    monkeypatch.setenv("MEDIA_SEARCH_IMAGE_WEIGHTS", "random")
    monkeypatch.setenv("MEDIA_SEARCH_AUDIO_WEIGHTS", "random")
    monkeypatch.setenv("MEDIA_SEARCH_DEVICE", "cpu")
    monkeypatch.delenv("MEDIA_SEARCH_MILVUS_URI", raising=False)
    monkeypatch.delenv("MEDIA_SEARCH_MILVUS_TOKEN", raising=False)
    monkeypatch.delenv("MEDIA_SEARCH_PREFIX", raising=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def milvus_server_uri() -> str:
    """A real Milvus 2.3.5 standalone server, started once for the session."""
    try:
        from milvus import default_server
    except ImportError:
        pytest.skip("the `milvus` package (embedded Milvus server) is not installed")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 2380)) == 0:
            pytest.fail(
                "port 2380 is taken: the embedded Milvus 2.3.5 server always runs its etcd peer there; "
                "stop the other embedded Milvus server first"
            )
    base = tempfile.mkdtemp(prefix="milvus-server-")
    default_server.set_base_dir(base)
    default_server.config.set("proxy_port", _free_port())
    default_server.start()
    try:
        yield f"http://127.0.0.1:{default_server.listen_port}"
    finally:
        default_server.stop()
        shutil.rmtree(base, ignore_errors=True)  # its etcd, MinIO and logs: about 550 MB per session


@pytest.fixture(params=["lite", pytest.param("server", marks=pytest.mark.server)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A Milvus URI for one test: a fresh Lite file, or the session's server with a private prefix."""
    if request.param == "lite":
        uri = str(tmp_path / "index.db")
    else:
        uri = request.getfixturevalue("milvus_server_uri")
        monkeypatch.setenv("MEDIA_SEARCH_PREFIX", f"t{uuid.uuid4().hex[:12]}_")
    monkeypatch.setenv("MEDIA_SEARCH_MILVUS_URI", uri)
    return uri


@pytest.fixture
def library(store_uri: str):
    from media_search import Library

    lib = Library()
    try:
        yield lib
    finally:
        lib.close()


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for running the real `media-search` command in a subprocess."""
    env = dict(os.environ)
    env.update({"MEDIA_SEARCH_IMAGE_WEIGHTS": "random", "MEDIA_SEARCH_AUDIO_WEIGHTS": "random", "MEDIA_SEARCH_DEVICE": "cpu"})
    return env


BACKENDS = ["lite", pytest.param("server", marks=pytest.mark.server)]


def backend_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(uri, prefix) of a fresh store on the backend named by ``request.param`` -- for module-scoped
    fixtures parametrised with ``BACKENDS`` that index a library once per backend."""
    if request.param == "lite":
        return str(tmp_path_factory.mktemp("lite") / "index.db"), "media_search_"
    return request.getfixturevalue("milvus_server_uri"), f"m{uuid.uuid4().hex[:10]}_"
