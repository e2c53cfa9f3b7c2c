"""Video decoding with OpenCV: ``probe_video`` and the streaming ``iter_keyframes``.

How keyframes are chosen (one sequential pass, memory flat):

* Every frame is *grabbed* (decoded, no colour conversion); only a few are
  *retrieved* (converted to BGR): the **samples** at ``k * interval`` and
  **probes** every ``PROBE_SECONDS``. Timestamps are ``frame index / fps``
  (``CAP_PROP_POS_MSEC`` is unreliable in some containers).
* **Cuts** are suspected when two consecutive probes' 48x48 grey thumbnails
  differ by more than ``CUT_MAD``, and located to the frame:
  - encoders put a keyframe at most scene cuts, so a demux-only pre-pass
    (packets, no decoding: cheap) lists the
    keyframes, and frames ``K-1`` and ``K`` of every keyframe ``K`` are probed
    too: a cut at a keyframe shows up between two adjacent probes, for free;
  - otherwise a second capture seeks to the earlier probe, checks that it
    landed on the identical frame, and reads the few frames up to the later
    probe to find the biggest single jump. If no single step carries half of
    the change, it was motion or a fade, not a cut. OpenCV's seek decodes
    again from the keyframe before ``target - 16`` (costly: up to seconds per
    cut), so this path has a budget (``SEEK_BUDGET``, estimated
    from the keyframe list before seeking); past it, or where seeking proves
    unreliable, the later probe stands for the cut (at most ``PROBE_SECONDS``
    late).
* Why not seek for the samples too: each seek decodes again from a keyframe,
  so seeking to every sample costs several times decoding every frame on a
  typical H.264 video (README, "Benchmarks"). Seeking only wins when the
  interval is much longer than the GOP, and then cuts would go unseen. Grabbing every frame is correct in every container and skips the
  colour conversion of all but about one frame in eight.
* Black, blank (one flat colour) and near-duplicate frames (against the last
  kept one) are dropped; see ``keyframes.py`` for the thresholds.
* ``max_frames`` caps the samples: a long video gets a wider interval, and a
  note says so. Cut frames have a budget of ``max_frames`` too.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DecodeError, MediaSearchError, UnsupportedMediaError
from . import refuse_empty
from .keyframes import (
    DUPLICATE_MAD,
    MAX_SIDE,
    CutLocator,
    frame_difference,
    is_black,
    is_blank,
    is_cut,
    thumbnail,
    to_rgb_small,
)

__all__ = ["header_seconds", "MAX_SIDE", "VideoInfo", "Keyframe", "probe_video", "iter_keyframes"]

PROBE_SECONDS = 0.25
"""Spacing of the cheap probe frames used to detect cuts."""

DEFAULT_FPS = 25.0
"""Frame rate assumed when the container reports none, or an absurd one."""

MAX_FPS = 1000.0

SEEK_BUDGET = 0.1
SEEK_ALLOWANCE = 5.0
"""Locating cuts may decode again at most ``SEEK_BUDGET`` of the frames so far,
plus ``SEEK_ALLOWANCE`` seconds of video (or, without a keyframe list, take that
share of the time)."""


@dataclass(frozen=True)
class VideoInfo:
    duration: float  # seconds
    fps: float
    frame_count: int
    width: int
    height: int


@dataclass(frozen=True)
class Keyframe:
    timestamp: float  # seconds from the start
    rgb: np.ndarray  # HxWx3 uint8 RGB, shorter side at most MAX_SIDE
    reason: str  # "interval" or "cut"


def probe_video(path: str | Path) -> VideoInfo:
    """Size, frame rate, frame count and duration of a video, after decoding its first frame."""
    p = _check_path(path)
    cap = _open(p, 30.0)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise DecodeError(f"{p.name} opens as a video but has no decodable frame; it is corrupt or truncated.", path=p)
        height, width = frame.shape[:2]
        fps = _sane_fps(cap) or DEFAULT_FPS
        count = _frame_count(cap)
    finally:
        cap.release()
    if count <= 0:
        count, _ = _scan_packets(p, _Clock(p, 60.0))
    return VideoInfo(duration=count / fps, fps=fps, frame_count=count, width=width, height=height)


def header_seconds(path: str | Path) -> float | None:
    """The duration a video's header declares (frame count over frame rate), read without decoding
    a frame or starting a process; None when it declares none or cannot be opened."""
    try:
        cap = _open(_check_path(path), 30.0)
    except (DecodeError, UnsupportedMediaError):
        return None
    try:
        fps, count = _sane_fps(cap), _frame_count(cap)
    finally:
        cap.release()
    return count / fps if fps and count else None


def iter_keyframes(
    path: str | Path,
    *,
    interval: float = 1.0,
    max_frames: int = 600,
    timeout: float = 120.0,
    notes: list[str] | None = None,
) -> Iterator[Keyframe]:
    """Stream the keyframes of a video in time order (see the module docstring).

    Human-readable remarks (widened interval, truncated file, nothing kept) are
    appended to ``notes``. Raises ``UnsupportedMediaError`` or ``DecodeError``
    (also when the decoder makes no progress for longer than ``timeout`` seconds,
    not counting the time the caller spends between frames: a long video that
    keeps decoding is not cut short).
    """
    if not interval > 0 or max_frames < 1:
        raise ValueError("interval must be > 0 and max_frames >= 1")
    notes = [] if notes is None else notes
    p = _check_path(path)
    clock = _Clock(p, timeout)
    cap = _open(p, timeout)
    locator = CutLocator(p.name, lambda: _open(p, timeout))
    try:
        for kf in _sample(cap, locator, p, interval, max_frames, clock, notes):
            clock.pause()
            yield kf
            clock.resume()
    finally:
        cap.release()
        locator.release()


def _sample(
    cap: Any, locator: CutLocator, p: Path, interval: float, max_frames: int, clock: _Clock, notes: list[str]
) -> Iterator[Keyframe]:
    fps = _sane_fps(cap)
    if fps is None:
        notes.append(f"frame rate unknown: timestamps assume {DEFAULT_FPS:g} fps")
        fps = DEFAULT_FPS
    count = _frame_count(cap)
    step = interval
    if count > 0:
        last_t = (count - 1) / fps
        if math.floor(last_t / interval + 1e-9) + 1 > max_frames:
            step = math.ceil(last_t / (max_frames - 1) * 10) / 10 if max_frames > 1 else math.inf
            notes.append(f"long video: sampled every {step:.1f} s instead of {interval:g} s (cap {max_frames} frames)")
    probe_every = max(1, round(fps * min(PROBE_SECONDS, step)))
    _, keys = _scan_packets(p, clock, max_key_density=1.0 / (2 * probe_every))
    key_probes = {j for k in keys or () if k > 0 for j in (k - 1, k)}
    seek_frames = 0  # frames the cut locator decoded, estimated from the keyframe list

    last_kept: np.ndarray | None = None
    fallback: Keyframe | None = None  # first non-blank probe, in case no sample survives
    kept = samples = cuts = 0
    next_sample = 0.0
    prev: tuple[int, np.ndarray] | None = None  # previous probe: index, thumbnail
    i = -1

    def consider(idx: int, bgr: np.ndarray, thumb: np.ndarray, reason: str) -> Keyframe | None:
        nonlocal last_kept, kept
        if is_black(thumb) or is_blank(bgr):
            return None
        if last_kept is not None and frame_difference(thumb, last_kept) < DUPLICATE_MAD:
            return None
        last_kept = thumb
        kept += 1
        return Keyframe(timestamp=idx / fps, rgb=to_rgb_small(bgr), reason=reason)

    while True:
        clock.check()
        if not cap.grab():
            break
        i += 1
        t = i / fps
        is_sample = t + 0.5 / fps >= next_sample
        if not is_sample and i % probe_every and i not in key_probes:
            continue
        ok, bgr = cap.retrieve()
        if not ok or bgr is None:
            continue
        thumb = thumbnail(bgr)
        cut_at = -1
        if prev is not None and cuts < max_frames and is_cut(prev[1], thumb):
            # OpenCV seeks to the keyframe before (target - 16) and decodes from there.
            allowed = locator.seconds <= max(0.5, SEEK_BUDGET * clock.elapsed())
            if keys and allowed:
                cost = i - keys[max(0, bisect.bisect_right(keys, prev[0] - 16) - 1)]
                allowed = seek_frames + cost <= SEEK_BUDGET * i + SEEK_ALLOWANCE * fps
                seek_frames += cost if allowed else 0
            found = locator.locate(prev[0], prev[1], i, thumb, allowed=allowed)
            if found is not None:
                cut_at, cut_bgr = found
                if cut_bgr is None:
                    cut_bgr = bgr
                kf = consider(cut_at, cut_bgr, thumbnail(cut_bgr), "cut")
                if kf is not None:
                    cuts += 1
                    yield kf
        if is_sample:
            samples += 1
            while next_sample <= t + 0.5 / fps:
                next_sample += step
            if count <= 0 and samples >= max_frames and samples % max_frames == 0:
                step *= 2
                notes.append(f"long video: sampled every {step:.1f} s after {samples} frames (cap {max_frames} frames)")
            if cut_at != i:
                kf = consider(i, bgr, thumb, "interval")
                if kf is not None:
                    yield kf
        if kept == 0 and fallback is None and not (is_black(thumb) or is_blank(bgr)):
            fallback = Keyframe(timestamp=t, rgb=to_rgb_small(bgr), reason="interval")
        prev = (i, thumb)

    if i < 0:
        raise DecodeError(f"{p.name} opens as a video but has no decodable frame; it is corrupt or truncated.", path=p)
    if count > 0 and count - (i + 1) > max(2, 0.5 * fps):
        notes.append(f"video ends early at {(i + 1) / fps:.1f} s of {count / fps:.1f} s (file truncated?)")
    if kept == 0:
        if fallback is not None:
            yield fallback
        else:
            notes.append("every sampled frame is black or blank: no keyframe kept")


class _Clock:
    """Decoding progress of one file: ``check`` raises when the decoder made no progress (the time
    between two checks) for longer than the limit, not counting the time the consumer holds a
    frame. A long video that keeps decoding is never cut short; a stalled one is stopped.
    ``elapsed`` is the whole decoding time, for the cut locator's budget."""

    def __init__(self, path: Path, limit: float) -> None:
        self.path, self.limit, self.spent = path, limit, 0.0
        self.start = self.mark = time.monotonic()
        self.waited = 0.0  # decoding time since the last check

    def elapsed(self) -> float:
        return self.spent + time.monotonic() - self.start

    def check(self) -> None:
        now = time.monotonic()
        if self.waited + now - self.mark > self.limit:
            raise DecodeError(
                f"decoding {self.path.name} made no progress for longer than {self.limit:g} s; "
                "the file may be damaged, or raise the time limit.",
                path=self.path,
            )
        self.mark, self.waited = now, 0.0

    def pause(self) -> None:
        now = time.monotonic()
        self.spent += now - self.start
        self.waited += now - self.mark

    def resume(self) -> None:
        self.start = self.mark = time.monotonic()


