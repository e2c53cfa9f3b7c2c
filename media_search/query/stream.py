"""A long query sound, embedded as it is decoded: flat memory, progress, a length limit.

A query sound longer than ``Settings.stream_seconds`` is not held whole:
``embed_long_sound`` streams it (``decode.stream.AudioStream``), keeps at most
``QUERY_MAX_WINDOWS`` evenly spread windows (``embed.stream.QueryWindows``:
the hop doubles as the file goes on) and its whole landmark fingerprint
(``signals.stream.Landmarker``; a few MB per hour), so matches still carry
their offsets in the query. Spectral placement, which needs the samples, is
left to the fingerprints for such a query.

``check_length`` refuses a query longer than ``Settings.max_query_seconds``
before decoding it, and the stream stops if the file turns out longer than it
declared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DecodeError
from ..types import fmt_time

if TYPE_CHECKING:
    from ..config import Settings
    from ..embed.audio import AudioEmbedder
    from ..embed.embedders import Embedded
    from ..signals.audio import Pairs

__all__ = ["Progress", "check_length", "embed_long_sound"]

Progress = Callable[[dict[str, Any]], None]


def too_long(path: str | Path, seconds: float, limit: float) -> DecodeError:
    name = Path(path).name
    return DecodeError(
        f"{name} lasts {fmt_time(seconds)}, longer than the {fmt_time(limit)} a query may last "
        f"(MEDIA_SEARCH_MAX_QUERY_SECONDS): search with an excerpt "
        f"(for example: ffmpeg -ss 0 -t 600 -i {name} excerpt.wav) or raise the limit.",
        path=path,
    )


def check_length(path: str | Path, settings: Settings, *, from_video: bool) -> float | None:
    """The declared duration of a query file (None if it declares none); refuses one over the limit."""
    from ..decode.stream import probe_seconds

    seconds = probe_seconds(path, from_video=from_video)
    if seconds is not None and seconds > settings.max_query_seconds:
        raise too_long(path, seconds, settings.max_query_seconds)
    return seconds


def embed_long_sound(
    path: str | Path,
    embedder: AudioEmbedder,
    settings: Settings,
    *,
    from_video: bool,
    declared: float | None,
    progress: Progress | None = None,
) -> tuple[Embedded, Pairs]:
    """Window vectors (at most ``QUERY_MAX_WINDOWS``) and landmark pairs of a long sound."""
    from ..decode.stream import AudioStream
    from ..embed.embedders import Embedded
    from ..embed.stream import QueryWindows
    from ..signals.stream import Landmarker, concat_pairs

    stream = AudioStream(path, timeout=settings.decode_timeout, from_video=from_video)
    windows = QueryWindows(sr=stream.sr)
    marks = Landmarker(stream.sr)
    pairs = []
    for block in stream:  # decoder messages: ``stream.notes`` (``decode.quiet``)
        windows.feed(block)
        marks.feed(block)
        pairs.append(marks.take())
        if stream.seconds > settings.max_query_seconds:
            stream.close()
            raise too_long(path, stream.seconds, settings.max_query_seconds)
        if progress:
            progress({"event": "decode", "done": stream.seconds, "total": declared})
    pairs.append(marks.finish())
    starts, arrays, silent = windows.finish()
    if progress:
        progress({"event": "embed", "done": stream.seconds, "total": stream.seconds})
    size = max(1, embedder.batch_size)
    vectors = np.concatenate([embedder.embed_batch(arrays[i : i + size]) for i in range(0, len(arrays), size)])
    notes = ["silent: no audible window"] if silent else []
    sound = Embedded(vectors.astype(np.float32, copy=False), starts, stream.seconds, notes + stream.notes,
                     "video" if from_video else "audio")  # fmt: skip
    return sound, concat_pairs(pairs)
