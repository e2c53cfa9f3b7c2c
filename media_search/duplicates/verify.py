"""Verify: is a proposed pair of pictures one picture? Local features, then the pixels.

Two steps, the cheap one first:

* **stored features** (``quick``): the local features indexing stored with
  every image and keyframe row (``signals.image.pack_features``: 256 SIFT
  keypoints at 640 px), matched with ``signals.image.verify`` (ratio test,
  RANSAC similarity), and against their mirror image, derived from the stored
  values (``signals.image.mirror_features``: SIFT's descriptor bins permuted, nothing
  decoded). A few milliseconds per pair: every proposal gets it.
* **the pixels**: where the stored features already make a copy, the two
  pictures are read small (a JPEG in draft mode) and the transform the stored
  features found must line their pixels up (``Verifier.confirm``, ``NCC_MIN``):
  a shared caption or logo on two different photos gives inliers on a small
  part only. Where they find something short of a copy, or a picture sits in a
  frame (screenshots: ``signals.image.content_box``, compared by their inner
  picture only), both are decoded, their features computed again at
  ``VERIFY_SIDE`` and matched, and the pixels checked the same way
  (``Verifier.verify``; each file once per run, features cached).

Screens, and the pictures they send on, are worked ahead on ``SCREEN_THREADS``
threads (``quick_many``, ``prefetch``); the checks themselves run in order. The
matching itself is ``match``'s; this module keeps what is read, and the verdicts.

A pHash can be mirrored too (``mirror_hash``): the DCT coefficients of odd
horizontal frequency change sign under a horizontal flip, so their bits flip
(up to the median's shift: 0 to 8 bits off on the sample photos).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..signals import image as fi
from .match import NCC_MIN, Prepared, Seen, decoded_check, ncc, prepare, stored_check
from .verdicts import Verdicts

__all__ = ["MIRROR_MASK", "NCC_MIN", "VERIFY_SIDE", "Verifier", "mirror_hash"]

log = logging.getLogger(__name__)

Side = tuple[str, "float | None"]  # (content hash, keyframe time or None): one picture
#: Decoded pictures kept (``Seen``: gray and descriptors in uint8, about 190 KB at ``VERIFY_SIDE``):
#: a miss decodes again and runs SIFT (about 35 ms). At 10k images a first run decoded 4,719
#: pictures; with 1,024 kept (in float32, 700 KB each) it decoded them 8,464 times.
_FEATURE_CACHE = 4096
#: Rows' stored features kept (``match.Prepared``, about 70 KB each): a miss costs an unpack
#: (about 0.7 ms). At 10k images a first run screens 80,000 pairs of them.
_STORED_CACHE = 8192
#: Pictures read small for ``confirm`` (uint8, at most 64 KB each); a miss costs a read (about 3 ms).
_SMALL_CACHE = 8192
#: Longer side (px) of the pictures ``Verifier.confirm`` correlates (``match.ncc`` compares them at 64).
CONFIRM_SIDE = 256
#: Threads of ``Verifier.quick_many``.
SCREEN_THREADS = max(1, min(4, os.cpu_count() or 1))


def _mirror_mask() -> int:
    mask = 0
    for k in range(64):  # bit k of the hash: coefficient (row k // 8, column k % 8), most significant first
        if (k % 8) % 2 == 1:
            mask |= 1 << (63 - k)
    return mask


#: The pHash bits of odd horizontal frequency: ``h ^ MIRROR_MASK`` is about the mirror image's hash.
MIRROR_MASK = _mirror_mask()


def _keep(cache: OrderedDict, key: Any, value: Any, size: int) -> Any:
    """``value`` into the least-recently-used ``cache`` of ``size`` entries; returns it."""
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def _u8(gray: np.ndarray) -> np.ndarray:
    """A float gray picture (0 to 255) kept in a quarter of the memory."""
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def _small(pic: np.ndarray) -> np.ndarray:
    """``pic`` (RGB or gray) in gray, its longer side at most ``CONFIRM_SIDE``, uint8 (``Verifier.confirm``'s)."""
    import cv2

    gray = fi._gray(pic)
    h, w = gray.shape
    s = CONFIRM_SIDE / max(h, w)
    if s < 1:
        gray = cv2.resize(gray, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
    return _u8(gray)


def mirror_hash(hashes: np.ndarray) -> np.ndarray:
    """The (approximate) pHashes of the mirror images of pictures with ``hashes`` (uint64)."""
    return np.asarray(hashes, dtype=np.uint64) ^ np.uint64(MIRROR_MASK)


#: Longer side (px) of the pictures verified here: half the query path's ``MAX_SIDE``, about a
#: quarter of the features to match, enough inliers for the copies of scripts/bench_duplicates.py.
VERIFY_SIDE = 320


@dataclass
class Verifier:
    """Local features of library files (and of their mirror image), read once per run."""

    verdicts: Verdicts = field(default_factory=Verdicts)
    cache: OrderedDict = field(default_factory=OrderedDict)
    frames: dict = field(default_factory=dict)
    contents: dict = field(default_factory=dict)  # (path, time) -> content hash, for the verdicts
    stored: OrderedDict = field(default_factory=OrderedDict)
    reads: int = 0
    checks: int = 0
    attempts: int = 0
    seconds: float = 0.0
    quick_checks: int = 0
    quick_seconds: float = 0.0
    models: dict = field(default_factory=dict)  # quick key -> (transform, a's shape, b's shape)
    smalls: OrderedDict = field(default_factory=OrderedDict)
    confirmed: int = 0
    confirm_seconds: float = 0.0
    pool: Any = None

    def _unpacked(self, key: Any, text: str | None) -> Prepared | None:
        if key in self.stored:
            self.stored.move_to_end(key)
            return self.stored[key]
        return self._keep_prepared(key, prepare(text))

    def _keep_prepared(self, key: Any, got: Prepared | None) -> Prepared | None:
        return _keep(self.stored, key, got, _STORED_CACHE)

    def quick(self, a_key: Side, a_text: str | None, b_key: Side, b_text: str | None) -> fi.Verification | None:
        """Stored features of ``a`` (and of its mirror) against ``b``'s; None when either has none.
        ``a_key`` / ``b_key``: (content hash, keyframe time or None), what the verdict is kept under."""
        key = ("q", *a_key, *b_key)
        if (got := self.verdicts.get(key)) is not None:
            return fi.Verification(*got)
        start = time.perf_counter()
        try:
            fa, fb = self._unpacked(a_key, a_text), self._unpacked(b_key, b_text)
            if fa is None or fb is None:
                return None
            self.quick_checks += 1
            return self._keep_screen(key, fa, fb, *stored_check(fa, fb))
        finally:
            self.quick_seconds += time.perf_counter() - start

    def quick_many(self, pairs: list[tuple[Side, str | None, Side, str | None]]) -> list[bool]:
        """``quick`` for many pairs at once, on ``SCREEN_THREADS`` threads (the products and RANSAC
        release the GIL); the verdicts are kept, so that ``quick`` then finds them. Returns, per
        pair, whether it was screened now (not kept from an earlier run)."""
        missing: dict[Any, str | None] = {}  # stored features to unpack, on the threads too
        for a_key, a_text, b_key, b_text in pairs:
            if ("q", *a_key, *b_key) not in self.verdicts:
                missing.update({k: t for k, t in ((a_key, a_text), (b_key, b_text)) if k not in self.stored})
        if len(missing) > 1:
            for k, got in zip(missing, self._pool().map(prepare, missing.values())):
                self._keep_prepared(k, got)
        todo = []
        for a_key, a_text, b_key, b_text in pairs:
            key = ("q", *a_key, *b_key)
            if self.verdicts.get(key) is not None:
                continue
            fa, fb = self._unpacked(a_key, a_text), self._unpacked(b_key, b_text)
            if fa is not None and fb is not None:
                todo.append((key, fa, fb))
        now = {key for key, _, _ in todo}
        fresh = [("q", *a_key, *b_key) in now for a_key, _, b_key, _ in pairs]
        if len(todo) < 2:
            for key, fa, fb in todo:
                self.quick(key[1:3], None, key[3:5], None)  # unpacked already
            return fresh
        start = time.perf_counter()
        for (key, fa, fb), (v, model) in zip(todo, self._pool().map(lambda t: stored_check(t[1], t[2]), todo)):
            self._keep_screen(key, fa, fb, v, model)
        self.quick_checks += len(todo)
        self.quick_seconds += time.perf_counter() - start
        return fresh

    def _keep_screen(self, key: Any, fa: Prepared, fb: Prepared, v: fi.Verification, model: np.ndarray | None) -> fi.Verification:
        """A screen's verdict, and its transform for ``confirm``."""
        if model is not None:
            self.models[key] = (model, fa.features.shape, fb.features.shape)
        self.verdicts.put(key, v)
        return v

    def _pool(self) -> Any:
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(SCREEN_THREADS, thread_name_prefix="media-search-screen")
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def confirm(self, a: str, a_key: Side, b: str, b_key: Side) -> fi.Verification | None:
        """A pair whose stored features (``quick``) make a copy, checked by its pixels alone: both
        pictures read small (a JPEG in draft mode), ``b`` brought onto ``a`` by the transform the
        stored features found, and correlated (``NCC_MIN``); no decoding at full size, no SIFT.
        The stored verification when the pixels agree, no inliers when they do not; None when the
        transform is not known here (a screen kept from an earlier run) or a picture cannot be
        read: ``verify`` it then. Kept with the verdicts as ``verify``'s are."""
        key = ("v", a_key[0], a_key[1], b_key[0], b_key[1])
        if (got := self.verdicts.get(key)) is not None:
            return fi.Verification(*got)
        q = self.verdicts.get(("q", *a_key, *b_key))
        fit = self.models.get(("q", *a_key, *b_key))
        if q is None or fit is None:
            return None
        v = fi.Verification(*q)
        start = time.perf_counter()
        try:
            ga, gb = self._small(a, a_key[1]), self._small(b, b_key[1])
            if ga is None or gb is None:
                return None
            self.confirmed += 1
            model, shape_a, shape_b = fit
            if v.mirrored:
                ga = np.ascontiguousarray(ga[:, ::-1])
            # the stored features' coordinates (their pictures' ``local_picture`` size) -> these sizes
            sa = np.diag([ga.shape[1] / shape_a[1], ga.shape[0] / shape_a[0], 1.0])
            sb = np.diag([gb.shape[1] / shape_b[1], gb.shape[0] / shape_b[0], 1.0])
            m = (sb @ np.vstack([model, [0.0, 0.0, 1.0]]) @ np.linalg.inv(sa))[:2]
            if ncc(ga, gb, m) < NCC_MIN:
                v = fi.Verification(0, v.matches, v.mirrored)
        finally:
            self.confirm_seconds += time.perf_counter() - start
        self.verdicts.put(key, v)
        return v

    def _small(self, path: str, ts: float | None) -> np.ndarray | None:
        """The picture in gray, its longer side at most ``CONFIRM_SIDE`` (cached)."""
        key = (path, ts)
        if key in self.smalls:
            self.smalls.move_to_end(key)
            return self.smalls[key]
        return self._keep_small(key, self._load_small(path, ts))

    def _keep_small(self, key: tuple[str, float | None], gray: np.ndarray | None) -> np.ndarray | None:
        self.reads += 1
        return _keep(self.smalls, key, gray, _SMALL_CACHE)

    def _load_small(self, path: str, ts: float | None) -> np.ndarray | None:
        pic = self._read(path, ts, CONFIRM_SIDE)
        return None if pic is None else _small(pic)

    def _read(self, path: str, ts: float | None, min_side: int = fi.MAX_SIDE) -> np.ndarray | None:
        try:
            return fi._read_picture(path, min_side) if ts is None else fi._read_frame(path, ts)
        except Exception as e:  # noqa: BLE001 - a moved or damaged file is just not verified
            log.debug("cannot read %s for verification: %s", path, e)
            return None

    def _get(self, path: str, ts: float | None, mirrored: bool) -> Seen | None:
        """The picture as verification sees it; ``mirrored``: its mirror image, derived from the
        direct one (``signals.image.mirror_features``, the gray flipped): no second decode or SIFT."""
        key = (path, ts)
        if key in self.cache:
            self.cache.move_to_end(key)
            seen = self.cache[key]
        else:
            seen = self._keep_seen(key, self._load(path, ts))
        if seen is None or not mirrored:
            return seen
        return Seen(np.ascontiguousarray(seen.gray[:, ::-1]), fi.mirror_features(seen.features), seen.framed)

    def _keep_seen(self, key: tuple[str, float | None], seen: Seen | None) -> Seen | None:
        self.reads += 1
        if seen is not None and key not in self.frames:
            # the first answer stands: a look at 256 px (``_look``) and this decode at full size can
            # disagree about a thin frame, and which read comes first must not change a verdict
            self._frame(*key, seen.framed)
        return _keep(self.cache, key, seen, _FEATURE_CACHE)

    def _load(self, path: str, ts: float | None) -> Seen | None:
        """Read and prepare one picture (no state changed: it runs on the screening threads too)."""
        pic = self._read(path, ts)
        if pic is None:
            return None
        gray = fi._gray(pic)  # once: the frame, the features and the pixels all take it gray
        box = fi.content_box(gray)
        if box is not None:  # the inner picture's gray from its own colours (a product's rounding depends on its shape)
            top, bottom, left, right = box
            gray = fi._gray(np.ascontiguousarray(pic[top:bottom, left:right]))
        feats = fi.features(gray, max_side=VERIFY_SIDE)
        feats = replace(feats, descriptors=feats.descriptors.astype(np.uint8))  # OpenCV's SIFT values are whole, 0 to 255
        import cv2

        gray = cv2.resize(gray, (feats.shape[1], feats.shape[0]), interpolation=cv2.INTER_AREA)
        return Seen(_u8(gray), feats, box is not None)

    def prefetch(self, seen: list[tuple[str, float | None]], small: list[tuple[str, float | None]]) -> None:
        """Read ahead, on the screening threads, the pictures that the next checks will ask for:
        decoded with their features (``verify``) or small (``confirm``)."""
        jobs = [(k, False) for k in dict.fromkeys(seen) if k not in self.cache]
        jobs += [(k, True) for k in dict.fromkeys(small) if k not in self.smalls]
        if len(jobs) < 2:
            return
        got = list(self._pool().map(lambda j: self._load_small(*j[0]) if j[1] else self._load(*j[0]), jobs))
        for (key, is_small), value in zip(jobs, got):
            if is_small:
                self._keep_small(key, value)
            else:
                self._keep_seen(key, value)

    def _frame(self, path: str, ts: float | None, framed: bool) -> None:
        self.frames[(path, ts)] = framed
        if (path, ts) in self.contents:
            self.verdicts.put(("f", self.contents[(path, ts)], ts, "", None), fi.Verification(int(framed), 0))

    def framed(self, path: str, ts: float | None = None, content: str | None = None) -> bool:
        """Whether the picture sits in a frame (decodes it once; kept with the verdicts by ``content``)."""
        if not self._frame_known(path, ts, content):
            self._looked((path, ts), self._look(path, ts))
        return self.frames[(path, ts)]

    def _frame_known(self, path: str, ts: float | None, content: str | None) -> bool:
        """Whether the picture's frame is known, from this run or a kept verdict (then noted)."""
        if (path, ts) in self.frames:
            return True
        got = None
        if content is not None:
            self.contents[(path, ts)] = content
            got = self.verdicts.get(("f", content, ts, "", None))
        if got is not None:
            self.frames[(path, ts)] = bool(got[0])
        return got is not None

    def framed_many(self, pictures: list[tuple[str, float | None, str]]) -> None:
        """``framed`` for many (path, time, content) at once, those not known read on the
        verifier's threads."""
        todo = [(path, ts) for path, ts, content in dict.fromkeys(pictures) if not self._frame_known(path, ts, content)]
        if len(todo) < 2:
            return  # ``framed`` reads it when asked
        for key, got in zip(todo, self._pool().map(lambda k: self._look(*k), todo)):
            self._looked(key, got)

    def _look(self, path: str, ts: float | None) -> tuple[bool, np.ndarray | None]:
        """Whether the picture sits in a frame, and the picture small for ``confirm``, from one read
        (``content_box`` looks at 256 px: a JPEG decodes in draft mode). The pairs asked about are
        the ones ``confirm`` then checks (``pictures._prescreen``)."""
        pic = self._read(path, ts, CONFIRM_SIDE)
        if pic is None:
            return False, None
        gray = fi._gray(pic)
        return fi.content_box(gray) is not None, _small(gray)

    def _looked(self, key: tuple[str, float | None], got: tuple[bool, np.ndarray | None]) -> None:
        self.reads += 1
        self._frame(*key, got[0])
        if got[1] is not None and key not in self.smalls:
            _keep(self.smalls, key, got[1], _SMALL_CACHE)

    def inner_hashes(self, path: str, content: str) -> np.ndarray | None:
        """pHashes (uint64) of a framed picture's inner picture and of its mirror (decoded once,
        then kept with the verdicts); None if it cannot be read."""
        key = ("i", content, None, "", None)
        got = self.verdicts.get(key)
        if got is None:
            seen = self._get(path, None, False)
            if seen is None:
                return None
            pair = np.array([fi.phash(seen.gray), fi.phash(np.ascontiguousarray(seen.gray[:, ::-1]))], dtype=np.uint64)
            signed = pair.view(np.int64).tolist()  # sqlite integers are signed 64-bit
            self.verdicts.put(key, fi.Verification(signed[0], signed[1]))
            return pair
        return np.array(got[:2], dtype=np.int64).view(np.uint64)

    def verify(self, a: str, a_ts: float | None, b: str, b_ts: float | None, keys: tuple[str, str] | None = None) -> fi.Verification | None:
        """Inliers between picture ``a`` (or its mirror) and ``b`` that also agree in their pixels
        (``NCC_MIN``); None if either cannot be read. ``keys``: the two content hashes, under
        which the verdict is kept (``verdicts``)."""
        key = None if keys is None else ("v", keys[0], a_ts, keys[1], b_ts)
        if keys is not None:
            self.contents[(a, a_ts)], self.contents[(b, b_ts)] = keys
        if key is not None and (got := self.verdicts.get(key)) is not None:
            self.framed(a, a_ts, keys[0])  # known framed pictures are searched again (``pictures.framed_pairs``)
            self.framed(b, b_ts, keys[1])
            return fi.Verification(*got)
        start = time.perf_counter()
        try:
            v = self._verify(a, a_ts, b, b_ts)
        finally:
            self.attempts += 1
            self.seconds += time.perf_counter() - start
        if v is not None and key is not None:
            self.verdicts.put(key, v)
        return v

    def _verify(self, a: str, a_ts: float | None, b: str, b_ts: float | None) -> fi.Verification | None:
        sa, sb = self._get(a, a_ts, False), self._get(b, b_ts, False)
        if sa is None or sb is None:
            return None
        self.checks += 1
        v = decoded_check(sa, sb)
        if fi.decide(v, None).confidence >= 1.0:
            return v  # certain already: the mirror cannot add anything
        sm = self._get(a, a_ts, True)
        if sm is not None:
            w = decoded_check(sm, sb)
            if w.inliers > v.inliers:
                return fi.Verification(w.inliers, w.matches, True)
        return v
