"""Decode and embed one file: the shared step of indexing and querying.

Each function returns what the store needs for that file: vectors with their
timestamps (keyframes, audio windows) and the file's duration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DecodeError

if TYPE_CHECKING:
    from .library import Library

__all__ = ["Embedded", "embed_image", "embed_video", "embed_audio", "embed_soundtrack"]


@dataclass
class Embedded:
    """Vectors of one file: ``(n, dim)`` unit vectors and their timestamps (s)."""

    vectors: np.ndarray
    timestamps: np.ndarray
    duration: float | None = None
    notes: list[str] = field(default_factory=list)
    source: str | None = None  # audio rows: "audio" or "video"

    def __len__(self) -> int:
        return len(self.vectors)


def embed_image(lib: Library, path: str | Path) -> Embedded:
    from .extractors.image import load_prepared

    vec = lib.model("image").embed([load_prepared(path)])
    return Embedded(vec, np.zeros(1))


def embed_video(lib: Library, path: str | Path) -> Embedded:
    """Keyframes of a video, embedded in batches as they are decoded (memory stays flat)."""
    from .decode.video import iter_keyframes, probe_video
    from .extractors.image import prepare

    info = probe_video(path)
    model = lib.model("video")
    notes: list[str] = []
    batch: list[np.ndarray] = []
    stamps: list[float] = []
    parts: list[np.ndarray] = []
    size = lib.settings.batch_size
    for frame in iter_keyframes(
        path,
        interval=lib.settings.video_interval,
        max_frames=lib.settings.video_max_frames,
        timeout=lib.settings.decode_timeout,
        notes=notes,
    ):
        batch.append(prepare(frame.rgb))
        stamps.append(frame.timestamp)
        if len(batch) >= size:
            parts.append(model.embed(batch))
            batch = []
    if batch:
        parts.append(model.embed(batch))
    if not stamps:
        raise DecodeError(f"{path} has no usable frame (every frame is black, blank or undecodable).", path=str(path))
    return Embedded(np.concatenate(parts), np.asarray(stamps, dtype=np.float64), info.duration, notes)


def embed_audio(lib: Library, path: str | Path, *, query: bool = False) -> Embedded:
    """Audio windows of a sound file."""
    from .decode.audio import decode_audio

    audio = decode_audio(path, timeout=lib.settings.decode_timeout)
    return _windows(lib, audio, "audio", query=query)


def embed_soundtrack(lib: Library, path: str | Path, *, query: bool = False) -> Embedded | None:
    """Audio windows of a video's soundtrack, or None when it has none."""
    from .decode.audio import decode_audio

    try:
        audio = decode_audio(path, timeout=lib.settings.decode_timeout, from_video=True)
    except DecodeError:
        return None
    emb = _windows(lib, audio, "video", query=query)
    return emb if len(emb) else None


def _windows(lib: Library, audio: object, source: str, *, query: bool) -> Embedded:
    model = lib.model("audio")
    windows = model.embed_windows(audio, query=query) if query else model.embed_windows(audio)
    notes = ["silent: no audible window"] if windows.silent else []
    return Embedded(
        np.asarray(windows.vectors, dtype=np.float32),
        np.asarray(windows.timestamps, dtype=np.float64),
        float(audio.duration),  # type: ignore[attr-defined]
        notes,
        source,
    )
