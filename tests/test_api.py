"""The public API: ``__all__`` pinned, the error tree, and a side-effect-free import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import media_search
from media_search import errors

PUBLIC = [
    "find_similar",
    "search",
    "index",
    "Library",
    "Settings",
    "Match",
    "SearchResult",
    "IndexReport",
    "Kind",
    "MediaSearchError",
    "UnsupportedMediaError",
    "DecodeError",
    "WeightsUnavailableError",
    "IndexMismatchError",
    "ConfigError",
    "NoTextTowerError",
    "StoreError",
    "StoreLockedError",
    "__version__",
]

HEAVY = ["torch", "torchvision", "cv2", "librosa", "panns_inference", "pymilvus", "milvus_lite", "gradio", "numpy", "PIL"]


def test_all_is_pinned() -> None:
    # Adding or removing a public name is an API change: update this list on purpose.
    assert sorted(media_search.__all__) == sorted(PUBLIC)
    assert len(media_search.__all__) == len(set(media_search.__all__))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from media_search import {name}", namespace)  # noqa: S102 - the import statement is the test
    assert namespace[name] is getattr(media_search, name)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        media_search.nope  # noqa: B018


ERRORS = [
    errors.UnsupportedMediaError,
    errors.DecodeError,
    errors.WeightsUnavailableError,
    errors.IndexMismatchError,
    errors.ConfigError,
    errors.NoTextTowerError,
    errors.StoreError,
    errors.StoreLockedError,
]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_error_tree(cls: type[Exception]) -> None:
    assert issubclass(cls, media_search.MediaSearchError)
    assert issubclass(cls, Exception)
    assert getattr(media_search, cls.__name__) is cls
    err = cls("Something failed: do this.", path=Path("/x/y.jpg"))
    assert str(err) == "Something failed: do this."
    assert err.path == "/x/y.jpg"
    assert cls("no path").path is None


def test_store_locked_is_a_store_error() -> None:
    assert issubclass(errors.StoreLockedError, errors.StoreError)
    assert set(errors.__all__) == {"MediaSearchError", *(c.__name__ for c in ERRORS)}
    assert issubclass(errors.NoTextTowerError, errors.ConfigError)
    # Only StoreLockedError and NoTextTowerError sit below another leaf.
    for cls in ERRORS:
        if cls not in (errors.StoreLockedError, errors.NoTextTowerError):
            assert cls.__bases__ == (errors.MediaSearchError,)


_PROBE = textwrap.dedent(
    """
    import json, os, socket, sys

    events = []

    def hook(event, args):
        if event == "open" and args[1] is not None and any(c in str(args[1]) for c in "wax+"):
            events.append(f"open for writing: {args[0]}")
        elif event == "open" and isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            events.append(f"open for writing: {args[0]}")
        elif event in ("os.mkdir", "os.rename", "os.remove", "shutil.rmtree", "socket.connect",
                       "socket.bind", "socket.getaddrinfo", "subprocess.Popen", "os.system"):
            events.append(f"{event}: {args[:2]}")

    def refuse(*a, **k):
        raise AssertionError("importing media_search opened a network connection")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    sys.addaudithook(hook)
    before = set(sys.modules)

    import media_search
    loaded_by_import = sorted(set(sys.modules) - before)
    for name in media_search.__all__:        # touch every public name, Library included
        getattr(media_search, name)
    media_search.Settings.from_env()
    print(json.dumps({"events": events, "loaded_by_import": loaded_by_import,
                      "modules": sorted(sys.modules)}))
    """
)


def test_import_is_light_and_touches_no_disk_or_network(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"  # does not exist: importing must not create it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIA_SEARCH_", "XDG_"))}
    env.update(HOME=str(home), MEDIA_SEARCH_HOME=str(data), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run(
        [sys.executable, "-B", "-c", _PROBE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout)
    heavy = [m for m in probe["modules"] if m.split(".")[0] in HEAVY]
    assert heavy == [], f"importing media_search loaded {heavy}"
    assert probe["events"] == []
    assert "media_search" in probe["loaded_by_import"]
    assert list(home.iterdir()) == []
    assert not data.exists()
