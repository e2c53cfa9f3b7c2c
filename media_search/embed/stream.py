"""Audio windows of a sound that arrives in blocks (``decode.stream.AudioStream``).

``WindowCutter`` cuts the windows of ``embed.audio`` (``AUDIO_WINDOW`` long,
every ``hop`` s, the last one looped to full length, silent ones dropped)
from blocks, keeping only the samples of windows not yet complete: the same
windows ``AudioEmbedder.embed_windows`` takes from the whole array.

``QueryWindows`` keeps at most ``max_windows`` windows of a query of unknown
length, evenly spread: windows start every ``QUERY_HOP`` s until there are
too many, then every other one is dropped and the hop doubles (memory: at most
``max_windows`` windows of 640 KB).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..decode.audio import SAMPLE_RATE
from .audio import (
    AUDIO_WINDOW,
    QUERY_HOP,
    QUERY_MAX_WINDOWS,
    SILENCE_RMS,
    _loop_to,
    _rms,
)

__all__ = ["QueryWindows", "Window", "WindowCutter"]

Window = tuple[int, np.ndarray]  # (start sample, window samples)


class WindowCutter:
    """Windows from blocks; ``feed`` returns the windows completed, ``finish`` the rest."""

    def __init__(self, hop: float, *, sr: int = SAMPLE_RATE, window: float = AUDIO_WINDOW) -> None:
        self.w = int(round(window * sr))
        self.step = max(1, int(round(hop * sr)))
        self._buf = np.zeros(0, np.float32)  # samples from _buf0 on
        self._buf0 = 0
        self._next = 0  # start of the next window
        self.total = 0
        self.emitted = 0  # windows cut, silent or not
        self.kept = 0
        self.first: np.ndarray | None = None  # the first window, for a file silent throughout

    def feed(self, block: np.ndarray) -> list[Window]:
        self._buf = np.concatenate([self._buf, np.asarray(block, np.float32)])
        self.total += len(block)
        out = []
        while self._next + self.w <= self._buf0 + len(self._buf):
            out += self._cut(self._next)
            self._next += self.step
        self._trim()
        return out

    def finish(self) -> list[Window]:
        """The remaining windows (looped to full length); one window at 0 for a clip shorter than one."""
        n, out = self.total, []
        count = 1 if n <= self.w else int(np.ceil((n - self.w) / self.step)) + 1
        k = self._next // self.step
        while k < count:
            out += self._cut(k * self.step)
            k += 1
        self._buf = np.zeros(0, np.float32)
        return out

    def _cut(self, start: int) -> list[Window]:
        i = start - self._buf0
        x = _loop_to(self._buf[i : i + self.w], self.w).copy()
        self.emitted += 1
        if self.first is None:
            self.first = x
        if _rms(x[: max(0, min(self.w, self.total - start))]) < SILENCE_RMS:
            return []
        self.kept += 1
        return [(start, x)]

    def _trim(self) -> None:
        drop = self._next - self._buf0
        if drop > 0:
            self._buf, self._buf0 = self._buf[drop:], self._next


class QueryWindows:
    """At most ``max_windows`` evenly spread windows of a long query (see the module docstring)."""

    def __init__(self, *, sr: int = SAMPLE_RATE, hop: float = QUERY_HOP, max_windows: int = QUERY_MAX_WINDOWS) -> None:
        self.sr, self.max = sr, max(2, max_windows)
        self.hop = hop
        self.cutter = WindowCutter(hop, sr=sr)
        self.windows: list[Window] = []

    def feed(self, block: np.ndarray) -> None:
        self._add(self.cutter.feed(block))

    def finish(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(starts in s, windows (m, samples), silent throughout)."""
        self._add(self.cutter.finish())
        silent = not self.windows
        if silent:
            first = self.cutter.first if self.cutter.first is not None else np.zeros(self.cutter.w, np.float32)
            self.windows = [(0, first)]
        starts = np.asarray([s for s, _ in self.windows], np.float64) / self.sr
        return starts, np.stack([w for _, w in self.windows]), silent

    def _add(self, new: list[Window]) -> None:
        step = self.cutter.step
        for start, x in new:
            if (start // step) % self._every() == 0:
                self.windows.append((start, x))
            while len(self.windows) > self.max:
                self.hop *= 2
                every = self._every()
                self.windows = [(s, w) for s, w in self.windows if (s // step) % every == 0]

    def _every(self) -> int:
        return max(1, int(round(self.hop / (self.cutter.step / self.sr))))


def batches(windows: list[Window], size: int) -> Iterator[list[Window]]:
    for i in range(0, len(windows), max(1, size)):
        yield windows[i : i + size]
