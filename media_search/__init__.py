"""media_search: reverse media similarity search over Milvus.

    >>> from media_search import find_similar
    >>> find_similar("holiday.jpg", k=5)          # doctest: +SKIP
    [Match(path='/photos/beach.jpg', kind='image', score=0.93, ...), ...]

Importing this package loads no model, no torch, no Milvus client, and touches
neither the network nor the disk; all of that happens on first use.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import (
    ConfigError,
    DecodeError,
    IndexMismatchError,
    MediaSearchError,
    NoTextTowerError,
    StoreError,
    StoreLockedError,
    UnsupportedMediaError,
    WeightsUnavailableError,
)
from .types import IndexReport, Kind, Match, SearchResult

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .library import Library

__version__ = "0.1.0"

__all__ = [
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

_default: dict[Settings, Library] = {}


def _library(**overrides: Any) -> Library:
    """The process-wide Library for the current settings (Milvus Lite allows one per file)."""
    from .library import Library

    settings = Settings.from_env(**overrides)
    if settings not in _default:
        _default[settings] = Library(settings)
    return _default[settings]


@contextmanager
def _once(**overrides: Any) -> Iterator[Library]:
    """The process-wide Library, its Milvus Lite file released on return (models stay loaded):
    Lite lets one process open a .db at a time, and this call must not keep others out."""
    lib = _library(**overrides)
    try:
        yield lib
    finally:
        if lib.settings.is_lite:
            lib.close()


def find_similar(
    path: str | Path | None = None, k: int = 10, kinds: Sequence[str] | None = None, *, text: str | None = None,
    **settings: Any,
) -> list[Match]:  # fmt: skip
    """The ``k`` indexed files most similar to ``path``, best first; ``path`` itself left out.

    ``kinds`` limits the result kinds (default: image → image and video,
    video → video, audio → audio and video soundtracks). ``text="a cat on
    a sofa"`` instead of a path finds pictures and video moments by words
    (needs an image model with a text tower, e.g. ``image_model="siglip-base-patch16-224"``).
    ``settings`` override the environment (e.g. ``uri="lib.db"``).
    """
    with _once(**settings) as lib:
        return lib.find_similar(path, k=k, kinds=kinds, text=text)


def search(
    path: str | Path | None = None, k: int = 10, kinds: Sequence[str] | None = None, *, text: str | None = None,
    **settings: Any,
) -> SearchResult:  # fmt: skip
    """Like ``find_similar``, with the library's exact copies of ``path`` listed apart."""
    with _once(**settings) as lib:
        return lib.search(path, k=k, kinds=kinds, text=text)


def index(paths: str | Path | Sequence[str | Path], **settings: Any) -> IndexReport:
    """Index a file or folder, or several (see ``Library.index``)."""
    with _once(**settings) as lib:
        return lib.index(paths)


def __getattr__(name: str) -> Any:
    if name == "Library":
        from .library import Library

        return Library
    raise AttributeError(f"module 'media_search' has no attribute {name!r}")
