"""Audio copy detection: a landmark fingerprint (spectral peak pairs, Wang 2003) and offset voting.

**Fingerprint.** Mono audio resampled to 8 kHz; STFT of 512 samples, hop 128
(16 ms frames, 15.6 Hz bins); peaks are local maxima of the log spectrum in a
15-frame x 15-bin neighbourhood, at most ``PEAKS_PER_S`` per second (the
strongest in each 1 s block, so loud and quiet passages both get peaks), and
since v2 the moments a glide crosses every 6th bin (``sweeps.crossings``). Each
anchor is paired with up to ``FAN_OUT`` later points of its sort (peaks with
peaks, crossings with crossings) at most 1 s ahead and at most 64 bins away; a
pair ``(f1, f2, dt)`` is a 23-bit hash. Stored form: ``hash << 31 |
anchor_frame`` in one int64 (``pack``), so a row carries hashes with their
times in one ARRAY<INT64> field that both Milvus Lite and Milvus 2.3 store.

**Matching** (``match``): query hashes are looked up in a candidate's
(numpy, sorted), each hit votes for the time offset ``t_lib - t_query``, and a
copy is a peak in that offset histogram: ``votes`` distinct query pairs in one
32 ms offset bin (or its neighbour), counted as distinct 96 ms slots of
query time (a held note that happens to match votes once; a copy matches
throughout). The peak gives the offset in seconds.

**Tempo.** A tempo change of +-5 % stretches every ``dt`` (pitch is kept). ``dt``
is quantised to 2 frames and the query is hashed under the time-scale
hypotheses ``SCALES`` (0.95 ... 1.05, step 2.5 %): under the right one every
rescaled ``dt`` is within a frame of the original's, and anchor times are
rescaled too so the offset stays one bin. The best hypothesis wins.

``decide`` turns votes into ``copy`` / ``confidence`` (calibrated on
``scripts/bench_copy.py``; unrelated files stay under 8 votes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .sweeps import SWEEP_PER_S, crossings

__all__ = [
    "FP_VERSION",
    "FP_RATE",
    "FRAME_S",
    "Pairs",
    "AudioMatch",
    "AudioEvidence",
    "landmarks",
    "pack",
    "stored_pairs",
    "split_by_time",
    "match",
    "decide",
    "decide_match",
    "outvoted",
    "hash_join",
    "slots",
]

FP_VERSION = "landmark-8k-512-128-v2"
FP_RATE = 8000
N_FFT = 512
HOP = 128
FRAME_S = HOP / FP_RATE  # 16 ms
PEAKS_PER_S = 30
TILE = 6  # frames (96 ms)
FAN_OUT = 6
MAX_DT = 62  # frames (~1 s)
MAX_DF = 63  # bins
F_LO, F_HI = 4, 250  # bins kept: ~60 Hz .. 3.9 kHz
SCALES = (1.0, 0.975, 1.025, 0.95, 1.05)
#: Added to a crossing's bin in ``_peaks``' output: ``_pairs`` pairs peaks with peaks (the v1 pairs,
#: unchanged) and crossings with crossings, never one with the other.
CROSSING = 1 << 9
REACH = 2 * (PEAKS_PER_S + SWEEP_PER_S)  # points within 1 s of one: at most two 1 s blocks' worth
_TIME_BITS = 31

# Calibrated on real recordings (``scripts/bench_copy.py --only audio-real``, calibration half: 50
# sources x 7 edit families against 1,100 clips, 100 unrelated recordings). Votes alone overlap:
# edited copies of 1 to 5 s got 4 to 40 votes, unrelated sounds up to 22 (a string pad against
# another, spread over many offsets). A copy is a *sharp* peak covering most of the query: at least
# ``MIN_VOTES`` votes, on at least ``MIN_COVER`` of the query's 96 ms slots that have landmarks,
# and no other offset with more than ``MAX_RUNNER_UP`` of the winner's votes. Copies: cover 0.5 to
# 1.0, runner-up at most 0.33 of the votes; unrelated pairs with 9+ votes: cover 0.22 to 0.87 with
# a runner-up of 0.6 to 0.95 (a margin of 1 to 5 votes).
_VOTES_LO, _VOTES_HI = 6, 10
MIN_VOTES = 9
MIN_COVER = 0.5
MAX_RUNNER_UP = 0.5
MIN_MARGIN = 8  # or this many votes above the runner-up (music that repeats itself within 1 s)
#: Or the query recurs in the library file (``AudioMatch.repeats``): it lies wholly inside the
#: file at the winning offset, agrees there on at least ``REPEAT_COVER`` of its slots, and the votes
#: gather at no more than ``REPEAT_PEAKS`` offsets (bins with half the best bin's votes). A loop: a
#: 4 s excerpt of a piece that repeats every 14.4 s got 47 votes on 41 slots with a runner-up of 42,
#: in 4 such bins. Two unrelated string pads agree on most slots too, but spread over a plateau of
#: offsets (7 to 48 such bins), or at the edge of a library file shorter than the query.
REPEAT_COVER = 0.95
REPEAT_PEAKS = 6
#: A second copy of the same query stretch must match it nearly as well as the best one does.
#: Unrelated sounds never reach ``decide``'s bar (0/100 unrelated recordings flagged), but another
#: *take* of the same words by the same speaker can: tuxpaint's spoken descriptions, flagged next
#: to their source (47 on the calibration half), have 0.34 to 0.74 of the best copy's votes and hit
#: 0.35 to 0.72 of their stretch's slots. The cost: a library's second edited copy of a recording
#: (one source's edits queried with each other, 2,760 flags) is demoted in 2.9 % of cases
#: (``scripts/bench/flag_rules.py``, calibration half; README, "Audio copies on real recordings").
OUTVOTED_RATIO = 0.75
OUTVOTED_HITS = 0.65
#: A copy repeats the query's landmarks, not only its rhythm: at least this share of the query's
#: landmark pairs in the matched stretch hit at the winning offset (``AudioMatch.pair_share``).
#: Another take of the same words by the same speaker agrees on the slots (one shared pair in 96 ms
#: is a vote) but on few of their pairs. Calibration half (``scripts/bench/flag_rules.py``): the
#: flagged other takes hit 0.032 to 0.162 of their pairs (16 of 31 under 0.08, among them the one
#: that ``outvoted`` leaves); the sources, every edit family, 0.098 to 1.0 (noise at 10 dB SNR
#: lowest; short clips 0.104, tempo 0.115, mp3 0.108). Not asked of a weak copy whose waveform
#: agrees with the query's (``decide``'s ``heard``, ``signals.waveform``: a noisy copy of a song
#: can hit 0.025); asked where the samples were not compared, or agree by their spectra alone.
MIN_PAIR_SHARE = 0.08
_VOTES_FULL = 20  # votes scale of the confidence
COPY_THRESHOLD = 0.5
#: What "the query" is for ``MIN_COVER`` (``AudioMatch.cover``): the query's slots from this many
#: seconds before its first hit at the winning offset to as many after its last, where the library
#: file has sound at that offset. A query of up to 10 s is covered whole (as calibrated); in a
#: long recording, a stretch that matches throughout is a copy however much else the recording
#: holds (a 3-minute excerpt in 20 minutes of other sound: 2,133 votes on 12,109 slots in all).
COVER_PAD_S = 10.0


@dataclass(frozen=True)
class Pairs:
    """Landmark pairs of one sound: anchor frequency bin, target bin, frame gap, anchor frame."""

    f1: np.ndarray
    f2: np.ndarray
    dt: np.ndarray
    t1: np.ndarray

    def __len__(self) -> int:
        return len(self.t1)

    def hashes(self, scale: float = 1.0) -> np.ndarray:
        """23-bit hashes; ``scale`` stretches gaps (a tempo hypothesis)."""
        dt = np.rint(self.dt * scale).astype(np.int64) if scale != 1.0 else self.dt.astype(np.int64)
        return (self.f1.astype(np.int64) << 14) | (self.f2.astype(np.int64) << 5) | np.clip(dt // 2, 0, 31)


@dataclass(frozen=True)
class AudioMatch:
    votes: int  # query time slots agreeing on one offset
    offset: float  # s: library time = query time * scale + offset
    scale: float  # the tempo hypothesis that won
    hits: int  # all hash hits, any offset
    runner_up: int = 0  # votes of the best offset away from the winner (a copy has one sharp peak)
    cover: int = 0  # the query slots a copy at this offset should match (``COVER_PAD_S``); 0: unknown
    repeats: bool = False  # the whole query, at this offset and a few others (``REPEAT_COVER``)
    hit_share: float = 0.0  # of the ``cover`` slots, the share with a hit at this offset
    span: tuple[float, float] = (0.0, 0.0)  # s: the query stretch from the first to the last agreeing slot
    pair_share: float = 1.0  # of the query's landmark pairs in the ``cover`` stretch, the share that hit at this offset


@dataclass(frozen=True)
class AudioEvidence:
    copy: bool
    confidence: float
    votes: int


def _resample(samples: np.ndarray, sr: int) -> np.ndarray:
    from ..decode.audio import resample

    x = np.asarray(samples, dtype=np.float32)
    if x.ndim > 1:
        x = x.mean(axis=1)
    return resample(x, int(sr), FP_RATE, method="poly")


def _spectrogram(x: np.ndarray) -> np.ndarray:
    """Log magnitude, (bins, frames)."""
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    mag = np.abs(np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1)).T
    return np.log(mag + 1e-6).astype(np.float32)


def _peaks(spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, bins) of the kept peaks and sweep crossings (``sweeps.crossings``; their bins plus
    ``CROSSING``), sorted by time.

    A peak is a maximum over 15 bins in frequency and, in time, over a
    sliding window of ``2 * TILE + 1`` frames or over its tile of ``TILE``
    frames. The window alone misses held notes (a slowly decaying tone has no
    window maximum after its onset, but one in every tile); tiles alone miss
    sweeps (the tile phase moves the peak along the sweep).
    """
    from scipy.ndimage import maximum_filter1d

    s = spec[F_LO:F_HI]
    n = s.shape[1]
    pad = (-n) % TILE
    fmax = maximum_filter1d(s, size=15, axis=0, mode="constant", cval=-np.inf)
    tiles = np.pad(fmax, ((0, 0), (0, pad)), constant_values=-np.inf).reshape(s.shape[0], -1, TILE).max(axis=2)
    tmax = np.repeat(tiles, TILE, axis=1)[:, :n]
    window = maximum_filter1d(fmax, size=2 * TILE + 1, axis=1, mode="constant", cval=-np.inf)
    local = (s == fmax) & ((s == tmax) | (s == window)) & (s > np.log(1e-3))
    floor = np.median(s, axis=0)
    pf, pt = _strongest(s, floor, *np.nonzero(local), PEAKS_PER_S)
    cf, ct = _strongest(s, floor, *np.nonzero(crossings(s, fmax, F_LO)), SWEEP_PER_S)
    t, f = np.concatenate([pt, ct]), np.concatenate([pf + F_LO, cf + (F_LO + CROSSING)])
    order = np.argsort(t, kind="stable")  # time order; within a frame, peaks by strength, then crossings
    return t[order], f[order]


