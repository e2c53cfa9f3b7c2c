"""Sampling helpers for ``video.py``: frame tests, downscaling, and the exact cut locator.

Every test works on a tiny grayscale thumbnail (``THUMB_SIZE``, area-averaged),
so it costs a fraction of a millisecond whatever the video's resolution, and
is insensitive to compression noise and small motion. Thresholds are on the
0..255 grey scale and were tuned on generated test videos and on the 720p
benchmark video (the ``video`` section of ``scripts/benchmark.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "MAX_SIDE",
    "THUMB_SIZE",
    "BLACK_LEVEL",
    "BLANK_STD",
    "DUPLICATE_MAD",
    "CUT_MAD",
    "thumbnail",
    "frame_difference",
    "is_black",
    "is_blank",
    "is_cut",
    "to_rgb_small",
    "CutLocator",
]

logger = logging.getLogger(__name__)

MAX_SIDE = 256
"""Keyframes are downscaled so that their shorter side is at most this many pixels."""

THUMB_SIZE = (48, 48)
"""(width, height) of the grey thumbnails that all frame tests compare."""

BLACK_LEVEL = 32.0
"""A frame is near-black when 98 % of its thumbnail is darker than this."""

BLANK_STD = 4.0
"""A frame is blank (one flat colour) when every channel's spread is below this."""

DUPLICATE_MAD = 3.0
"""Mean absolute thumbnail difference under which a frame repeats the last kept one."""

SAME_FRAME_MAD = 1.0
"""Thumbnail difference under which a re-decoded frame counts as the same frame."""

CUT_MAD = 30.0
"""Mean absolute thumbnail difference between two probes that suggests a scene cut.

On the 720p benchmark video, true cuts measured 54 to 156 and fast motion
(zooms, rotation, hue cycling, scrolling automata) at most 25, 0.27 s apart.
"""


def _shrink(bgr: np.ndarray) -> np.ndarray:
    """``THUMB_SIZE`` area average; large frames are first strided to about 4x that (fast)."""
    import cv2

    stride = max(1, min(bgr.shape[:2]) // (4 * THUMB_SIZE[1]))
    return cv2.resize(bgr[::stride, ::stride], THUMB_SIZE, interpolation=cv2.INTER_AREA)


def thumbnail(bgr: np.ndarray) -> np.ndarray:
    """Grey ``THUMB_SIZE`` float32 thumbnail of a BGR frame (0..255)."""
    import cv2

    small = _shrink(bgr)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return small.astype(np.float32)


def colour_spread(bgr: np.ndarray) -> float:
    """Largest per-channel standard deviation of a small colour thumbnail."""
    small = _shrink(bgr)
    small = small.reshape(-1, small.shape[-1] if small.ndim == 3 else 1)
    return float(small.std(axis=0).max())


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (0..255)."""
    return float(np.abs(a - b).mean())


def is_black(thumb: np.ndarray) -> bool:
    """Near-black: almost every pixel darker than ``BLACK_LEVEL``."""
    return float(np.percentile(thumb, 98)) < BLACK_LEVEL


def is_blank(bgr: np.ndarray) -> bool:
    """One flat colour (black, white, a colour card), with nothing to recognise."""
    return colour_spread(bgr) < BLANK_STD


def is_cut(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two probe thumbnails differ enough to suspect a scene cut between them.

    A grey histogram distance was tried too: it fired on hue cycling and added
    nothing that the pixel difference missed. Whether the change was abrupt (a
    cut) or gradual (motion, a fade) is decided when the cut is located.
    """
    return frame_difference(a, b) > CUT_MAD


def to_rgb_small(bgr: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """RGB uint8 copy of a BGR frame, shorter side at most ``max_side`` (INTER_AREA)."""
    import cv2

    h, w = bgr.shape[:2]
    short = min(h, w)
    if short > max_side:
        scale = max_side / short
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    if bgr.ndim == 2:
        rgb: Any = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    else:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


class CutLocator:
    """A second capture that re-reads the frames between two probes to find the exact cut.

    ``open_capture`` opens the file (lazily, on the first suspected cut).
    """

    def __init__(self, name: str, open_capture: Callable[[], Any]) -> None:
        self.name, self.open_capture = name, open_capture
        self.cap: Any = None
        self.usable = True
        self.seconds = 0.0

    def locate(
        self, a: int, thumb_a: np.ndarray, b: int, thumb_b: np.ndarray, *, allowed: bool = True
    ) -> tuple[int, np.ndarray | None] | None:
        """(first frame of the new scene, its BGR or None for frame b), or None if the change was gradual.

        With ``allowed`` false (over the caller's budget), frame b stands for the cut.
        """
        if b - a == 1 or not self.usable or not allowed:
            return b, None
        start = time.monotonic()
        try:
            return self._scan(a, thumb_a, b, thumb_b)
        finally:
            self.seconds += time.monotonic() - start

    def _scan(self, a: int, thumb_a: np.ndarray, b: int, thumb_b: np.ndarray) -> tuple[int, np.ndarray | None] | None:
        import cv2

        if self.cap is None:
            self.cap = self.open_capture()
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, a)
        ok, frame = self.cap.read()
        if not ok or frame_difference(thumbnail(frame), thumb_a) > SAME_FRAME_MAD:
            return self._give_up(b, f"seeking to frame {a} landed elsewhere")
        prev, best_j, best_d, best_frame = thumb_a, b, -1.0, None
        for j in range(a + 1, b + 1):
            ok, frame = self.cap.read()
            if not ok:
                return self._give_up(b, f"frame {j} unreadable after a seek")
            thumb = thumbnail(frame)
            d = frame_difference(prev, thumb)
            if d > best_d:
                best_j, best_d, best_frame = j, d, frame
            prev = thumb
        if frame_difference(prev, thumb_b) > SAME_FRAME_MAD:
            return self._give_up(b, "re-read frames differ from the first pass")
        if best_d < 0.5 * frame_difference(thumb_a, thumb_b):
            return None  # gradual change (motion, fade): no cut
        return best_j, (None if best_j == b else best_frame)

    def _give_up(self, b: int, why: str) -> tuple[int, None]:
        logger.debug("%s: cut positions approximate (%s)", self.name, why)
        self.usable = False
        return b, None

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
