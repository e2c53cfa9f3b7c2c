"""``Library``: one media library -- its settings, its store and its models -- at the top.

Every entry point (``find_similar``, the CLI, the bulk indexer, the page) goes
through a ``Library``. It wires the stages together: it opens the store and
the embedders lazily, once, and hands them to ``indexing.run.index_paths`` and
``query.search.search``, which receive what they use and never the Library.
Nothing below imports this module.
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

    from .embed.embedders import Embedders
    from .embed.spec import ModelSpec
    from .duplicates import DuplicateReport
    from .store.milvus import MilvusStore

__all__ = ["Library"]

log = logging.getLogger(__name__)

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
        self._embedders: Embedders | None = None
        self._lock = threading.RLock()

    # -- components ---------------------------------------------------------------------------------
    @property
    def store(self) -> MilvusStore:
        with self._lock:
            if self._store is None:
                from .store.milvus import MilvusStore

                self._store = MilvusStore.from_settings(self.settings)
            return self._store

    @property
    def embedders(self) -> Embedders:
        with self._lock:
            if self._embedders is None:
                from .embed.embedders import Embedders

                self._embedders = Embedders(self.settings)
            return self._embedders

    def model(self, kind: str) -> Any:
        """The embedder for ``kind`` (``image`` and ``video`` share the image model)."""
        return self.embedders(kind)

    def spec(self, kind: str) -> ModelSpec:
        return self.embedders.spec(kind)

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
        ray: str | None = None,
        ray_actors: int | None = None,
    ) -> IndexReport:
        """Index a file or folder, or several; see ``media_search.indexing.run``. ``workers``: decode
        processes (default one per CPU core, at most 8; 0 decodes in this process).
        ``ray``: run the stages on Ray Data instead (``"local"``: a runtime on this machine with
        ``workers`` CPUs; or a cluster address), with ``ray_actors`` embed actors; see
        ``media_search.indexing.distributed``."""
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if ray is not None:
            from .indexing.distributed import index_paths_ray

            return index_paths_ray(
                paths, store=self.store, settings=self.settings, address=ray, delete_missing=delete_missing,
                follow_symlinks=follow_symlinks, progress=progress, workers=workers, actors=ray_actors,
            )  # fmt: skip
        from .indexing.run import index_paths

        return index_paths(
            paths,
            store=self.store,
            embedders=self.embedders,
            settings=self.settings,
            delete_missing=delete_missing,
            follow_symlinks=follow_symlinks,
            progress=progress,
            workers=workers,
        )

    def search(
        self, path: str | Path | None = None, k: int = 10, kinds: Sequence[str] | None = None, *,
        text: str | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> SearchResult:  # fmt: skip
        """Search with a file (``path``) or with words (``text``; needs an image model with a text tower).
        ``progress`` hears how decoding a long query goes (``media_search.query.search.search``)."""
        if (path is None) == (text is None):
            from .errors import ConfigError

            raise ConfigError("Search with either a file or a text, not both and not neither.")
        if text is not None:
            from .query.text import search_text

            return search_text(text, store=self.store, embedders=self.embedders, settings=self.settings, k=k, kinds=kinds)
        from .query.search import search

        return search(path, store=self.store, embedders=self.embedders, settings=self.settings, k=k, kinds=kinds,
                      progress=progress)  # fmt: skip

    def find_similar(
        self, path: str | Path | None = None, k: int = 10, kinds: Sequence[str] | None = None, *, text: str | None = None
    ) -> list[Match]:
        return self.search(path, k=k, kinds=kinds, text=text).results

    def duplicates(
        self,
        kinds: Sequence[str] | None = None,
        *,
        include_similar: bool = False,
        progress: Callable[..., None] | None = None,
    ) -> DuplicateReport:
        """Groups of copies across the library (``media_search.duplicates``); nothing is changed."""
        from .duplicates import find_duplicates

        for kind in ("image", "video", "audio"):  # checks the copy signals and loads released collections;
            if self.store.has(kind):  # grouping reads what is stored, so it needs no model (nor its weights)
                self.store.ensure(kind, None)  # type: ignore[arg-type]
        return find_duplicates(self.store, kinds=kinds, include_similar=include_similar, progress=progress)

    def stats(self) -> dict[str, Any]:
        """Files and rows per kind, and the model stamped in each collection, for the image model in use;
        ``image_models`` lists every image model's collections in this store (the one in use included)."""
        from .embed.registry import collection_prefix, image_models

        out: dict[str, Any] = {"uri": self.settings.uri, "image_model": self.settings.image_model,
                               "prefix": self.settings.store_prefix}  # fmt: skip
        out.update(_collection_stats(self.store))
        out["image_models"] = {}
        for name in image_models():
            prefix = collection_prefix(self.settings.prefix, name)
            store = self.store if prefix == self.settings.store_prefix else self.store.with_prefix(prefix)
            if name == self.settings.image_model or any(store.has(k) for k in ("files", "image", "video")):
                out["image_models"][name] = {"prefix": prefix, **_collection_stats(store)}
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


def _collection_stats(store: MilvusStore) -> dict[str, Any]:
    """Files and rows per kind and the stamped models of one set of collections."""
    from .store.schema import COLLECTIONS

    files: dict[str, int] = {k: 0 for k in COLLECTIONS}
    if store.has("files"):
        for rec in store.iter_files(state="done"):
            files[rec.kind] = files.get(rec.kind, 0) + 1
    out: dict[str, Any] = {"files": files, "rows": {}, "models": {}}
    for kind in COLLECTIONS:
        out["rows"][kind] = store.count(kind)
        spec = store.model_of(kind)  # type: ignore[arg-type]
        out["models"][kind] = spec.describe() if spec else None
    return out
