"""Decode and embed one file: the shared step of indexing and querying.

Two stages, so that bulk indexing can run them in different processes:

* **decode** (``decode_file``, ``decode_image``, ``decode_video``,
  ``decode_sound``): file -> ``Decoded``, small picklable arrays -- prepared
  224x224 uint8 pictures (an image, or a video's keyframes) and 32 kHz mono
  audio. No model is needed; this runs in the indexer's worker processes.
* **embed** (``embed_frames``, ``embed_sound``): arrays -> unit vectors, in the
  process that holds the models, batched (the indexer batches frames across
  files).

``embed_image``, ``embed_video``, ``embed_audio`` and ``embed_soundtrack`` chain
the two for one file; queries use them, the indexer uses the stages directly.
Both paths run the same functions, so a file and the same file given as a
query get the same vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DecodeError

if TYPE_CHECKING:
    from .config import Settings
    from .decode.audio import Audio
    from .library import Library

__all__ = [
    "Embedded",
    "Decoded",
    "decode_file",
    "decode_image",
    "decode_video",
    "decode_sound",
    "add_copy_signals",
    "embed_frames",
    "embed_sound",
    "embed_image",
    "embed_video",
    "embed_audio",
    "embed_soundtrack",
]


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


@dataclass
class Decoded:
    """One file after the decode stage (picklable; what crosses from a worker process).

    ``frames``: ``(n, 224, 224, 3)`` uint8 prepared pictures -- one for an image,
    the keyframes of a video (at ``timestamps``). ``audio``: the sound of an audio
    file or the soundtrack of a video (None when the video has none).
    Copy-detection signals (``decode_file`` fills them, see ``copydetect``):
    ``phashes``, one 16-hex-digit pHash per frame; ``prints``, the audio's
    packed landmark fingerprint.
    """

    kind: str
    frames: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    duration: float | None = None
    audio: Audio | None = None
    notes: list[str] = field(default_factory=list)
    phashes: list[str] | None = None
    prints: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return 0 if self.frames is None else len(self.frames)


# -- decode stage ----------------------------------------------------------------------------------
def decode_image(path: str | Path) -> Decoded:
    """An image file as one prepared 224x224 picture."""
    from .extractors.image import load_prepared

    return Decoded("image", frames=load_prepared(path)[None], timestamps=np.zeros(1))


def decode_video(path: str | Path, settings: Settings, *, soundtrack: bool = True) -> Decoded:
    """A video's prepared keyframes with their timestamps, and its soundtrack if asked (None if absent)."""
    from .decode.video import iter_keyframes, probe_video
    from .extractors.image import prepare

    info = probe_video(path)
    notes: list[str] = []
    frames: list[np.ndarray] = []
    stamps: list[float] = []
    for frame in iter_keyframes(
        path,
        interval=settings.video_interval,
        max_frames=settings.video_max_frames,
        timeout=settings.decode_timeout,
        notes=notes,
    ):
        frames.append(prepare(frame.rgb))
        stamps.append(frame.timestamp)
    if not stamps:
        raise DecodeError(f"{path} has no usable frame (every frame is black, blank or undecodable).", path=str(path))
    audio = None
    if soundtrack:
        try:
            audio = decode_sound(path, settings, from_video=True)
        except DecodeError:  # no soundtrack, or one that cannot be decoded: the frames still count
            audio = None
    return Decoded("video", frames=np.stack(frames), timestamps=np.asarray(stamps, dtype=np.float64),
                   duration=info.duration, audio=audio, notes=notes)  # fmt: skip


def decode_sound(path: str | Path, settings: Settings, *, from_video: bool = False) -> Audio:
    """32 kHz mono samples of an audio file or of a video's soundtrack."""
    from .decode.audio import decode_audio

    return decode_audio(path, timeout=settings.decode_timeout, from_video=from_video)


def decode_file(path: str | Path, kind: str, settings: Settings) -> Decoded:
    """The decode stage for a file of a known kind (``detect.detect_kind``), with its copy-detection
    signals (pHashes of the prepared frames, the audio's landmark fingerprint)."""
    if kind == "image":
        d = decode_image(path)
    elif kind == "video":
        d = decode_video(path, settings)
    else:
        d = Decoded("audio", audio=decode_sound(path, settings))
    return add_copy_signals(d)


def add_copy_signals(d: Decoded) -> Decoded:
    """Fill ``phashes`` and ``prints`` (cheap next to decoding and embedding)."""
    from .copydetect.audio import landmarks, pack
    from .copydetect.image import phash_hex

    if d.frames is not None:
        d.phashes = [phash_hex(f) for f in d.frames]
    if d.audio is not None:
        d.prints = pack(landmarks(d.audio.samples, d.audio.sr))
    return d


# -- embed stage -----------------------------------------------------------------------------------
def embed_frames(lib: Library, frames: np.ndarray) -> np.ndarray:
    """``(n, 224, 224, 3)`` uint8 prepared pictures -> ``(n, 2048)`` unit vectors, in model batches."""
    model = lib.model("image")
    size = max(1, lib.settings.batch_size)
    if len(frames) == 0:
        return np.zeros((0, model.spec.dim), dtype=np.float32)
    parts = [model.embed(frames[i : i + size]) for i in range(0, len(frames), size)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def embed_sound(lib: Library, audio: Audio, source: str, *, query: bool = False) -> Embedded:
    """Window vectors of decoded audio (the denser query hop when ``query``)."""
    model = lib.model("audio")
    windows = model.query_windows(audio) if query else model.embed_windows(audio)
    notes = ["silent: no audible window"] if windows.silent else []
    return Embedded(
        np.asarray(windows.vectors, dtype=np.float32),
        np.asarray(windows.timestamps, dtype=np.float64),
        float(audio.duration),
        notes,
        source,
    )


# -- one file, both stages (queries) ---------------------------------------------------------------
def embed_image(lib: Library, path: str | Path) -> Embedded:
    d = decode_image(path)
    return Embedded(embed_frames(lib, d.frames), d.timestamps)  # type: ignore[arg-type]


def embed_video(lib: Library, path: str | Path) -> Embedded:
    """Keyframes of a video (at most ``video_max_frames`` prepared 224x224 pictures in memory)."""
    d = decode_video(path, lib.settings, soundtrack=False)
    return Embedded(embed_frames(lib, d.frames), d.timestamps, d.duration, d.notes)  # type: ignore[arg-type]


def embed_audio(lib: Library, path: str | Path, *, query: bool = False) -> Embedded:
    """Audio windows of a sound file."""
    return embed_sound(lib, decode_sound(path, lib.settings), "audio", query=query)


def embed_soundtrack(lib: Library, path: str | Path, *, query: bool = False) -> Embedded | None:
    """Audio windows of a video's soundtrack, or None when it has none."""
    try:
        audio = decode_sound(path, lib.settings, from_video=True)
    except DecodeError:
        return None
    emb = embed_sound(lib, audio, "video", query=query)
    return emb if len(emb) else None
