"""Verify: is a proposed pair of pictures one picture? Local features, then the pixels.

Two steps, the cheap one first:

* **stored features** (``quick``): the local features indexing stored with
  every image and keyframe row (``signals.image.pack_features``: 256 SIFT
  keypoints at 640 px), matched with ``signals.image.verify`` (ratio test,
  RANSAC similarity), and against their mirror image, derived from the stored
  values (``signals.image.mirror_features``: SIFT's descriptor bins permuted, nothing
  decoded). A few milliseconds per pair: every proposal gets it.
* **the pixels** (``Verifier.verify``): only a pair the stored features find
  related is decoded (each file once per run, features cached), matched again
  and the transform must line the pixels up (``NCC_MIN``): a shared caption or
  logo on two different photos gives inliers on a small part only. Pictures in
  a frame (screenshots: ``signals.image.content_box``) are compared by their
  inner picture only.

A pHash can be mirrored too (``mirror_hash``): the DCT coefficients of odd
horizontal frequency change sign under a horizontal flip, so their bits flip
(up to the median's shift: 0 to 8 bits off on the sample photos).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..signals import image as fi
from .verdicts import Verdicts

__all__ = ["MIRROR_MASK", "NCC_MIN", "VERIFY_SIDE", "Verifier", "mirror_hash", "one_thread"]

log = logging.getLogger(__name__)

Side = tuple[str, "float | None"]  # (content hash, keyframe time or None): one picture
_FEATURE_CACHE = 1024
_STORED_CACHE = 4096


def _mirror_mask() -> int:
    mask = 0
    for k in range(64):  # bit k of the hash: coefficient (row k // 8, column k % 8), most significant first
        if (k % 8) % 2 == 1:
            mask |= 1 << (63 - k)
    return mask


#: The pHash bits of odd horizontal frequency: ``h ^ MIRROR_MASK`` is about the mirror image's hash.
MIRROR_MASK = _mirror_mask()


def mirror_hash(hashes: np.ndarray) -> np.ndarray:
    """The (approximate) pHashes of the mirror images of pictures with ``hashes`` (uint64)."""
    return np.asarray(hashes, dtype=np.uint64) ^ np.uint64(MIRROR_MASK)


#: Normalised correlation, after the RANSAC transform lines them up, from which two pictures
#: are one picture. Shared overlays (the same caption or logo on two photos) give many inliers
#: on a small part; the rest of the picture then disagrees.
NCC_MIN = 0.5
#: Longer side (px) of the pictures verified here: half the query path's ``MAX_SIDE``, about a
#: quarter of the features to match, enough inliers for the copies of scripts/bench_duplicates.py.
VERIFY_SIDE = 320


@dataclass
class _Seen:
    """One library picture as verification sees it: gray at features scale, its features, and
    whether it sits in a frame (a screenshot: ``signals.image.content_box``), in which case
    both are of the inner picture only -- window chrome is shared by every screenshot."""

    gray: np.ndarray
    features: fi.Features
    framed: bool


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

    def _unpacked(self, key: Any, text: str | None) -> _Prepared | None:
        if key in self.stored:
            self.stored.move_to_end(key)
            return self.stored[key]
        f = fi.unpack_features(text)
        got = None if f is None or len(f) < 3 else _Prepared.of(f)
        self.stored[key] = got
        while len(self.stored) > _STORED_CACHE:
            self.stored.popitem(last=False)
        return got

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
            v = _stored_check(fa, fb)
            self.verdicts.put(key, v)
            return v
        finally:
            self.quick_seconds += time.perf_counter() - start

    def _read(self, path: str, ts: float | None) -> np.ndarray | None:
        self.reads += 1
        try:
            return fi._read_picture(path) if ts is None else fi._read_frame(path, ts)
        except Exception as e:  # noqa: BLE001 - a moved or damaged file is just not verified
            log.debug("cannot read %s for verification: %s", path, e)
            return None

    def _get(self, path: str, ts: float | None, mirrored: bool) -> _Seen | None:
        key = (path, ts, mirrored)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        pic = self._read(path, ts)
        seen = None
        if pic is not None:
            box = fi.content_box(pic)
            self._frame(path, ts, box is not None)
            if box is not None:
                top, bottom, left, right = box
                pic = pic[top:bottom, left:right]
            if mirrored:
                pic = pic[:, ::-1]
            pic = np.ascontiguousarray(pic)
            feats = fi.features(pic, max_side=VERIFY_SIDE)
            import cv2

            gray = cv2.resize(fi._gray(pic), (feats.shape[1], feats.shape[0]), interpolation=cv2.INTER_AREA)
            seen = _Seen(gray, feats, box is not None)
        self.cache[key] = seen
        while len(self.cache) > _FEATURE_CACHE:
            self.cache.popitem(last=False)
        return seen

    def _frame(self, path: str, ts: float | None, framed: bool) -> None:
        self.frames[(path, ts)] = framed
        if (path, ts) in self.contents:
            self.verdicts.put(("f", self.contents[(path, ts)], ts, "", None), fi.Verification(int(framed), 0))

    def framed(self, path: str, ts: float | None = None, content: str | None = None) -> bool:
        """Whether the picture sits in a frame (decodes it once; kept with the verdicts by ``content``)."""
        if (path, ts) not in self.frames:
            got = None
            if content is not None:
                self.contents[(path, ts)] = content
                got = self.verdicts.get(("f", content, ts, "", None))
            if got is not None:
                self.frames[(path, ts)] = bool(got[0])
            else:
                pic = self._read(path, ts)
                self._frame(path, ts, pic is not None and fi.content_box(pic) is not None)
        return self.frames[(path, ts)]

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
        v = _check(sa, sb)
        if fi.decide(v, None).confidence >= 1.0:
            return v  # certain already: the mirror cannot add anything
        sm = self._get(a, a_ts, True)
        if sm is not None:
            w = _check(sm, sb)
            if w.inliers > v.inliers:
                return fi.Verification(w.inliers, w.matches, True)
        return v


#: Ratio-test matches at or under which a stored-feature check stops: RANSAC cannot find more
#: inliers than matches, and ``pictures.QUICK_MIN`` inliers or fewer count as nothing in common.
_QUICK_MATCHES = 4


@dataclass(frozen=True)
class _Prepared:
    """One row's stored features, its mirror's, and what the products need, computed once."""

    features: fi.Features
    mirror: fi.Features
    both: Any  # torch (2n, 128): the descriptors, then the mirror's
    both_sq: np.ndarray
    desc: Any  # torch (n, 128)
    desc_sq: np.ndarray

    @classmethod
    def of(cls, f: fi.Features) -> _Prepared:
        import torch

        m = fi.mirror_features(f)
        both = np.ascontiguousarray(np.concatenate([f.descriptors, m.descriptors]), dtype=np.float32)
        desc = np.ascontiguousarray(f.descriptors, dtype=np.float32)
        return cls(f, m, torch.from_numpy(both), (both * both).sum(1), torch.from_numpy(desc), (desc * desc).sum(1))


def _stored_check(a: _Prepared, b: _Prepared) -> fi.Verification:
    """``signals.image.verify_mirrored`` of stored features, with one matrix product for both
    orientations and no RANSAC where the ratio test leaves too few matches (most pairs)."""
    counts = _ratio_counts(a, b)
    if max(counts) <= _QUICK_MATCHES:
        return fi.Verification(0, max(counts))
    direct = fi.verify(a.features, b.features) if counts[0] > _QUICK_MATCHES else fi.Verification(0, counts[0])
    mirror = fi.verify(a.mirror, b.features) if counts[1] > _QUICK_MATCHES else fi.Verification(0, counts[1])
    return fi.Verification(mirror.inliers, mirror.matches, True) if mirror.inliers > direct.inliers else direct


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread while pairs are checked (thousands of small products), restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _ratio_counts(a: _Prepared, b: _Prepared) -> tuple[int, int]:
    """How many matches ``signals.image._ratio_matches`` keeps from ``a`` and from its mirror to
    ``b`` (Lowe's ratio test, one match per keypoint of ``b``), from one matrix product (torch's,
    on one thread: ``one_thread``; numpy's threaded BLAS is several times slower on products this
    small when the cores are busy)."""
    if len(b.features) < 2:
        return 0, 0
    d2 = a.both_sq[:, None] + b.desc_sq[None, :] - 2.0 * (a.both @ b.desc.T).numpy()
    nearest, d1, dn = fi.two_nearest(d2)
    ok = np.sqrt(np.maximum(d1, 0)) < fi.RATIO * np.sqrt(np.maximum(dn, 0))
    n = len(a.features)
    return len(np.unique(nearest[:n][ok[:n]])), len(np.unique(nearest[n:][ok[n:]]))


def _check(a: _Seen, b: _Seen) -> fi.Verification:
    """``signals.image.verify`` plus a pixel check: b warped onto a must correlate."""
    import cv2

    q, c = a.features, b.features
    if len(q) < 3 or len(c) < 3:
        return fi.Verification(0, 0)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(q.descriptors, c.descriptors, k=2)
    good = [m for m, *rest in (p for p in pairs if len(p) == 2) if m.distance < fi.RATIO * rest[0].distance]
    best: dict[int, Any] = {}
    for m in good:
        if m.trainIdx not in best or m.distance < best[m.trainIdx].distance:
            best[m.trainIdx] = m
    good = list(best.values())
    if len(good) < 3:
        return fi.Verification(0, len(good))
    src = q.points[[m.queryIdx for m in good]]
    dst = c.points[[m.trainIdx for m in good]]
    model, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=fi.RANSAC_PX, maxIters=2000, confidence=0.995)
    if model is None or mask is None or not 0.05 <= float(np.hypot(model[0, 0], model[1, 0])) <= 20:
        return fi.Verification(0, len(good))
    keep = mask.ravel().astype(bool)
    inliers = min(len({(int(x) // 4, int(y) // 4) for x, y in src[keep]}), len({(int(x) // 4, int(y) // 4) for x, y in dst[keep]}))
    if inliers > 4 and _ncc(a.gray, b.gray, model) < NCC_MIN:
        return fi.Verification(0, len(good))
    return fi.Verification(inliers, len(good))


def _ncc(a: np.ndarray, b: np.ndarray, model: np.ndarray) -> float:
    """Correlation of ``a`` with ``b`` brought into a's frame by ``model`` (a -> b), where both exist."""
    import cv2

    h, w = a.shape
    warped = cv2.warpAffine(b.astype(np.float32), model, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR, borderValue=-1.0)
    valid = cv2.warpAffine(np.ones(b.shape, np.float32), model, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST, borderValue=0.0) > 0.5
    if valid.sum() < 0.05 * h * w:
        return 0.0
    s = 64 / max(h, w)
    size = (max(8, round(w * s)), max(8, round(h * s)))
    x = cv2.resize(cv2.GaussianBlur(a.astype(np.float32), (0, 0), 2), size, interpolation=cv2.INTER_AREA)
    y = cv2.resize(cv2.GaussianBlur(np.where(valid, warped, 0).astype(np.float32), (0, 0), 2), size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(valid.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.99
    if m.sum() < 16:
        return 0.0
    x, y = x[m] - x[m].mean(), y[m] - y[m].mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else 0.0


