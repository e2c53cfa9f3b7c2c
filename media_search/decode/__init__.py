"""Decoders: a path in, pixels or samples out. One module per kind; ``file`` runs the right one.

Every decoder (and ``detect``) refuses a 0-byte file with the same sentence: ``refuse_empty``.
"""

from __future__ import annotations

import os

from ..errors import DecodeError

__all__ = ["refuse_empty"]


def refuse_empty(path: str | os.PathLike[str], size: int, what: str = "image, video or audio") -> None:
    """Raise ``DecodeError`` when ``size`` (the file's byte count) is 0."""
    if size == 0:
        p = os.fspath(path)
        raise DecodeError(f"{p} is an empty file (0 bytes): give a complete {what} file.", path=p)
