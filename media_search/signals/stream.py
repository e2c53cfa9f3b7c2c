"""The landmark fingerprint (``signals.audio``) of a sound fed in blocks, in flat memory.

``Landmarker(sr)`` takes blocks of mono audio (``feed``) and gives back the
landmark pairs whose anchors are final (``take``) and, at the end, the rest
(``finish``). Fed a whole sound in any blocks, it returns exactly the pairs of
``signals.audio.landmarks`` on that sound (``tests/test_long_media.py``):

* resampling to 8 kHz runs on overlapping chunks whose edges (where the
  polyphase filter sees zeros) are cut off, so every kept sample is the
  whole-sound one;
* peaks are picked on spectrogram segments of ``SEGMENT`` frames with
  ``PAD`` frames of context on each side; both are multiples of 750 frames
  (12 s), so the peak picker's 6-frame tiles and 1 s ranking blocks fall
  where they fall on the whole sound, and every neighbourhood it looks at
  lies inside the segment;
* an anchor is paired once every peak within ``MAX_DT`` frames after it is
  known.

Memory: one segment's peak picking (about 50 MB) plus the peaks and pairs
(a few MB per hour), whatever the length.
"""

from __future__ import annotations

import numpy as np

from .audio import (
    FP_RATE,
    HOP,
    MAX_DT,
    N_FFT,
    REACH,
    Pairs,
    _pairs,
    _peaks,
    _spectrogram,
)

__all__ = ["PAD", "SEGMENT", "Landmarker", "concat_pairs"]

_ALIGN = 750  # frames: 12 s, a whole number of 6-frame tiles and of 1 s blocks
SEGMENT = 8 * _ALIGN
PAD = _ALIGN
_MARGIN = 64  # 8 kHz samples cut off each inner edge of a resampled chunk
_CHUNK = 1 << 18  # 8 kHz samples resampled at a time


def concat_pairs(parts: list[Pairs]) -> Pairs:
    if not parts:
        z32, z64 = np.zeros(0, np.int32), np.zeros(0, np.int64)
        return Pairs(z32, z32, z32, z64)
    return Pairs(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("f1", "f2", "dt", "t1")))


def _spectrogram_in_chunks(x: np.ndarray, frames: int = 2048) -> np.ndarray:
    """``signals.audio._spectrogram`` a few thousand frames at a time (its complex FFT is the big part)."""
    n = 1 + (len(x) - N_FFT) // HOP if len(x) >= N_FFT else 1
    if n <= frames:
        return _spectrogram(x)
    parts = [_spectrogram(x[i * HOP : (min(n, i + frames) - 1) * HOP + N_FFT]) for i in range(0, n, frames)]
    return np.concatenate(parts, axis=1)


class Landmarker:
    """Landmark pairs of a sound fed in blocks; see the module docstring."""

    def __init__(self, sr: int, *, segment: int = SEGMENT) -> None:
        if sr % FP_RATE:
            raise ValueError(f"Landmarker needs a rate that is a multiple of {FP_RATE} Hz, not {sr}")
        if segment < _ALIGN or segment % _ALIGN:
            raise ValueError(f"segment must be a multiple of {_ALIGN} frames")
        self.segment = segment
        self.down = sr // FP_RATE
        self._in: list[np.ndarray] = []  # input not yet resampled, from input sample _in0
        self._in_n = 0
        self._in0 = 0  # a multiple of self.down
        self._x8 = np.zeros(0, np.float32)  # 8 kHz samples from _o0
        self._o0 = 0
        self._n8 = 0  # 8 kHz samples known (global)
        self._seg = 0  # next segment's first frame
        self._t = np.zeros(0, np.int64)  # peaks not yet used as anchors (global frames)
        self._f = np.zeros(0, np.int64)
        self._out: list[Pairs] = []
        self._done = False
        #: every pair anchored before this frame has been returned by ``take`` (or is ready for it)
        self.final_below = 0

    # -- input ------------------------------------------------------------------------------------
    def feed(self, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        if x.size:
            self._in.append(x)
            self._in_n += x.size
        if self._in_n >= (_CHUNK + 2 * _MARGIN) * self.down:
            self._resample(final=False)
            self._segments(final=False)

    def take(self) -> Pairs:
        """The pairs whose anchors became final since the last call."""
        out, self._out = concat_pairs(self._out), []
        return out

    def finish(self) -> Pairs:
        """The remaining pairs (call once, after the last block)."""
        if not self._done:
            self._done = True
            self._resample(final=True)
            self._segments(final=True)
        return self.take()

    # -- stages -----------------------------------------------------------------------------------
    def _resample(self, *, final: bool) -> None:
        from ..decode.audio import resample

        if not self._in:
            return
        x = np.concatenate(self._in)
        y = resample(x, self.down * FP_RATE, FP_RATE, method="poly")
        a = self._in0 // self.down  # global 8 kHz index of y[0]
        lo = 0 if a == 0 else _MARGIN
        hi = len(y) if final else len(y) - _MARGIN
        if hi > lo:
            self._x8 = np.concatenate([self._x8, y[lo:hi]])
            self._n8 = a + hi
        if final:
            self._in, self._in_n = [], 0
            return
        start = (a + hi - _MARGIN) * self.down - self._in0  # the next chunk's first input sample
        rest = x[start:]
        self._in, self._in_n, self._in0 = [rest], rest.size, self._in0 + start

    def _segments(self, *, final: bool) -> None:
        n_frames = 1 + (self._n8 - N_FFT) // HOP if self._n8 >= N_FFT else (1 if self._n8 else 0)
        while self._seg < n_frames:
            s, e = self._seg, self._seg + self.segment
            lo, hi = max(0, s - PAD), e + PAD
            if hi > n_frames and not final:
                break  # the context after this segment is not decoded yet
            hi = min(hi, n_frames)
            x = self._x8[lo * HOP - self._o0 : (hi - 1) * HOP + N_FFT - self._o0]
            t, f = _peaks(_spectrogram_in_chunks(x))
            t = t.astype(np.int64) + lo
            inside = (t >= s) & (t < e)
            self._t = np.concatenate([self._t, t[inside]])
            self._f = np.concatenate([self._f, f[inside].astype(np.int64)])
            self._seg = e
            self._pair(below=None if final and e >= n_frames else e - MAX_DT - 1)
            drop = max(0, (e - PAD) * HOP - self._o0)  # the next segment starts its context at e - PAD
            self._x8, self._o0 = self._x8[drop:], self._o0 + drop
        if final:
            self._pair(below=None)

    def _pair(self, *, below: int | None) -> None:
        """Pair the anchors before frame ``below`` (all when None): their targets are all known."""
        t, f = self._t, self._f
        a1 = len(t) if below is None else int(np.searchsorted(t, below, side="left"))
        self.final_below = np.iinfo(np.int64).max if below is None else max(self.final_below, below)
        if a1 == 0:
            return
        reach = a1 + REACH + 1
        p = _pairs(t[:reach], f[:reach])
        keep = p.t1 < (t[a1] if a1 < len(t) else np.iinfo(np.int64).max)  # anchors before index a1
        self._out.append(Pairs(p.f1[keep], p.f2[keep], p.dt[keep], p.t1[keep]))
        self._t, self._f = t[a1:], f[a1:]
