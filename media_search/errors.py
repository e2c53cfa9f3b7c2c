"""The errors media_search raises.

Every error the library raises on purpose derives from ``MediaSearchError``; the
CLI and the web page turn each into one sentence for the user.

    MediaSearchError
     ├── UnsupportedMediaError    not an image, video or audio file we can read
     ├── DecodeError              looks like media but cannot be decoded
     │                            (empty, truncated, corrupt, too large, timed out)
     ├── WeightsUnavailableError  model weights cannot be downloaded or loaded
     ├── IndexMismatchError       the collection was filled by another model
     ├── ConfigError              a setting has a value we cannot use
     │    └── NoTextTowerError    a text query with an image model that embeds no text
     └── StoreError               the vector store failed or cannot be reached
          └── StoreLockedError    a Milvus Lite file is held by another process

Errors keep their cause (``raise ... from e``) and, where a file is involved,
its ``path``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "MediaSearchError",
    "UnsupportedMediaError",
    "DecodeError",
    "WeightsUnavailableError",
    "IndexMismatchError",
    "ConfigError",
    "NoTextTowerError",
    "StoreError",
    "StoreLockedError",
]


class MediaSearchError(Exception):
    """Root of every error media_search raises on purpose."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)

    def __str__(self) -> str:  # one sentence, ready for a user
        return self.message


class UnsupportedMediaError(MediaSearchError):
    """The file is not an image, video or audio file that media_search reads."""


class DecodeError(MediaSearchError):
    """The file looks like media but cannot be decoded."""


class WeightsUnavailableError(MediaSearchError):
    """Model weights cannot be downloaded, found or loaded."""


class IndexMismatchError(MediaSearchError):
    """A collection was filled by another model than the one in use."""


class ConfigError(MediaSearchError):
    """A setting has a value that cannot be used."""


class NoTextTowerError(ConfigError):
    """A text query, but the image model in use embeds no text."""


class StoreError(MediaSearchError):
    """The vector store failed or cannot be reached."""


class StoreLockedError(StoreError):
    """A Milvus Lite database is held by another process."""


def reason(e: BaseException) -> str:
    """A caught exception as a clause for one of our messages (no trailing full stop).

    For the package's own messages; not part of the public API.
    """
    msg = getattr(e, "message", None) or str(e) or type(e).__name__
    return str(msg).strip().rstrip(".")

