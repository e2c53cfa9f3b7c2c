"""Sweep crossings: the moments a glide (a sine sweep, a siren, a bird's whistle) crosses the lines
of a frequency grid, the points that fingerprint v2 adds to the 2-D spectral peaks
(``signals.audio._peaks``). A glide has no stable 2-D maximum: its peaks depend on how the frames
fall on it, and without crossings an excerpt of a sine sweep got no copy match at all.

A crossing is a line of the ``SWEEP_GRID`` (every 6th bin) at the frame where a glide crosses it:
``SWEEP_RISE`` (log magnitude, ~17 dB) above the same bin 3 frames before and after, within
``SWEEP_NEAR`` (~2 dB) of the strongest bin within 7, with a crossing of the next line within
``SWEEP_LAG`` frames; ``signals.audio`` keeps at most ``SWEEP_PER_S`` a second.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SWEEP_GRID", "SWEEP_LAG", "SWEEP_NEAR", "SWEEP_PER_S", "SWEEP_RISE", "crossings"]

SWEEP_GRID = 6
SWEEP_RISE = 2.0
SWEEP_NEAR = 0.25
SWEEP_LAG = 8
SWEEP_PER_S = 25


def crossings(s: np.ndarray, fmax: np.ndarray, f_lo: int) -> np.ndarray:
    """Where a glide crosses a line of the ``SWEEP_GRID`` (a mask like ``s``): the bin's maximum over
    time (+-1 frame), ``SWEEP_RISE`` above the same bin 3 frames before and after (a held note is
    level there), near the frame's peak (``fmax``, its maximum within 7 bins), with a crossing of
    the next line up or down 1 to ``SWEEP_LAG`` frames before or after (a glide moves on; a click
    crosses every line at once, a short note one line only). The moment a glide crosses a bin is
    the signal's, so a copy cut anywhere, resampled or re-encoded, crosses at the same moment; the
    2-D maxima of a glide depend on how the frames fall on it. ``s``: log spectrogram (bins x
    frames) whose row 0 is bin ``f_lo``."""
    from scipy.ndimage import convolve1d

    n = s.shape[1]
    g = np.flatnonzero((np.arange(s.shape[0]) + f_lo) % SWEEP_GRID == 0)
    sg = s[g]
    p = np.pad(sg, ((0, 0), (3, 3)), constant_values=-np.inf)
    rise = sg - np.maximum(p[:, 0:n], p[:, 6 : 6 + n])
    cross = ((sg >= p[:, 2 : 2 + n]) & (sg > p[:, 4 : 4 + n]) & (rise > SWEEP_RISE)
             & (sg >= fmax[g] - SWEEP_NEAR) & (sg > np.log(1e-3)))  # fmt: skip
    beside = np.zeros(cross.shape, np.int8)  # a crossing on the line below or above
    beside[1:] |= cross[:-1]
    beside[:-1] |= cross[1:]
    kernel = np.ones(2 * SWEEP_LAG + 1, np.int8)
    kernel[SWEEP_LAG] = 0
    out = np.zeros(s.shape, bool)
    out[g] = cross & (convolve1d(beside, kernel, axis=1, mode="constant") > 0)
    return out
