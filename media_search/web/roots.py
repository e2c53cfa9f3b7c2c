"""Which folders the page may serve: the library's, nothing broader.

Default: the distinct folders that hold indexed files (read from the manifest),
reduced to the outermost ones. A folder too broad to expose whole (``/``, a
top-level folder such as ``/home``, the user's home) is never a root: the
indexed files in it are allowed one by one instead, so indexing ``~/photo.jpg``
does not publish ``~/.ssh``. Given ``--library`` folders replace all that and
are never widened. The Milvus Lite ``.db`` is always blocked, even inside a root.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import MediaSearchError

if TYPE_CHECKING:
    from ..library import Library

__all__ = ["LibraryRoots", "outermost", "too_broad"]

log = logging.getLogger(__name__)


def outermost(folders: Iterable[str]) -> list[str]:
    """Absolute, resolved folders with those inside another one dropped (sorted)."""
    out: list[str] = []
    for f in sorted({os.path.realpath(os.path.abspath(x)) for x in folders}):
        if not any(f == o or f.startswith(o.rstrip(os.sep) + os.sep) for o in out):
            out.append(f)
    return out


def too_broad(folder: str) -> bool:
    """True for ``/``, top-level folders and the user's home (and its parent)."""
    real = os.path.realpath(os.path.abspath(folder))
    home = os.path.realpath(os.path.expanduser("~"))
    return real.count(os.sep) <= 1 or real in (home, os.path.dirname(home))


def _allowances(files: Iterable[str]) -> list[str]:
    """Each file's folder, or the file itself where its folder is too broad."""
    out = []
    for f in files:
        folder = os.path.dirname(f)
        out.append(os.path.realpath(f) if too_broad(folder) else folder)
    return out


class LibraryRoots:
    """The folders handed to Gradio's ``allowed_paths``.

    ``paths`` is the very list object Gradio reads on each file request, so
    ``admit`` (which adds the folder of a search result indexed after start,
    when no explicit folders were given) takes effect at once.
    """

    def __init__(self, lib: Library, explicit: Iterable[str] | None = None) -> None:
        self.explicit = [str(x) for x in explicit or []]
        self._lock = threading.Lock()
        if self.explicit:
            self.paths: list[str] = outermost(self.explicit)
            for p in self.paths:
                if too_broad(p):
                    log.warning("serving %s: every file in it is reachable through the page", p)
        else:
            self.paths = outermost(_allowances(self._from_manifest(lib)))
        self.blocked: list[str] = []
        if lib.settings.is_lite:
            self.blocked.append(os.path.realpath(os.path.abspath(lib.settings.uri)))

    @staticmethod
    def _from_manifest(lib: Library) -> list[str]:
        try:
            return [rec.path for rec in lib.store.iter_files()]
        except MediaSearchError as e:
            log.warning("cannot read the indexed folders (%s): the page serves no library file yet", e)
            return []

    def covers(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in self.paths)

    def admit(self, paths: Iterable[str]) -> None:
        """Serve the folders of these indexed files too (default mode only)."""
        if self.explicit:
            return
        with self._lock:
            new = _allowances(p for p in paths if not self.covers(p))
            if new:
                merged = outermost([*self.paths, *new])
                self.paths[:] = merged  # in place: Gradio holds this list
                log.info("now serving %s", ", ".join(merged))
