"""``Library``: one media library -- its settings, its store and its models.

Every entry point (``find_similar``, the CLI, the bulk indexer, the page) goes
through a ``Library``. It opens the store and loads each model lazily, once,
and checks that the store's collections were filled by the same models.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings
from .types import IndexReport, Kind, Match, SearchResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from .duplicates import DuplicateReport
    from .extractors.spec import ModelSpec
    from .store.milvus import MilvusStore

__all__ = ["Library"]

log = logging.getLogger(__name__)

#: Which model embeds each kind: keyframes share the image model.
MODEL_OF_KIND: dict[str, str] = {"image": "image", "video": "image", "audio": "audio"}


class Library:
    """A media library stored in Milvus.

    >>> lib = Library(uri="~/photos.db", image_weights="pretrained")  # doctest: +SKIP
    >>> lib.index(["~/Pictures"])                                      # doctest: +SKIP
    >>> lib.find_similar("query.jpg", k=5)                             # doctest: +SKIP
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings.replace(**overrides) if settings and overrides else settings or Settings.from_env(**overrides)
        self.settings.validate()
        self._store: MilvusStore | None = None
        self._models: dict[str, Any] = {}
        self._lock = threading.RLock()

    # -- components ---------------------------------------------------------------------------------
    @property
    def store(self) -> MilvusStore:
        with self._lock:
            if self._store is None:
                from .store.milvus import MilvusStore

                self._store = MilvusStore.from_settings(self.settings)
            return self._store

    def model(self, kind: str) -> Any:
        """The embedder for ``kind`` (``image`` and ``video`` share ResNet50)."""
        which = MODEL_OF_KIND[kind]
        with self._lock:
            if which not in self._models:
                if which == "image":
                    from .extractors.image import ImageEmbedder

                    self._models[which] = ImageEmbedder(self.settings.image_weights, self.settings.device, engine=self.settings.engine)
                else:
                    from .extractors.audio import AudioEmbedder

                    self._models[which] = AudioEmbedder(self.settings.audio_weights, self.settings.device, engine=self.settings.engine)
            return self._models[which]

    def spec(self, kind: str) -> ModelSpec:
        return self.model(kind).spec

    def ensure(self, kind: Kind) -> None:
        """Create or check ``kind``'s collection against the model in use."""
        self.store.ensure(kind, self.spec(kind))

    def weights_notice(self) -> str | None:
        """A warning to show when any model in use runs on random weights, else None."""
        names = {"image": "MEDIA_SEARCH_IMAGE_WEIGHTS", "audio": "MEDIA_SEARCH_AUDIO_WEIGHTS"}
        values = {"image": self.settings.image_weights, "audio": self.settings.audio_weights}
        random = [names[k] for k, v in values.items() if v == "random"]
        if not random:
            return None
        return (
            f"{' and '.join(random)}=random: embeddings come from untrained, seeded weights; "
            "results are for tests and demos only."
        )

    # -- verbs --------------------------------------------------------------------------------------
    def index(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        delete_missing: bool = True,
        follow_symlinks: bool = False,
        progress: Callable[..., None] | None = None,
        workers: int | None = None,
    ) -> IndexReport:
        """Index a file or folder, or several; see ``media_search.indexer``. ``workers``: decode
        processes (default one per CPU core beyond the first; 0 decodes in this process)."""
        from .indexer import index_paths

        return index_paths(
            self,
            [paths] if isinstance(paths, (str, os.PathLike)) else list(paths),
            delete_missing=delete_missing,
            follow_symlinks=follow_symlinks,
            progress=progress,
            workers=workers,
        )

    def search(self, path: str | Path, k: int = 10, kinds: Sequence[str] | None = None) -> SearchResult:
        from .query import search

        return search(self, path, k=k, kinds=kinds)

    def find_similar(self, path: str | Path, k: int = 10, kinds: Sequence[str] | None = None) -> list[Match]:
        return self.search(path, k=k, kinds=kinds).results

    def duplicates(
        self,
        kinds: Sequence[str] | None = None,
        *,
        include_similar: bool = False,
        progress: Callable[..., None] | None = None,
    ) -> DuplicateReport:
        """Groups of copies across the library (``media_search.duplicates``); nothing is changed."""
        from .duplicates import find_duplicates

        for kind in ("image", "video", "audio"):  # checks the models and loads released collections
            if self.store.has(kind):
                self.ensure(kind)  # type: ignore[arg-type]
        return find_duplicates(self.store, kinds=kinds, include_similar=include_similar, progress=progress)

    def stats(self) -> dict[str, Any]:
        """Files and rows per kind, and the model stamped in each collection."""
        from .store.milvus import COLLECTIONS

        store = self.store
        files: dict[str, int] = {k: 0 for k in COLLECTIONS}
        if store.has("files"):
            for rec in store.iter_files(state="done"):
                files[rec.kind] = files.get(rec.kind, 0) + 1
        out: dict[str, Any] = {"uri": self.settings.uri, "files": files, "rows": {}, "models": {}}
        for kind in COLLECTIONS:
            out["rows"][kind] = store.count(kind)
            spec = store.model_of(kind)  # type: ignore[arg-type]
            out["models"][kind] = spec.describe() if spec else None
        return out

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
