"""The decode stage for one file of a known kind: file -> ``Decoded``.

``decode_file`` (``decode_image``, ``decode_video``, ``decode_sound``) turns a
file into small picklable arrays -- prepared 224x224 uint8 pictures (an image,
or a video's keyframes) and 32 kHz mono audio -- ready for their copy signals
(``signals.add_copy_signals``). No model is needed; this runs in the indexer's
worker processes (``indexing.pool``) and for a query (``query.search``). Both run
the same functions, so a file and the same file given as a query get the same
vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DecodeError

if TYPE_CHECKING:
    from ..config import Settings
    from .audio import Audio

__all__ = ["Decoded", "decode_file", "decode_image", "decode_video", "decode_sound"]


@dataclass
class Decoded:
    """One file after the decode stage (picklable; what crosses from a worker process).

    ``frames``: ``(n, 224, 224, 3)`` uint8 prepared pictures -- one for an image,
    the keyframes of a video (at ``timestamps``). ``audio``: the sound of an audio
    file or the soundtrack of a video (None when the video has none).
    Copy signals (``signals.add_copy_signals`` fills them):
    ``phashes``, one 16-hex-digit pHash per frame; ``local``, each frame's
    packed local features, made from an image's ``pictures`` (uint8 gray, longer side
    ``signals.image.MAX_SIDE``; dropped once ``local`` is filled), a video's as each keyframe
    is decoded (``decode_video``); ``prints``,
    the audio's packed landmark fingerprint.
    ``stream_audio``: the sound is longer than ``Settings.stream_seconds``, so it
    is not here (``audio`` is None): the embed stage streams it from the file
    (``indexing.stream``).
    """

    kind: str
    frames: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    duration: float | None = None
    audio: Audio | None = None
    notes: list[str] = field(default_factory=list)
    phashes: list[str] | None = None
    prints: np.ndarray | None = None
    pictures: list[np.ndarray] | None = None
    local: list[str] | None = None
    stream_audio: bool = False

    @property
    def n_frames(self) -> int:
        return 0 if self.frames is None else len(self.frames)


def decode_image(path: str | Path) -> Decoded:
    """An image file as one prepared 224x224 picture, and its local picture (copy signals)."""
    from ..signals.image import MAX_SIDE, local_picture
    from .image import open_image, prepare

    im = open_image(path, min_side=MAX_SIDE)
    return Decoded("image", frames=prepare(im)[None], timestamps=np.zeros(1), pictures=[local_picture(np.asarray(im))])


def decode_video(path: str | Path, settings: Settings, *, soundtrack: bool = True, local: bool = True) -> Decoded:
    """A video's prepared keyframes with their timestamps, and its soundtrack if asked (None if absent).

    ``local``: each keyframe's local features (``Decoded.local``), computed as it is
    decoded: holding the local pictures of a long 720p video's 1,171 keyframes for them cost
    270 MB. A query does not use them (``local=False``)."""
    from ..signals.image import local_picture, pack_features, stored_features
    from .image import prepare
    from .video import iter_keyframes, probe_video

    info = probe_video(path)
    notes: list[str] = []
    frames: list[np.ndarray] = []
    locals_: list[str] | None = [] if local else None
    stamps: list[float] = []
    for frame in iter_keyframes(
        path,
        interval=settings.video_interval,
        max_frames=settings.video_max_frames,
        timeout=settings.decode_timeout,
        notes=notes,
    ):
        frames.append(prepare(frame.rgb))
        if locals_ is not None:
            locals_.append(pack_features(stored_features(local_picture(frame.rgb))))
        stamps.append(frame.timestamp)
    if not stamps:
        raise DecodeError(f"{path} has no usable frame (every frame is black, blank or undecodable).", path=str(path))
    audio = None
    if soundtrack and info.duration > settings.stream_seconds:
        return Decoded("video", frames=np.stack(frames), timestamps=np.asarray(stamps, dtype=np.float64),
                       duration=info.duration, notes=notes, stream_audio=True, local=locals_)  # fmt: skip
    if soundtrack:
        try:
            audio = decode_sound(path, settings, from_video=True)
        except DecodeError:  # no soundtrack, or one that cannot be decoded: the frames still count
            audio = None
    return Decoded("video", frames=np.stack(frames), timestamps=np.asarray(stamps, dtype=np.float64),
                   duration=info.duration, audio=audio, notes=notes, local=locals_)  # fmt: skip


def decode_sound(
    path: str | Path, settings: Settings, *, from_video: bool = False, sr: int | None = None, span: tuple[float, float] | None = None
) -> Audio:
    """Mono samples of an audio file or of a video's soundtrack, at 32 kHz (Cnn14's rate) or ``sr``;
    ``span``: only ``(start, seconds)`` of it."""
    from .audio import SAMPLE_RATE, decode_audio

    return decode_audio(path, sr=sr or SAMPLE_RATE, timeout=settings.decode_timeout, from_video=from_video, span=span)


def decode_file(path: str | Path, kind: str, settings: Settings) -> Decoded:
    """The decode stage for a file of a known kind (``detect.detect_kind``); its copy signals are
    added by ``signals.add_copy_signals``."""
    if kind == "image":
        d = decode_image(path)
    elif kind == "video":
        d = decode_video(path, settings)
    else:
        from .stream import probe_seconds

        seconds = probe_seconds(path)  # None: neither soundfile nor ffprobe reads it; the decoder says why
        if seconds is not None and seconds > settings.stream_seconds:
            d = Decoded("audio", duration=seconds, stream_audio=True)
        else:
            d = Decoded("audio", audio=decode_sound(path, settings))
    return d
