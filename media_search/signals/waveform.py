"""A sound copy checked on the samples: does the library file hold the query's samples, or only
another performance of the same sound?

The landmark fingerprint (``signals.audio``) agrees with a copy, but also, less well, with another
*take* of the same words by the same speaker: the same rhythm and pitch, other samples. Where its
agreement is weak (``AudioMatch.pair_share`` under ``CHECK_BELOW``), the matched stretch of the
library file is decoded and laid against the query at the fingerprint's offset and tempo:

* ``wave``: the normalised cross-correlation of the two waveforms at 8 kHz, at the best lag within
  ``LAG_S`` of the offset. A copy keeps its samples through gain, noise, resampling and a lossy
  codec; another take shares none of them.
* ``spectral``: frame by frame (16 ms), the correlation of the query's log spectrum (94 Hz to 3 kHz)
  with the library's, predicted as the query would hear it (the library's power at the query's
  gain, plus the query's own noise floor), each frame at its best of 5 neighbouring frames; the
  mean over the louder half of the query's frames. A tempo change (pitch kept) moves the samples
  but keeps each frame's spectrum; another take's spectra follow their own timing and voice.

A copy passes on either (``Agreement.copy``), but on the spectra alone only with the pair share
that the fingerprint's rule asks (``signals.audio.MIN_PAIR_SHARE``): a weak copy whose waveform
agrees is a copy whatever its pair share (``signals.audio.decide``'s ``heard``), one that fails
is none. The query path asks it
of a query's weak copies (``query.sounds.sample_check``), the duplicates report of every pair of
sounds the fingerprint leaves open (``duplicates.sounds.judge``). Calibrated on real recordings
(``scripts/bench_copy.py --only audio-real``, calibration half, ``scripts/bench/flag_rules.py
--samples calibration``): every match that the fingerprint rule flags among the 25 library files
sharing the most hashes with each of 700 edited queries. The 667 sources: ``wave`` at least 0.842
wherever ``spectral`` is under its bar (noise at 10 dB SNR, mp3 at 16 kbit/s: ``spectral`` from
0.703), ``spectral`` at least 0.922 wherever ``wave`` is under its bar (tempo changes, some mp3s and
snippets); the 31 other takes: ``wave`` 0.111 to 0.510, ``spectral`` 0.533 to 0.804, all refused.
The bars sit between. The same listing of the report half, made after its run (``--samples
report``): sources ``wave`` from 0.867 where ``spectral`` is under its bar, ``spectral`` from
0.900 where ``wave`` is; other takes ``wave`` at most 0.388, but one (a tempo-changed query of a
Bulgarian tuxpaint letter, against another letter) ``spectral`` 0.902 at a pair share of 0.046:
hence the pair share asked of spectra alone, a rule that only refuses more."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from . import audio as fa

__all__ = ["CHECK_BELOW", "MIN_WAVE", "MIN_SPECTRAL", "Agreement", "query_span", "library_span", "agreement", "heard"]

log = logging.getLogger(__name__)

#: Matches whose ``pair_share`` is under this are checked on the samples; above it, the fingerprint
#: settles the copy alone. The other takes flagged on the calibration half hit at most 0.162 of
#: their pairs; 161 of its 667 sources are under 0.3.
CHECK_BELOW = 0.3
MIN_WAVE = 0.65
MIN_SPECTRAL = 0.86
LAG_S = 0.05  # the fingerprint's offset is a 32 ms bin: the samples are searched this far each side
MAX_SECONDS = 8.0  # of the matched stretch, compared (a longer one has shown what it holds by then)
_JITTER = 2  # frames each side (32 ms): a tempo hypothesis is 2.5 % apart, a stretch drifts within it
_BAND = (6, 192)  # bins of the 8 kHz, 512-point spectrum: 94 Hz to 3 kHz (8 kHz resampling, mp3 cut-offs)


@dataclass(frozen=True)
class Agreement:
    wave: float
    spectral: float
    pair_share: float = 1.0  # the match's (``AudioMatch.pair_share``)

    @property
    def copy(self) -> bool:
        """The samples agree (``wave``), or the spectra do and the fingerprint's pair share reaches
        ``signals.audio.MIN_PAIR_SHARE``: spectra alone are the weaker evidence (steady tones of
        one pitch agree by them, and on the report half one other take reached 0.902)."""
        return self.wave >= MIN_WAVE or (self.spectral >= MIN_SPECTRAL and self.pair_share >= fa.MIN_PAIR_SHARE)


def _stretch(m: fa.AudioMatch) -> tuple[float, float]:
    """The query seconds compared: the matched stretch, at most ``MAX_SECONDS`` of it."""
    s0, s1 = m.span
    return s0, min(s1, s0 + MAX_SECONDS)


def query_span(m: fa.AudioMatch) -> tuple[float, float]:
    """``(start, seconds)`` of the query that ``agreement`` compares, for a caller that decodes only
    that (``duplicates.sounds``: both sides are library files)."""
    s0, s1 = _stretch(m)
    start = max(0.0, s0 - 2 * fa.FRAME_S)
    return start, s1 + 2 * fa.FRAME_S - start


def library_span(m: fa.AudioMatch) -> tuple[float, float]:
    """``(start, seconds)`` of the library file to decode for ``agreement``."""
    s0, s1 = _stretch(m)
    pad = LAG_S + (_JITTER + 1) * fa.FRAME_S
    start = max(0.0, s0 * m.scale + m.offset - pad)
    return start, max(0.0, s1 * m.scale + m.offset + pad - start)


def agreement(query: np.ndarray, query_sr: int, lib: np.ndarray, lib_sr: int, m: fa.AudioMatch,
              lib_start: float, *, query_start: float = 0.0) -> Agreement | None:  # fmt: skip
    """How well the library samples ``lib`` (decoded from ``lib_start`` s, ``library_span``) agree
    with the query ``query`` (the whole query, or from ``query_start`` s: ``query_span``) at ``m``'s
    offset and tempo; None when the stretch holds no sound to compare (the fingerprint's verdict
    stands)."""
    if query_start:  # the match in the decoded stretch's time: library time = t * scale + offset
        (s0, s1), qs = m.span, query_start
        m = replace(m, span=(s0 - qs, s1 - qs), offset=m.offset + qs * m.scale)
    x, y = fa._resample(query, query_sr), fa._resample(lib, lib_sr)
    s0, s1 = _stretch(m)
    # the query seconds whose library time (t * scale + offset) the decoded stretch holds
    lo = max(s0, (lib_start - m.offset) / m.scale)
    hi = min(s1, (lib_start + len(y) / fa.FP_RATE - m.offset) / m.scale, len(x) / fa.FP_RATE)
    if hi - lo < 4 * fa.FRAME_S:
        return None
    wave = _wave(x[int(lo * fa.FP_RATE) : int(hi * fa.FP_RATE)], y, (lo * m.scale + m.offset - lib_start) * fa.FP_RATE, m.scale)
    spectral = _spectral(x, y, lo, hi, m, lib_start)
    return None if spectral is None else Agreement(round(wave, 4), round(spectral, 4), m.pair_share)


def heard(query: np.ndarray, query_sr: int, path: str, m: fa.AudioMatch, *, from_video: bool = False,
          query_start: float = 0.0, timeout: float = 120.0) -> bool | None:  # fmt: skip
    """Whether the file at ``path`` holds the query's samples at ``m`` (``agreement``, ``copy``): its
    ``library_span`` decoded now (a video's soundtrack with ``from_video``). None when it cannot
    tell: the file cannot be decoded now (moved, unreadable), or the stretch holds no sound."""
    from ..decode.audio import decode_audio
    from ..errors import MediaSearchError

    start, seconds = library_span(m)
    try:
        lib = decode_audio(path, from_video=from_video, span=(start, seconds), timeout=timeout)
    except MediaSearchError as e:
        log.debug("could not check %s on its samples: %s", path, e)
        return None
    got = agreement(query, query_sr, lib.samples, lib.sr, m, start, query_start=query_start)
    return None if got is None else got.copy


def _wave(seg: np.ndarray, y: np.ndarray, at: float, scale: float) -> float:
    """The best normalised cross-correlation of ``seg`` with ``y`` near sample ``at``."""
    from scipy.signal import fftconvolve

    lag = int(LAG_S * fa.FP_RATE)
    a, b = max(int(round(at)) - lag, 0), min(int(round(at)) + int(len(seg) * scale) + lag, len(y))
    ref = y[a:b].astype(np.float64)
    seg = seg[: len(ref)].astype(np.float64)
    norm = float(np.linalg.norm(seg))
    if len(seg) == 0 or norm < 1e-6:
        return 0.0
    corr = fftconvolve(ref, seg[::-1], "valid")
    energy = np.sqrt(np.maximum(np.convolve(ref**2, np.ones(len(seg)), "valid"), 1e-12))
    return float(np.max(corr / (norm * energy)))


def _spectral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, m: fa.AudioMatch, lib_start: float) -> float | None:
    b0, b1 = _BAND
    q = fa._spectrogram(x)[b0:b1]
    lib = fa._spectrogram(y)[b0:b1]
    t = np.arange(int(lo / fa.FRAME_S), min(int(np.ceil(hi / fa.FRAME_S)), q.shape[1]))
    if len(t) < 2:
        return None
    qp = np.exp(2.0 * q[:, t].astype(np.float64))  # power
    u = np.rint((t * fa.FRAME_S * m.scale + m.offset - lib_start) / fa.FRAME_S).astype(np.int64)
    lp = np.exp(2.0 * lib.astype(np.float64))
    noise = np.percentile(np.exp(2.0 * q.astype(np.float64)), 10, axis=1, keepdims=True)  # the query's floor
    gain = max(float(qp.sum() - noise.sum() * len(t)), 1e-9) / max(float(lp[:, np.clip(u, 0, lp.shape[1] - 1)].sum()), 1e-12)
    heard = np.log(gain * lp + noise) / 2.0  # the library as the query would hear it
    energy = np.log(qp.sum(axis=0) + 1e-9)
    loud = energy >= np.median(energy)
    best = np.full(len(t), -1.0)
    qn = _unit(q[:, t].astype(np.float64))
    for j in range(-_JITTER, _JITTER + 1):
        uu = u + j
        inside = (uu >= 0) & (uu < heard.shape[1])
        c = (qn * _unit(heard[:, np.clip(uu, 0, heard.shape[1] - 1)])).sum(axis=0)
        best = np.maximum(best, np.where(inside, c, -1.0))
    return float(np.mean(best[loud]))


def _unit(s: np.ndarray) -> np.ndarray:
    """Each column, less its mean, at unit length."""
    s = s - s.mean(axis=0)
    return s / (np.linalg.norm(s, axis=0) + 1e-9)
