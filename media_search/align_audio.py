"""Place an audio query in a candidate: offset-consistent window scores and spectral alignment.

Two pure functions for the query side, both on numpy arrays:

``score_offsets(query_ts, query_vecs, cand_ts, cand_vecs)``
    Cnn14 window agreement at one consistent time offset. Every pair of query
    window *i* and candidate window *j* votes for the offset ``cand_ts[j] -
    query_ts[i]``; offsets are binned to ``tolerance`` and, per bin, each query
    window keeps its best similarity there. A bin's score is the mean over all
    query windows (a window with no partner at that offset counts 0, so one
    lucky window cannot win). Returns the best ``(score, offset)``; a query
    of one window reduces to the best single window.

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
"""

from __future__ import annotations

import numpy as np

__all__ = ["score_offsets", "spectral_features", "match_excerpt", "FRAME_S"]

FRAME_S = 0.02  # seconds per spectral frame
_SR = 32000


def score_offsets(
    query_ts: np.ndarray,
    query_vecs: np.ndarray,
    cand_ts: np.ndarray,
    cand_vecs: np.ndarray,
    *,
    tolerance: float = 1.25,
) -> tuple[float, float]:
    """Best ``(score, offset)``: mean best cosine of the query windows at one offset (s).

    ``offset`` is where the query's start falls in the candidate (may be negative
    when the candidate starts inside the query). Vectors must be unit-norm.
    """
    qt, ct = np.asarray(query_ts, float), np.asarray(cand_ts, float)
    if qt.size == 0 or ct.size == 0:
        return 0.0, 0.0
    sims = np.asarray(query_vecs, np.float32) @ np.asarray(cand_vecs, np.float32).T  # (m, n)
    offsets = ct[None, :] - qt[:, None]
    bins = np.round(offsets / tolerance).astype(np.int64)
    uniq, inv = np.unique(bins, return_inverse=True)
    best = np.zeros((qt.size, uniq.size), np.float32)  # per query window, per offset bin
    rows = np.broadcast_to(np.arange(qt.size)[:, None], sims.shape)
    np.maximum.at(best, (rows.ravel(), inv.ravel()), np.maximum(sims, 0).ravel())
    scores = best.mean(axis=0)
    k = int(np.argmax(scores))
    # the offset reported: the similarity-weighted mean of the pairs in the winning bin
    in_bin = inv.reshape(sims.shape) == k
    w = np.where(in_bin, np.maximum(sims, 0) + 1e-6, 0.0)
    return float(scores[k]), float((w * offsets).sum() / w.sum())


def spectral_features(samples: np.ndarray, sr: int = _SR) -> np.ndarray:
    """(32, frames) log-mel, lightly smoothed, per-band mean removed; 20 ms frames."""
    import librosa
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(samples, np.float32)
    hop = int(round(FRAME_S * sr))
    if x.size < 2048:
        x = np.pad(x, (0, 2048 - x.size))
    m = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=2048, hop_length=hop, n_mels=32, fmin=100, fmax=3800, power=1.0
    )
    f = np.log(m + 1e-4 * (float(m.max()) + 1e-9))
    f = uniform_filter1d(f, 3, axis=1)
    return (f - f.mean(axis=1, keepdims=True)).astype(np.float32)


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
