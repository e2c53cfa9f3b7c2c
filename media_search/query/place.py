"""Place an audio query in a candidate: spectral alignment.

A pure function for the query side, on numpy arrays (window agreement of the
Cnn14 vectors at one offset is ``query.align``), and its use on a query's results:

``match_excerpt(query, cand)``
    Verifies "this query is a piece of that recording" and finds where, to a
    few hundredths of a second, by normalised cross-correlation of log-mel
    spectrograms (32 bands 100-3800 Hz, 20 ms frames, per-band mean removed:
    robust to gain, stationary noise, lossy coding, band limiting to 8 kHz
    sampling and, over a few seconds, to a +-5% tempo change). The peak is a
    Pearson correlation in [-1, 1]. Cnn14 embeddings say *what kind* of sound
    two clips hold; they cannot tell apart two offsets inside a homogeneous
    recording, which this does. Cost: decoding the candidate plus a few FFTs,
    so use it on the top candidates of the vector search only.

``place_matches(settings, samples, matches)``
    The top ``PLACE_TOP`` results the fingerprints did not confirm, placed in
    time by ``match_excerpt`` where it correlates at least ``PLACE_MIN_CORR``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import TYPE_CHECKING

import numpy as np

from ..embed.models import CNN14
from ..errors import DecodeError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..config import Settings
    from ..types import Match

log = logging.getLogger(__name__)

__all__ = ["spectral_features", "match_excerpt", "place_matches", "FRAME_S", "PLACE_SR", "PLACE_TOP", "PLACE_MIN_CORR", "PLACE_REACH"]

FRAME_S = 0.02  # seconds per spectral frame
_SR = CNN14.sample_rate


def spectral_features(samples: np.ndarray, sr: int = _SR) -> np.ndarray:
    """(32, frames) log-mel, lightly smoothed, per-band mean removed; 20 ms frames."""
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(samples, np.float32)
    if x.size < _n_fft(sr):
        x = np.pad(x, (0, _n_fft(sr) - x.size))
    m = _melspectrogram(x, sr, int(round(FRAME_S * sr)))
    f = np.log(m + 1e-4 * (float(m.max()) + 1e-9))
    f = uniform_filter1d(f, 3, axis=1)
    return (f - f.mean(axis=1, keepdims=True)).astype(np.float32)


_N_FFT, _N_MELS, _FMIN, _FMAX = 2048, 32, 100.0, 3800.0
#: Where a query's results are placed (``place_matches``): the bands stop at 3.8 kHz, so 8 kHz
#: holds all they see, and decoding a candidate and its FFTs cost a quarter of 32 kHz's.
PLACE_SR = 8000


def _n_fft(sr: int) -> int:
    """64 ms frames at any rate: ``_N_FFT`` (2048) samples at 32 kHz, 512 at 8 kHz."""
    return max(16, int(round(_N_FFT * sr / _SR)))


def _melspectrogram(x: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """Magnitude mel spectrogram, equal to ``librosa.feature.melspectrogram(power=1.0)`` with these
    settings (centred frames, zero padding, periodic Hann, Slaney mels; ``tests/test_align_audio.py``)
    without librosa's first-call cost (about 2 s of numba compiling in every new process)."""
    import scipy.fft

    n_fft = _n_fft(sr)
    x = np.pad(x, n_fft // 2)
    n = 1 + (x.size - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(x, (n, n_fft), (x.strides[0] * hop, x.strides[0]), writeable=False)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    bank = _mel_filters(sr)
    out = np.empty((_N_MELS, n), np.float32)
    for i in range(0, n, 1024):  # in blocks: a long file's frames never sit in memory at once
        out[:, i : i + 1024] = bank @ np.abs(scipy.fft.rfft(frames[i : i + 1024] * window, axis=1)).T
    return out


@functools.lru_cache(maxsize=4)
def _mel_filters(sr: int) -> np.ndarray:
    """(32, n_fft // 2 + 1) Slaney-scale, Slaney-normalised triangular filters (``librosa.filters.mel``)."""
    freqs = np.fft.rfftfreq(_n_fft(sr), 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(_FMIN), _hz_to_mel(_FMAX), _N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, freqs)
    weights = np.maximum(0.0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


_F_SP, _MIN_LOG_HZ, _LOGSTEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0  # Slaney's mel scale


def _hz_to_mel(f: float) -> float:
    return _MIN_LOG_HZ / _F_SP + np.log(f / _MIN_LOG_HZ) / _LOGSTEP if f >= _MIN_LOG_HZ else f / _F_SP


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    lin = _MIN_LOG_HZ / _F_SP
    return np.where(m >= lin, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - lin)), _F_SP * m)


def _xcorr(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``q`` (B, Tq) with every (B, Tq) window of ``c`` (B, Tc >= Tq)."""
    from scipy.signal import fftconvolve

    n = q.size
    qn = q - q.mean()
    qn = qn / (np.linalg.norm(qn) + 1e-9)
    num = fftconvolve(c, qn[:, ::-1], mode="valid", axes=1).sum(axis=0)  # (Tc - Tq + 1,)
    col, col2 = c.sum(axis=0), np.square(c).sum(axis=0)
    cs, cs2 = np.concatenate([[0.0], np.cumsum(col)]), np.concatenate([[0.0], np.cumsum(col2)])
    tq = q.shape[1]
    s, s2 = cs[tq:] - cs[:-tq], cs2[tq:] - cs2[:-tq]
    var = np.maximum(s2 - s * s / n, 0.0)
    return num / (np.sqrt(var) + 1e-6)


def match_excerpt(
    query: np.ndarray,
    cand: np.ndarray,
    *,
    sr: int = _SR,
    max_query: float = 6.0,
) -> tuple[float, float, float]:
    """``(correlation, cand_offset, query_offset)`` of the best alignment of ``query`` in ``cand``.

    Uses at most ``max_query`` seconds of the query (its most varied stretch),
    so long queries stay cheap and tempo drift stays small; ``query_offset`` is
    where that stretch starts in the query, ``cand_offset`` where it starts in
    the candidate. When the candidate is the shorter one, the roles swap.
    """
    qf, cf = spectral_features(query, sr), spectral_features(cand, sr)
    swapped = qf.shape[1] > cf.shape[1]
    if swapped:
        qf, cf = cf, qf
    width = min(qf.shape[1], max(1, int(round(max_query / FRAME_S))))
    start = 0
    if qf.shape[1] > width:  # pick the stretch with the most spectral change
        energy = np.square(np.diff(qf, axis=1)).sum(axis=0)
        run = np.convolve(energy, np.ones(width - 1), mode="valid")
        start = int(np.argmax(run))
    corr = _xcorr(qf[:, start : start + width], cf)
    lag = int(np.argmax(corr))
    peak = float(corr[lag])
    in_long, in_short = lag * FRAME_S, start * FRAME_S  # the stretch's start in each clip
    return (peak, in_short, in_long) if swapped else (peak, in_long, in_short)


#: Results (best first) whose offset spectral alignment refines when the fingerprints did not place them.
PLACE_TOP = 3
#: ``place.match_excerpt`` correlation from which its offset is taken: above what the best unrelated
#: clip reaches and below what the source reaches under the degradations of the audio tests (figures:
#: README, "Benchmarks").
PLACE_MIN_CORR = 0.6
#: Seconds on each side of where the window alignment puts the query in a long result that are
#: searched (and decoded) for it: two library hops (``AUDIO_HOP``), the grid's error and one more.
#: A 3-minute track cost 0.18 s to decode whole at 8 kHz; 25 s of it cost a seventh of that.
PLACE_REACH = 10.0


def place_matches(
    settings: Settings, samples: np.ndarray, matches: list[Match], lengths: Mapping[str, float] | None = None
) -> list[Match]:
    """Offsets of the top matches the fingerprints did not confirm, from spectral alignment.

    Their Cnn14 offset is on the library's window grid (``AUDIO_HOP`` apart);
    cross-correlating log-mel spectrograms places the snippet (``samples``, at
    Cnn14's 32 kHz) to a few hundredths of a second. Costs decoding each of
    those files again, at ``PLACE_SR``; they are decoded and placed side by side
    (ffmpeg runs in its own process, and the FFTs and products let go of the GIL).
    ``lengths``: seconds of each result's sound, from its stored windows; when
    given, only the results it names are placed (those the sound search found: a
    video query's keyframe alignment keeps its own times). Without it, every
    result is a candidate and its length is probed (ffprobe for most formats).
    A result longer than the query and ``PLACE_REACH`` on each side is searched
    only within ``PLACE_REACH`` of its window offset, and only that stretch is decoded.
    """
    from concurrent.futures import ThreadPoolExecutor

    from scipy.signal import resample_poly

    todo = [i for i, m in enumerate(matches[:PLACE_TOP])  # a copy is placed by the fingerprints already
            if not m.copy and (lengths is None or m.path in lengths)]  # fmt: skip
    out = list(matches)
    if not todo:
        return out
    query = resample_poly(np.asarray(samples, np.float32), PLACE_SR, _SR).astype(np.float32)
    known = lengths or {}
    with ThreadPoolExecutor(max_workers=min(2, len(todo)), thread_name_prefix="media-search-place") as pool:
        placed = list(pool.map(lambda i: _place_one(settings, query, matches[i], known.get(matches[i].path)), todo))
    for i, m in zip(todo, placed):
        out[i] = m
    return out


def _place_one(settings: Settings, query: np.ndarray, m: Match, length: float | None) -> Match:
    from ..decode.file import decode_sound
    from ..decode.stream import probe_seconds

    if length is None:
        length = probe_seconds(m.path, from_video=m.kind == "video")
    if length is None:
        return m
    q_len = query.size / PLACE_SR
    span = None
    if length > q_len + 4 * PLACE_REACH:  # long: the stretch around its window offset
        near = (m.timestamp or 0.0) - (m.query_timestamp or 0.0)  # where the windows put the query's start
        span = (max(0.0, near - PLACE_REACH), q_len + 2 * PLACE_REACH)
    try:
        cand = decode_sound(m.path, settings, from_video=m.kind == "video", sr=PLACE_SR, span=span).samples
    except (DecodeError, OSError) as e:
        log.debug("cannot place the query in %s: %s", m.path, e)
        return m
    corr, at, q_at = match_excerpt(query, cand, sr=PLACE_SR)
    if corr < PLACE_MIN_CORR:
        return m
    start = at - q_at + (span[0] if span else 0.0)  # where the query's start falls in the result
    return dataclasses.replace(m, timestamp=round(max(0.0, start), 3), query_timestamp=round(max(0.0, -start), 3))
