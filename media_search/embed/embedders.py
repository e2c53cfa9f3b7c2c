"""The embed stage: decoded arrays -> unit vectors, with the models a library uses.

``Embedders`` builds each model once, lazily, from ``Settings`` (keyframes
share the image model) and says which model identity fills each kind's
collection. ``embed_frames`` and ``embed_sound`` take one embedder and the
decoded arrays (``decode.file``): the indexer batches frames across files, a
query embeds its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..config import Settings
    from ..decode.audio import Audio
    from .audio import AudioEmbedder
    from .image import ImageEmbedder
    from .spec import ModelSpec

__all__ = ["MODEL_OF_KIND", "Embedders", "Embedded", "embed_frames", "embed_sound"]

#: Which model embeds each kind: keyframes share the image model.
MODEL_OF_KIND: dict[str, str] = {"image": "image", "video": "image", "audio": "audio"}


class Embedders:
    """One embedder per model, built from ``settings`` on first use and kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: dict[str, Any] = {}
        self._lock = threading.RLock()

    def __call__(self, kind: str) -> Any:
        """The embedder for ``kind`` (``image`` and ``video`` share the image model, ``Settings.image_model``)."""
        which = MODEL_OF_KIND[kind]
        with self._lock:
            if which not in self._models:
                s = self.settings
                if which == "image":
                    from .registry import image_model

                    model = image_model(s.image_model)
                    if model.loader == "siglip":
                        from .siglip import SiglipEmbedder

                        self._models[which] = SiglipEmbedder(model, s.image_weights, s.device, engine=s.engine)
                    else:
                        from .image import ImageEmbedder

                        self._models[which] = ImageEmbedder(s.image_weights, s.device, engine=s.engine)
                else:
                    from .audio import AudioEmbedder

                    self._models[which] = AudioEmbedder(s.audio_weights, s.device, engine=s.engine)
            return self._models[which]

    @property
    def image(self) -> ImageEmbedder:
        return self("image")  # type: ignore[no-any-return]

    @property
    def text(self) -> Any:
        """The image model's text tower (its embedder, with ``embed_text``); ``NoTextTowerError`` when it has none."""
        from .registry import image_model, require_text

        require_text(image_model(self.settings.image_model))
        return self("image")

    @property
    def audio(self) -> AudioEmbedder:
        return self("audio")  # type: ignore[no-any-return]

    def spec(self, kind: str) -> ModelSpec:
        """The model identity that fills ``kind``'s collection."""
        return self(kind).spec  # type: ignore[no-any-return]


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


def embed_frames(embedder: ImageEmbedder, frames: np.ndarray, batch_size: int) -> np.ndarray:
    """``(n, 224, 224, 3)`` uint8 prepared pictures -> ``(n, 2048)`` unit vectors, in model batches."""
    size = max(1, batch_size)
    if len(frames) == 0:
        return np.zeros((0, embedder.spec.dim), dtype=np.float32)
    parts = [embedder.embed(frames[i : i + size]) for i in range(0, len(frames), size)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def embed_sound(embedder: AudioEmbedder, audio: Audio, source: str, *, query_hop: float | None = None) -> Embedded:
    """Window vectors of decoded audio: the library's windows, or a query's every ``query_hop`` seconds."""
    windows = embedder.embed_windows(audio) if query_hop is None else embedder.query_windows(audio, hop=query_hop)
    notes = ["silent: no audible window"] if windows.silent else []
    return Embedded(
        np.asarray(windows.vectors, dtype=np.float32),
        np.asarray(windows.timestamps, dtype=np.float64),
        float(audio.duration),
        notes,
        source,
    )
