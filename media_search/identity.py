"""Identity: what a file *is* (its content hash) and where its rows live (ids from its path).

* ``content_hash`` is the hex SHA-256 of the file's bytes. It defines "the input
  itself": a query never returns rows with its own content hash.
* ``file_id`` is derived from the resolved path, so re-indexing a path replaces
  its rows and a removed file's rows can be deleted.
* ``row_id`` adds a timestamp (keyframes, audio windows) to the ``file_id``.

All ids are lowercase hex: they are the only values that ever enter a filter.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["content_hash", "resolve_path", "file_id", "row_id"]

_CHUNK = 1 << 20


def content_hash(path: str | Path) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_path(path: str | Path) -> str:
    """The absolute, symlink-free path under which a file is indexed."""
    return os.path.realpath(os.path.expanduser(os.fspath(path)))  # "~/query.jpg", like the CLI


def file_id(resolved_path: str) -> str:
    """32 hex digits naming a file by its resolved path (surrogate-safe for odd names)."""
    raw = resolved_path.encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:32]


def row_id(fid: str, tag: str, timestamp: float) -> str:
    """32 hex digits naming one keyframe (tag ``v``) or audio window (``a``) of a file."""
    raw = f"{fid}:{tag}:{timestamp:.3f}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]
