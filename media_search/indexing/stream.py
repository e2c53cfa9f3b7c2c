"""A long sound indexed as it is decoded: blocks in, audio rows out in parts, memory flat.

A sound longer than ``Settings.stream_seconds`` (an audio file, or a video's
soundtrack) does not travel whole from a decode worker: the worker says so
(``Decoded.stream_audio``) and the indexer's main process streams it here:
``AudioStream`` blocks feed the window cutter (``embed.stream``) and the
landmark fingerprint (``signals.stream``); windows are embedded a batch at a
time, and ``sound_parts`` yields the rows as column batches once the
fingerprint of their time span is final. Each row carries the landmark pairs
anchored between its start and the next row's (``signals.audio.split_by_time``
on the whole sound gives the same split). ``indexing.run`` writes the parts
under the manifest's ``pending`` mark, so a kill between parts leaves a
pending file that the next run removes and indexes again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..decode.stream import AudioStream, probe_seconds
from ..embed.stream import WindowCutter, batches
from ..identity import row_id
from ..signals.audio import FRAME_S, pack, unpack
from ..signals.stream import Landmarker
from ..store.schema import FP_CAPACITY

if TYPE_CHECKING:
    from ..config import Settings
    from ..embed.audio import AudioEmbedder

__all__ = ["SoundRows", "sound_parts"]

PART_ROWS = 128  # rows per written part (about 10 min of sound at a 5 s hop)


@dataclass
class SoundRows:
    """What ``sound_parts`` learnt once it is exhausted."""

    rows: int = 0
    seconds: float = 0.0
    silent: bool = False
    notes: list[str] = field(default_factory=list)


def sound_parts(
    path: str | Path,
    embedder: AudioEmbedder,
    settings: Settings,
    *,
    fid: str,
    fields: dict[str, Any],
    from_video: bool,
    summary: SoundRows,
    progress: Callable[[float], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Audio row columns of a long sound, a part at a time (see the module docstring).

    ``fields``: the columns every row shares (file id, path, hash, source).
    ``summary`` is filled as the parts go. Raises ``DecodeError`` (also
    ``NoSoundtrackError`` for a video without sound) before or between parts.
    """
    declared = probe_seconds(path, from_video=from_video)
    stream = AudioStream(path, timeout=settings.decode_timeout, from_video=from_video)
    cutter = WindowCutter(embedder.hop)
    marks = Landmarker(stream.sr)
    starts: list[int] = []  # embedded rows not yet written (start samples)
    vectors: list[np.ndarray] = []
    packed: list[np.ndarray] = []  # fingerprint values not yet given to a row
    todo: list[tuple[int, np.ndarray]] = []  # windows not yet embedded
    sr = stream.sr

    def embed(windows: list[tuple[int, np.ndarray]]) -> None:
        for batch in batches(windows, embedder.batch_size):
            vectors.append(embedder.embed_batch(np.stack([w for _, w in batch])))
            starts.extend(s for s, _ in batch)

    def rows(n: int, duration: float, *, last: bool) -> dict[str, Any]:
        nonlocal starts, vectors, packed
        vecs = np.concatenate(vectors) if vectors else np.zeros((0, embedder.spec.dim), np.float32)
        values = np.concatenate(packed) if packed else np.zeros(0, np.int64)
        _, anchors = unpack(values)
        prints = []
        for i in range(n):
            if i + 1 < len(starts):
                end = int(np.searchsorted(anchors, starts[i + 1] / sr / FRAME_S, side="left"))
            else:
                end = len(values) if last else 0
            prints.append(values[:end][:FP_CAPACITY].tolist())
            values, anchors = values[end:], anchors[end:]
        ts = [round(s / sr, 3) for s in starts[:n]]
        cols = {
            "id": [row_id(fid, "a", t) for t in ts],
            "vector": vecs[:n],
            **{k: [v] * n for k, v in fields.items()},
            "fp": prints,
            "timestamp": ts,
            "duration": [float(duration)] * n,
        }
        starts, vectors, packed = starts[n:], [vecs[n:]], [values]
        summary.rows += n
        return cols

    for block in stream:
        marks.feed(block)
        packed.append(pack(marks.take()))
        todo += cutter.feed(block)
        if len(todo) >= embedder.batch_size:
            embed(todo)
            todo = []
        if progress:
            progress(stream.seconds)
        if declared is None:
            continue  # the rows' duration is known only at the end: write them then
        final = marks.final_below * FRAME_S * sr  # samples: every anchor before is in ``packed``
        ready = sum(1 for i in range(len(starts) - 1) if starts[i + 1] <= final)
        if ready >= PART_ROWS:
            yield rows(ready, declared, last=False)
    packed.append(pack(marks.finish()))
    todo += cutter.finish()
    if not starts and not todo:  # silent throughout: one row, the silence at 0
        assert cutter.first is not None
        todo = [(0, cutter.first)]
        summary.silent = True
        summary.notes.append("silent: no audible window")
    embed(todo)
    summary.seconds = stream.seconds
    summary.notes += stream.notes
    if starts:
        yield rows(len(starts), stream.seconds if declared is None else declared, last=True)