def _check_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        raise UnsupportedMediaError(f"{p.name} is a directory, not a video file; index the folder instead.", path=p)
    try:
        size = p.stat().st_size
    except FileNotFoundError as e:
        raise DecodeError(f"{p} does not exist; check the path.", path=p) from e
    except OSError as e:
        raise DecodeError(f"cannot read {p}: {e.strerror}; check its permissions.", path=p) from e
    refuse_empty(p, size, "video")
    return p


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (for example on files it cannot open) for a moment."""
    import cv2

    old = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)


def _open(p: Path, timeout: float, *, raw: bool = False) -> Any:
    # FFmpeg's own messages ("moov atom not found") would go straight to stderr; the
    # library never prints, so silence them unless the user asked for a level.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    ms = int(max(1.0, timeout) * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    if raw:
        params += [cv2.CAP_PROP_FORMAT, -1]
    with _quiet_opencv():
        cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG, params)
    if cap.isOpened():
        return cap
    cap.release()
    problem = _mp4_index_problem(p)
    if problem:
        raise DecodeError(
            f"cannot open {p.name}: {problem}, so the file was cut short while being written or copied; "
            "copy or export it again.",
            path=p,
        )
    raise UnsupportedMediaError(
        f"OpenCV cannot open {p.name} as a video (no video stream: an audio-only file, or not a video at all); "
        "convert it with ffmpeg if it should be one.",
        path=p,
    )


def _mp4_index_problem(p: Path) -> str | None:
    """Why an MP4/MOV file's index ('moov' atom) is unusable, or None if it has one or is no MP4."""
    try:
        with p.open("rb") as f:
            size = p.stat().st_size
            head = f.read(8)
            if len(head) < 8 or head[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
                return None
            offset = 0
            for _ in range(10_000):
                f.seek(offset)
                header = f.read(16)
                if len(header) < 8:
                    return "it has no 'moov' index atom"
                box_size, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if box_size == 1 and len(header) == 16:
                    box_size = int.from_bytes(header[8:16], "big")
                elif box_size == 0:
                    box_size = size - offset
                if box_size < 8:
                    return "its atom structure is corrupt"
                if kind == b"moov":
                    return "its 'moov' index atom is cut off" if offset + box_size > size else None
                offset += box_size
                if offset >= size:
                    return "it has no 'moov' index atom"
    except OSError:
        return None
    return None


def _sane_fps(cap: Any) -> float | None:
    import cv2

    fps = float(cap.get(cv2.CAP_PROP_FPS))
    return fps if math.isfinite(fps) and 0.0 < fps <= MAX_FPS else None


def _frame_count(cap: Any) -> int:
    import cv2

    n = float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    return int(n) if math.isfinite(n) and n > 0 else 0


def _scan_packets(p: Path, clock: _Clock, *, max_key_density: float = 0.0) -> tuple[int, list[int] | None]:
    """Demux the video stream without decoding: (packet count, keyframe indices).

    Keyframe indices are those of the packets, which are the frames' display
    indices in closed GOPs (the common case; an error here only costs an extra
    seek). They are None, and collection stops, when keyframes are denser than
    ``max_key_density`` (per packet, checked every 500 packets), or when the
    file cannot be opened in demux-only mode.
    """
    import cv2

    try:
        cap = _open(p, 30.0, raw=True)
    except MediaSearchError:
        return 0, None
    n, keys = 0, []
    try:
        while cap.grab():
            if keys is not None and cap.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME):
                keys.append(n)
            n += 1
            if n % 500 == 0:
                clock.check()
                if keys is not None and len(keys) > max_key_density * n:
                    keys = None
        return n, (None if keys is None or len(keys) > max_key_density * n else keys)
    finally:
        cap.release()
