"""Video copies by their keyframes: keyframes that are pHash copies of each other at one time offset.

One rule for both places that say "this video is a copy of that one": a video query
(``query.search``, against the videos it ranks) and the library-wide report
(``duplicates.videos``). It reads only the keyframes' stored pHashes (``signals.image.phash``
of the prepared 224x224 pictures), so it holds whatever the embedding weights.

Enough keyframes of the shorter side must match: ``MIN_FRAMES``, or ``MIN_FRAME_SHARE`` of its
keyframes when it has fewer than twice that; a match is a pair within ``signals.image.HASH_COPY``
bits whose time offset agrees with the median offset of all matches (within 1.5 s, or 5 % of
the offset). One shared picture (a logo, an intro card) is not a copy; a re-encoded, resized or
trimmed excerpt is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .image import HASH_COPY, hamming_pairs

__all__ = ["MIN_FRAMES", "MIN_FRAME_SHARE", "FrameAgreement", "agreement", "hash_matches"]

#: Keyframes of the shorter video that must match (pHash within ``HASH_COPY``, one time offset).
MIN_FRAMES = 3
MIN_FRAME_SHARE = 0.5


@dataclass(frozen=True)
class FrameAgreement:
    """How two videos' keyframes agree: ``frames`` keyframes of the first match at ``offset`` seconds
    (second's time minus first's), the earliest at ``a_time`` / ``b_time``; ``need`` make a copy."""

    frames: int
    need: int
    offset: float
    a_time: float
    b_time: float

    @property
    def copy(self) -> bool:
        return self.frames >= self.need

    @property
    def confidence(self) -> float:
        return round(min(1.0, self.frames / max(self.need, 1)), 4)


def agreement(matches: Sequence[tuple[int, float, float]], n_a: int, n_b: int) -> FrameAgreement | None:
    """The verdict on ``matches``, (first video's keyframe, its time, the second's keyframe time) of
    each keyframe pair within ``HASH_COPY`` bits, for videos of ``n_a`` and ``n_b`` keyframes;
    None when there is no match."""
    if not matches:
        return None
    offsets = np.array([tb - ta for _, ta, tb in matches])
    centre = float(np.median(offsets))
    tol = max(1.5, 0.05 * abs(centre))
    agree = [m for m, o in zip(matches, offsets.tolist()) if abs(o - centre) <= tol]
    first = min(agree, key=lambda m: m[1])
    need = min(MIN_FRAMES, max(1, int(np.ceil(MIN_FRAME_SHARE * min(n_a, n_b)))))
    return FrameAgreement(len({a for a, _, _ in agree}), need, round(centre, 3), round(first[1], 3), round(first[2], 3))


def hash_matches(a: np.ndarray, a_times: np.ndarray, b: np.ndarray, b_times: np.ndarray) -> list[tuple[int, float, float]]:
    """``agreement``'s matches between two keyframe sequences: their pHashes (uint64) and times (s)."""
    i, j, _ = hamming_pairs(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64), HASH_COPY)
    return [(int(x), float(a_times[x]), float(b_times[y])) for x, y in zip(i.tolist(), j.tolist())]
