"""Walk the paths given to the indexer: which files to look at.

Folders are walked recursively; hidden folders and files, and Milvus Lite
databases (folders holding a ``LOCK`` and ``collections``), are skipped.
Symlinks are not followed unless asked, and never in a loop. A path given
explicitly is always tried; inside folders, a file is a candidate when its
suffix is a media suffix or its first bytes look like media.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..detect import sniff

from ..decode.raw import RAW_SUFFIXES

__all__ = ["Entry", "walk", "MEDIA_SUFFIXES"]

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = frozenset(
    ".jpg .jpeg .jpe .png .gif .webp .bmp .tif .tiff "
    ".mp4 .m4v .mov .mkv .webm .avi .wmv .mpg .mpeg .ts .3gp .ogv "
    ".wav .flac .ogg .oga .opus .mp3 .m4a .aac .aif .aiff .wma".split()
) | frozenset(".heic .heif .hif .avif".split()) | RAW_SUFFIXES


@dataclass(frozen=True)
class Entry:
    """A candidate file: the path as given/walked, its resolved path and its stat (None if it failed)."""

    path: str
    real: str
    size: int
    mtime: float
    error: str | None = None


def _entry(path: str) -> Entry:
    real = os.path.realpath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        return Entry(path, real, 0, 0.0, f"cannot be read: {e.strerror or e}")
    return Entry(path, real, st.st_size, st.st_mtime)


def _is_lite_db(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "LOCK")) and os.path.isdir(os.path.join(folder, "collections"))


def _looks_like_media(path: str) -> bool:
    if Path(path).suffix.lower() in MEDIA_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(256)) is not None
    except OSError:
        return False


def walk(
    roots: list[str], *, follow_symlinks: bool = False, skip: set[str] | None = None, notes: list[str] | None = None
) -> Iterator[Entry]:
    """Yield each candidate file once (by resolved path) under ``roots``.

    Problems are entries with an ``error`` (a folder that cannot be listed, a
    broken link when following links); remarks (links skipped) go to ``notes``.
    """
    seen: set[str] = set()
    skip_real = {os.path.realpath(s) for s in (skip or set())}
    links: list[str] = []
    for root in roots:
        root = os.fspath(root)
        if os.path.isdir(root) and not _is_lite_db(root):
            yield from _walk_dir(root, follow_symlinks, seen, skip_real, links)
        else:
            e = _entry(root)
            if e.real not in seen:
                seen.add(e.real)
                yield e
    if links and notes is not None:
        notes.append(
            f"skipped {len(links)} symbolic link(s) (e.g. {links[0]}); pass --follow-symlinks to index their targets"
        )


def _walk_dir(root: str, follow: bool, seen: set[str], skip: set[str], links: list[str]) -> Iterator[Entry]:
    visited: set[tuple[int, int]] = set()
    unlisted: list[OSError] = []

    for folder, dirs, files in os.walk(root, followlinks=follow, onerror=unlisted.append):
        while unlisted:
            err = unlisted.pop()
            yield Entry(err.filename, os.path.realpath(err.filename), 0, 0.0, f"is a folder that cannot be listed: {err.strerror or err}")
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
        except OSError:
            dirs[:] = []
            continue
        if key in visited:  # a symlink loop
            dirs[:] = []
            continue
        visited.add(key)
        for d in dirs:  # a folder named like a media file is most likely a mistake: say so
            if not d.startswith(".") and Path(d).suffix.lower() in MEDIA_SUFFIXES:
                p = os.path.join(folder, d)
                yield Entry(p, os.path.realpath(p), 0, 0.0, "is a directory, not a media file")
        if not follow:
            links.extend(os.path.join(folder, d) for d in dirs if not d.startswith(".") and os.path.islink(os.path.join(folder, d)))
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".")
            and not _is_lite_db(os.path.join(folder, d))
            and os.path.realpath(os.path.join(folder, d)) not in skip
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            if not follow and os.path.islink(path):
                links.append(path)
                continue
            try:
                mode = os.stat(path).st_mode
            except OSError as e:
                why = "is a broken symbolic link" if os.path.islink(path) else "cannot be read"
                yield Entry(path, os.path.realpath(path), 0, 0.0, f"{why}: {e.strerror or e}")
                continue
            if not stat_module.S_ISREG(mode):
                continue
            real = os.path.realpath(path)
            if real in seen or not _looks_like_media(path):
                continue
            seen.add(real)
            yield _entry(path)
    while unlisted:
        err = unlisted.pop()
        yield Entry(err.filename, os.path.realpath(err.filename), 0, 0.0, f"is a folder that cannot be listed: {err.strerror or err}")