def _strongest(s: np.ndarray, floor: np.ndarray, f: np.ndarray, t: np.ndarray, per_s: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``per_s`` strongest of the points ``(f, t)`` in each 1 s block; strength is relative to
    the frame's median (``floor``): a steady noise floor raises every bin, not the peaks' rank."""
    if len(t) == 0:
        return f, t
    strength = s[f, t] - floor[t]
    block = (t * FRAME_S).astype(np.int64)  # 1 s blocks
    order = np.lexsort((-strength, block))
    b_sorted = block[order]
    rank = np.arange(len(order)) - np.searchsorted(b_sorted, b_sorted, side="left")
    keep = order[rank < per_s]
    return f[keep], t[keep]


def landmarks(samples: np.ndarray, sr: int) -> Pairs:
    """Landmark pairs of mono (or multi-channel) audio at ``sr`` Hz."""
    x = _resample(samples, sr)
    t, f = _peaks(_spectrogram(x))
    return _pairs(t, f)


def _pairs(t: np.ndarray, f: np.ndarray) -> Pairs:
    """Pairs of points (frames ``t``, bins ``f`` from ``_peaks``, in time order): each with its first
    ``FAN_OUT`` targets of its own sort (peaks with peaks, crossings with crossings)."""
    n = len(t)
    kind = np.asarray(f) >= CROSSING
    f = np.asarray(f) % CROSSING
    reach = np.arange(1, REACH + 1)
    j = np.arange(n)[:, None] + reach[None, :]
    inside = j < n
    jc = np.minimum(j, max(n - 1, 0))
    dt = t[jc] - t[:, None] if n else np.zeros((0, len(reach)), dtype=np.int64)
    df = np.abs(f[jc].astype(np.int64) - f[:, None].astype(np.int64)) if n else dt
    ok = inside & (dt >= 1) & (dt <= MAX_DT) & (df >= 2) & (df <= MAX_DF)
    ok &= kind[jc] == kind[:, None]
    ok &= np.cumsum(ok, axis=1) <= FAN_OUT  # the first FAN_OUT targets in time
    a, col = np.nonzero(ok)
    b = a + reach[col]
    return Pairs(f[a].astype(np.int32), f[b].astype(np.int32), (t[b] - t[a]).astype(np.int32), t[a].astype(np.int64))


def pack(p: Pairs) -> np.ndarray:
    """The stored form: ``hash << 31 | anchor_frame`` (int64), in time order."""
    return (p.hashes() << _TIME_BITS) | np.minimum(p.t1, (1 << _TIME_BITS) - 1)


def unpack(packed: np.ndarray, dtype: type = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, anchor frames) of packed values; ``dtype=np.int32`` holds both (23-bit hashes,
    31-bit frames) in half the memory."""
    v = np.asarray(packed, dtype=np.int64)
    return (v >> _TIME_BITS).astype(dtype, copy=False), (v & ((1 << _TIME_BITS) - 1)).astype(dtype, copy=False)


def stored_pairs(packed: np.ndarray) -> Pairs:
    """The landmark pairs of stored (``pack``) values, to match as a query: each gap as the odd
    frame count of its hash's 2-frame step (the stored form keeps no finer), so its own hash
    is unchanged and a tempo hypothesis moves it from the step's middle."""
    h, t = unpack(packed)
    return Pairs((h >> 14).astype(np.int32), ((h >> 5) & 511).astype(np.int32), ((h & 31) * 2 + 1).astype(np.int32), t)


def split_by_time(packed: np.ndarray, starts: Sequence[float], *, cap: int = 4096) -> list[np.ndarray]:
    """Share packed values among rows starting at ``starts`` (s, ascending): each value goes to the
    last row starting at or before its anchor (the first row takes anything earlier); at most ``cap``
    values per row, the earliest kept."""
    if not len(starts):
        return []
    _, t = unpack(packed)
    edges = np.asarray(starts, dtype=np.float64)[1:] / FRAME_S
    row = np.searchsorted(edges, t, side="right")
    return [packed[row == i][:cap] for i in range(len(starts))]


def match(query: Pairs, files: Iterable[np.ndarray]) -> list[AudioMatch]:
    """Score each candidate (its packed values, any order) against the query's pairs.

    One file at a time: what a query holds for matching is one file's landmarks and its join, not
    all candidates' at once (an 8-hour library file is 5 M landmarks)."""
    if len(query) == 0:
        return [AudioMatch(0, 0.0, 1.0, 0) for _ in files]
    q_slots = np.unique(query.t1 // TILE)
    return [_match_file(query, np.asarray(f, dtype=np.int64), q_slots) for f in files]


def _match_file(query: Pairs, packed: np.ndarray, q_slots: np.ndarray) -> AudioMatch:
    best = AudioMatch(0, 0.0, 1.0, 0)
    if not len(packed):
        return best
    # by hash, then time: the order ``hash_join`` thins in; as int32, half the memory of int64 (a
    # 16-hour file holds 10 M landmarks), and the query's hashes are cast to match, so no search
    # casts the file's
    lib_h, lib_t = unpack(np.sort(packed), np.int32)
    span = (int(lib_t.min()), int(lib_t.max()))  # the file's landmark span (frames)
    for scale in SCALES:
        qi, li = hash_join(lib_h, query.hashes(scale).astype(np.int32))
        if not len(li):
            continue
        offsets = lib_t[li] - query.t1[qi] * scale  # frames
        b, t = np.floor(offsets / 2.0).astype(np.int64), query.t1[qi]
        del li
        votes, best_bin, runner_up, peaks = _peak(b, t)
        near = np.abs(b - best_bin) <= 1
        off = float(np.median(offsets[near]))  # frames
        lo, hi = _window(t[near], off, scale, span)
        del offsets
        cover = int(np.searchsorted(q_slots, hi // TILE, side="right") - np.searchsorted(q_slots, lo // TILE))
        if cover < len(q_slots):  # a long query: the copy is the stretch around its hits, count there
            inside = (t >= lo) & (t <= hi)
            if inside.any():
                votes, _, runner_up, peaks = _peak(b[inside], t[inside])
        if votes > best.votes:
            whole = cover >= len(q_slots)  # the query lies inside the file at this offset
            repeats = whole and votes >= REPEAT_COVER * len(q_slots) and peaks <= REPEAT_PEAKS
            agree = near & (t >= lo) & (t <= hi)
            hit = np.unique(t[agree] // TILE)  # the slots that agree here
            stretch = (round(float(hit[0]) * TILE * FRAME_S, 3), round(float(hit[-1] + 1) * TILE * FRAME_S, 3)) if len(hit) else (0.0, 0.0)
            n_pairs = int(np.count_nonzero((query.t1 >= lo) & (query.t1 <= hi)))
            best = AudioMatch(votes, round(off * FRAME_S, 3), scale, len(b), runner_up, cover, repeats,
                              round(len(hit) / max(cover, 1), 4), stretch,
                              round(len(np.unique(qi[agree])) / max(n_pairs, 1), 4))  # fmt: skip
        del qi
    return best


def _window(hit_t: np.ndarray, off: float, scale: float, span: tuple[int, int]) -> tuple[int, int]:
    """The query frames a copy at offset ``off`` (frames) should match throughout: within
    ``COVER_PAD_S`` of its hits (query frames ``hit_t``) and where the library file's landmarks
    (frames ``span``) lie at that offset."""
    pad, slack = COVER_PAD_S / FRAME_S, 8  # frames; slack: hits in the bins beside the offset's
    t = np.unique(hit_t)
    runs = np.split(t, np.flatnonzero(np.diff(t) > pad) + 1)  # stretches of hits, split at gaps over the pad
    run = max(runs, key=len)  # the copy: stray agreements elsewhere in a long query do not widen it
    lo = max(float(run[0]) - pad, (span[0] - off) / scale - slack)
    hi = min(float(run[-1]) + pad, (span[1] - off) / scale + slack)
    return int(np.floor(lo)), int(np.ceil(hi))


#: (query landmark, library posting) pairs one ``hash_join`` makes at most. A long, repetitive query
#: (an hour of music that repeats itself, against a library holding that hour) would otherwise make
#: a join that grows with the product of the two durations: 12 GB and 20 minutes for one hour.
JOIN_BUDGET = 2_000_000


def hash_join(lib_h: np.ndarray, qh: np.ndarray, *, budget: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every (query landmark, library posting) pair with the same hash: their indices into ``qh`` and
    into ``lib_h`` (sorted). The one lookup of copy matching (``match``, ``print_index.vote``).

    Past ``budget`` pairs, the most common hashes are thinned first (as search engines drop stop
    words): each query hash keeps at most ``cap`` of its postings, spread evenly over them, with
    ``cap`` the largest that fits the budget (never below one). Rare hashes, the ones that tell
    files apart, keep all theirs, so memory and time stay linear in the query's length."""
    lo = np.searchsorted(lib_h, qh, side="left")
    hi = np.searchsorted(lib_h, qh, side="right")
    n = hi - lo
    budget = JOIN_BUDGET if budget is None else budget
    take = n if int(n.sum()) <= budget else np.minimum(n, _cap(n, budget))
    qi = np.repeat(np.arange(len(qh)), take)
    j = np.arange(int(take.sum())) - np.repeat(take.cumsum() - take, take)  # 0 .. take[i] - 1 for each i
    if take is n:
        return qi, np.repeat(lo, n) + j
    return qi, np.repeat(lo, take) + (j * np.repeat(n, take)) // np.maximum(np.repeat(take, take), 1)


def _cap(n: np.ndarray, budget: int) -> int:
    """The largest ``c`` >= 1 with ``sum(min(n, c)) <= budget`` (1 when even that is over)."""
    ns = np.sort(n)
    below = np.concatenate([[0], np.cumsum(ns)])
    lo, hi = 1, int(ns[-1])
    while lo < hi:  # sum(min(n, c)) grows with c
        c = (lo + hi + 1) // 2
        k = int(np.searchsorted(ns, c, side="right"))
        if int(below[k]) + (len(ns) - k) * c <= budget:
            lo = c
        else:
            hi = c - 1
    return lo


def _peak(bins: np.ndarray, t: np.ndarray) -> tuple[int, int, int, int]:
    """Votes at the best offset (two adjacent bins), that bin, the best votes more than two bins
    away, and how many bins hold at least half the best bin's votes. A vote is a distinct
    ``TILE``-frame slot of query time with a hit at that offset: the many pairs of one held note
    that happens to match count once, a real copy matches throughout."""
    tiles = t // TILE
    span = int(tiles.max()) + 1
    slots = np.unique((bins - bins.min()) * span + tiles)  # distinct (bin, slot), as one sortable key
    ub, counts = np.unique(slots // span + bins.min(), return_counts=True)

    def at(x: np.ndarray) -> np.ndarray:  # the counts at bins ``x``, 0 where there is none
        i = np.minimum(np.searchsorted(ub, x), len(ub) - 1)
        return np.where(ub[i] == x, counts[i], 0)

    totals = counts + np.maximum(at(ub - 1), at(ub + 1))
    j = int(np.argmax(totals))  # the first best, as bins ascend
    far = np.abs(ub - ub[j]) > 2
    peaks = int(np.count_nonzero(counts >= 0.5 * counts.max()))
    return int(totals[j]), int(ub[j]), int(totals[far].max()) if far.any() else 0, peaks


def slots(query: Pairs) -> int:
    """The query's 96 ms slots that hold a landmark (what ``AudioMatch.votes`` counts)."""
    return int(len(np.unique(query.t1 // TILE))) if len(query) else 0


def decide(votes: int, n_slots: int | None = None, runner_up: int = 0, repeats: bool = False,
           outvoted: bool = False, pair_share: float = 1.0, heard: bool | None = None) -> AudioEvidence:  # fmt: skip
    """A match as a copy verdict and a 0..1 confidence (0.5 and up: a copy).

    With ``n_slots`` (``slots(query)``), the calibrated rule above; without it, votes alone (the
    generated-tune calibration of ``FP_VERSION`` v1, kept for callers that have no query).
    ``outvoted``: another copy matches the same stretch far better (``outvoted``): not a copy.
    ``pair_share``: ``AudioMatch.pair_share``; under ``MIN_PAIR_SHARE``, not a copy, unless
    ``heard``: whether the library file's samples were found to be the query's (``signals.waveform``):
    False, not a copy; True, the pair share is not asked; None (not compared), it is."""
    if n_slots is None:
        conf = min(1.0, max(0.0, (votes - _VOTES_LO) / (_VOTES_HI - _VOTES_LO)))
        return AudioEvidence(conf >= COPY_THRESHOLD, round(conf, 4), int(votes))
    # one sharp peak; or a clear margin (music that repeats itself within 1 s); or the whole query
    # at a few places (``AudioMatch.repeats``: a loop)
    clear = runner_up <= MAX_RUNNER_UP * votes or votes - runner_up >= MIN_MARGIN or repeats
    sharp = (votes >= MIN_VOTES and votes >= MIN_COVER * max(n_slots, 1) and clear and not outvoted
             and (heard or (heard is None and pair_share >= MIN_PAIR_SHARE)))  # fmt: skip
    if sharp:
        conf = 0.5 + 0.5 * (1.0 - float(np.exp(-(votes - MIN_VOTES) / _VOTES_FULL)))  # more votes, higher: ties are rare
    else:
        conf = 0.49 * min(1.0, votes / _VOTES_FULL)
    return AudioEvidence(sharp, round(conf, 4), int(votes))


def decide_match(m: AudioMatch, n_slots: int, *, outvoted: bool = False, heard: bool | None = None) -> AudioEvidence:
    """``decide`` on a ``match`` result: its votes on its ``cover`` (the query's ``n_slots`` when
    the match has none), its runner-up, its repeats and its pair share."""
    return decide(m.votes, m.cover or n_slots, m.runner_up, m.repeats, outvoted, m.pair_share, heard)


def outvoted(m: AudioMatch, stronger: AudioMatch) -> bool:
    """Whether copy ``m`` is only a likeness of the query stretch that copy ``stronger`` matches:
    the two stretches overlap by half the shorter, and ``m`` has under ``OUTVOTED_RATIO`` of its
    votes and hits under ``OUTVOTED_HITS`` of its own slots. A stretch of a long query that only
    ``m`` matches (a second sound in a soundtrack) is never outvoted."""
    (a0, a1), (b0, b1) = m.span, stronger.span
    overlap = min(a1, b1) - max(a0, b0)
    same = overlap >= 0.5 * max(min(a1 - a0, b1 - b0), 0.0) and overlap > 0
    return same and m.votes < OUTVOTED_RATIO * stronger.votes and m.hit_share < OUTVOTED_HITS
