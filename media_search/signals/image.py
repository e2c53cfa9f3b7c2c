"""Copy detection for pictures: a perceptual hash and a local-feature geometric check.

Two signals with opposite blind spots (measured in ``scripts/bench_copy.py``):

* **pHash** (``phash``): 64-bit DCT hash of the 32x32 luma; stored with every
  image and keyframe row (16 hex digits), computed from the prepared 224x224
  picture in the decode stage. Near-perfect under re-encoding, downscaling,
  brightness/contrast and grayscale; blind to crops, rotation and borders.
  Mirror invariance is given at query time: the query's mirror is hashed too
  and the smaller distance counts (``phash_pair``).
* **Geometric verification** (``verify``): SIFT keypoints of the query (and of
  its mirror) and of a candidate read from the library at query time (longer
  side brought to ``MAX_SIDE`` px), Lowe's ratio test, then a RANSAC
  similarity transform (rotation, uniform scale, translation:
  ``cv2.estimateAffinePartial2D``). Its inliers survive crops, rotation,
  mirroring (through the mirrored query), screenshot borders and overlays.
  Unrelated pictures give at most a handful of inliers.

``decide`` fuses both into ``CopyEvidence.confidence`` (0..1) and ``copy``
(confidence >= ``COPY_THRESHOLD``); it never looks at an embedding score, so
it holds whatever the weights.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PHASH_VERSION",
    "LOCAL_VERSION",
    "MAX_SIDE",
    "STORED_SIDE",
    "stored_features",
    "N_STORED",
    "COPY_THRESHOLD",
    "HASH_COPY",
    "MIN_POINTS",
    "phash",
    "phash_hex",
    "phash_pair",
    "hamming",
    "hamming_pairs",
    "content_box",
    "Features",
    "Verification",
    "CopyEvidence",
    "features",
    "file_features",
    "local_picture",
    "pack_features",
    "unpack_features",
    "verify",
    "verify_model",
    "fit_matches",
    "ratio_kept",
    "verify_mirrored",
    "mirror_features",
    "two_nearest",
    "decide",
    "one_blas_thread",
]

log = logging.getLogger(__name__)

PHASH_VERSION = "phash64-dct32-v1"
MAX_SIDE = 640  # pixels on the longer side for local features
N_FEATURES = 1500
#: Keypoints stored per library picture (the strongest by response): what a query matches against.
N_STORED = 256
#: Pixels on the longer side of a library picture's stored local features (``stored_features``),
#: and the keypoints under which its ``MAX_SIDE`` picture is used instead.
STORED_SIDE = 320
STORED_FEW = N_STORED // 2
#: The stored local features' identity (``pack_features``): extractor, scale, count and layout.
LOCAL_VERSION = f"sift{STORED_SIDE}-{MAX_SIDE}-top{N_STORED}-u8-v2"
RATIO = 0.75  # Lowe's ratio test
RANSAC_PX = 6.0  # reprojection threshold at MAX_SIDE scale
MIN_POINTS = 3  # keypoints (or matches) under which two pictures share nothing: no transform is fitted
COPY_THRESHOLD = 0.5

# Calibrated with scripts/bench_copy.py's media (200 edited copies, 1,088 pairs of unrelated
# pictures): unrelated pairs reached at most 4 inliers and a pHash distance of at least 16;
# 195/200 copies had 7+ inliers or a distance of 10 or less.
_INLIERS_LO, _INLIERS_HI = 4, 10
_HASH_LO, _HASH_HI = 6, 14
#: A pHash this near, or this many inliers, alone gives full confidence: nothing more to check.
HASH_SURE, INLIERS_SURE = _HASH_LO, _INLIERS_HI
#: A pHash distance (bits) that is a copy on its own (``decide``'s confidence reaches 0.5 there): what
#: the library-wide report links pictures by, and video keyframes by (``signals.frames``).
HASH_COPY = 10


# -- perceptual hash ---------------------------------------------------------------------------
def _gray(picture: np.ndarray) -> np.ndarray:
    a = np.asarray(picture)
    if a.ndim == 3:
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return a.astype(np.float32, copy=False)


def phash(picture: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an RGB or gray uint8 array (bit set: coefficient above the median)."""
    import cv2

    small = cv2.resize(_gray(picture), (32, 32), interpolation=cv2.INTER_AREA)
    block = cv2.dct(small)[:8, :8].ravel()
    bits = block > np.median(block[1:])
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def phash_hex(picture: np.ndarray) -> str:
    """``phash`` as 16 lowercase hex digits (the stored form)."""
    return f"{phash(picture):016x}"


def phash_pair(picture: np.ndarray) -> tuple[int, int]:
    """Hashes of the picture and of its mirror image (a query compares both)."""
    a = np.asarray(picture)
    return phash(a), phash(a[:, ::-1])


def hamming(a: int | str, b: int | str) -> int:
    """Bits that differ between two 64-bit hashes (ints or hex strings)."""
    x = int(a, 16) if isinstance(a, str) else a
    y = int(b, 16) if isinstance(b, str) else b
    return (x ^ y).bit_count()


#: Hashes of ``a`` compared at once by ``hamming_pairs`` (a block against all of ``b``).
_HAMMING_BLOCK = 1024


def hamming_pairs(a: np.ndarray, b: np.ndarray | None, max_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) of hashes within ``max_bits``: ``a`` against itself (i < j) or against ``b``."""
    same = b is None
    b = a if b is None else b
    out_i, out_j, out_d = [], [], []
    for start in range(0, len(a), _HAMMING_BLOCK):
        blk = a[start : start + _HAMMING_BLOCK]
        d = np.bitwise_count(blk[:, None] ^ b[None, :])
        i, j = np.nonzero(d <= max_bits)
        i = i + start
        if same:
            keep = j > i
            i, j = i[keep], j[keep]
        out_i.append(i)
        out_j.append(j)
        out_d.append(d[i - start, j].astype(np.int64))
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def content_box(picture: np.ndarray) -> tuple[int, int, int, int] | None:
    """The main picture inside a screenshot or a framed copy, as ``(top, bottom, left, right)``.

    Window chrome (title bars, toolbars, side panels, borders) is flat colour with
    small islands of text; a photo is one large busy region. The largest
    connected busy region counts when it covers 10 to 85 % of the frame; else None.
    On scripts/bench_copy.py's media: 19/20 screenshots boxed; 2/36 plain
    pictures get a box too (harmless: the box is an extra query, not a replacement).
    """
    import cv2

    g = _gray(picture)
    h, w = g.shape
    s = 256 / max(h, w)
    small = cv2.resize(g, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
    mean = cv2.blur(small, (3, 3))
    std = np.sqrt(np.maximum(cv2.blur(small * small, (3, 3)) - mean * mean, 0))
    busy = (std > 1.0).astype(np.uint8)  # chrome is flat to the grey level; photos are not
    n, _, stats, _ = cv2.connectedComponentsWithStats(busy, connectivity=8)
    if n < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[i, :4])
    if not 0.10 <= (bw * bh) / (small.shape[0] * small.shape[1]) <= 0.85:
        return None
    return int(y / s), int(min(h, (y + bh) / s)), int(x / s), int(min(w, (x + bw) / s))


# -- local features ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Features:
    """SIFT keypoints (``points``: (n, 2) pixel positions at ``scale`` of the source) and descriptors."""

    points: np.ndarray
    descriptors: np.ndarray
    shape: tuple[int, int]  # (height, width) after rescaling
    response: np.ndarray | None = None  # detector response per keypoint (strongest kept when stored)

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class Verification:
    inliers: int
    matches: int  # ratio-test survivors
    mirrored: bool = False

    @property
    def ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0


@dataclass(frozen=True)
class CopyEvidence:
    copy: bool
    confidence: float
    inliers: int = 0
    inlier_ratio: float = 0.0
    hash_distance: int | None = None


_THREAD = threading.local()


def _sift(n: int = N_FEATURES) -> object:
    """This thread's SIFT detector keeping the ``n`` strongest keypoints (the duplicates' verifier
    reads pictures on several threads)."""
    kept = getattr(_THREAD, "sift", None)
    if kept is None:
        kept = _THREAD.sift = {}
    sift = kept.get(n)
    if sift is None:
        import cv2

        cv2.setNumThreads(1)  # many small images: threads cost more than they give
        sift = kept[n] = cv2.SIFT_create(nfeatures=n, contrastThreshold=0.02)
    return sift


_BLAS_SET = False


def one_blas_thread() -> None:
    """numpy's BLAS (and any other loaded BLAS library) on one thread, once per process.

    A query's verification is up to about a hundred small products (its 1,500 descriptors against each
    candidate's 256) while ONNX Runtime and the query's own SIFT hold both cores: OpenBLAS's
    threads split each product and then spin between them. On the 10k query library, one thread
    took the warm image query's CPU p50 from 970 to 857 ms and from 918 to 813 ms, the same answers
    (README, "Performance"). Like OpenCV's threads (``_sift``), it stays set for the process."""
    global _BLAS_SET
    if _BLAS_SET:
        return
    _BLAS_SET = True
    from threadpoolctl import ThreadpoolController

    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        lib.set_num_threads(1)


def _spread(gray: np.ndarray) -> tuple[float, float]:
    """``np.percentile(gray, (1, 99))`` of a uint8 picture, from its histogram (a tenth of the time,
    the same numbers): what ``features`` stretches to 0..255, as SIFT's thresholds are absolute."""
    counts = np.cumsum(np.bincount(gray.ravel(), minlength=256))
    out = []
    for q in (0.01, 0.99):
        at = q * (counts[-1] - 1)  # numpy's "linear" method: between the order statistics at floor and ceil
        i = int(np.floor(at))
        lo, hi = int(np.searchsorted(counts, i, side="right")), int(np.searchsorted(counts, i + 1, side="right"))
        out.append(lo + (hi - lo) * (at - i))
    return out[0], out[1]


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Gray ``values`` stretched so that ``lo`` and ``hi`` (the 1st and 99th percentiles) become 0 and
    255, as uint8: SIFT's thresholds are absolute."""
    return np.clip((values - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


def _frame(h: int, w: int, side: int) -> tuple[int, int]:
    """The (height, width) ``features`` looks at an ``h`` x ``w`` picture in: its longer side brought
    to ``side`` px, or as it is when within 5 % of it."""
    s = side / max(h, w)
    return (max(1, round(h * s)), max(1, round(w * s))) if abs(s - 1) > 0.05 else (h, w)


def features(picture: np.ndarray, *, max_side: int = MAX_SIDE, n: int = N_FEATURES) -> Features:
    """Local features of an RGB or gray uint8 array, its longer side brought to ``max_side`` px
    (``n``: SIFT's strongest keypoints kept)."""
    import cv2

    if picture.dtype == np.uint8 and picture.ndim == 2 and picture.size:  # ``local_picture``'s: through a table
        g = cv2.LUT(picture, _stretch(np.arange(256, dtype=np.float64), *_spread(picture)))
    else:
        g = _gray(picture)
        g = _stretch(g, *np.percentile(g, (1, 99)))
    h, w = g.shape
    th, tw = _frame(h, w, max_side)
    if (th, tw) != (h, w):
        g = cv2.resize(g, (tw, th), interpolation=cv2.INTER_AREA if max(th, tw) < max(h, w) else cv2.INTER_CUBIC)
    kps, desc = _sift(n).detectAndCompute(g, None)  # type: ignore[attr-defined]
    pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
    resp = np.array([k.response for k in kps], dtype=np.float32)
    if desc is None:
        desc = np.zeros((0, 128), dtype=np.float32)
    return Features(pts, desc, g.shape, resp)  # type: ignore[arg-type]


def stored_features(local: np.ndarray) -> Features:
    """The local features stored for a library picture (``local_picture``'s answer): SIFT's
    ``N_STORED`` strongest keypoints of the picture at ``STORED_SIDE`` px, their points in the
    ``MAX_SIDE`` frame that a query's own features (``features``) are in. A picture with fewer than
    ``STORED_FEW`` keypoints there (a clock face, a smooth drawing) is looked at in ``MAX_SIDE`` px
    instead, where it has more.

    Why not ``MAX_SIDE``: SIFT's first octave doubles its picture, so the pyramid of a 640 px picture
    is four times that of a 320 px one. On 40 of the benchmark's photos (1-12 MP) the stored
    features took 57.7 ms a photo at 640 px, 20.9 ms at 320 (the fallback included), beside a
    34 ms decode; ``scripts/benchmark.py --sections images`` went from 8.9 to 13.3 files/s. A query
    still matches its own 640 px keypoints against them: of ``scripts/bench_copy.py``'s 196 image
    copies, 196 reach 7 inliers with their original and 195 reach 10 (195 and 193 with features
    stored at 640 px; median 122 against 102), and no unrelated pair passes 3 either way.
    """
    f = features(local, max_side=STORED_SIDE, n=N_STORED)
    if len(f) < STORED_FEW:
        return features(local, n=N_STORED)
    h, w = _frame(*local.shape[:2], MAX_SIDE)  # the frame a query's features are in
    sy, sx = h / f.shape[0], w / f.shape[1]
    pts = (f.points + 0.5) * np.array([sx, sy], dtype=np.float32) - 0.5
    return Features(pts.astype(np.float32), f.descriptors, (h, w), f.response)


def _mirror_permutation() -> np.ndarray:
    # OpenCV's SIFT descriptor: 4x4 cells of 8 orientation bins, (cell row * 4 + cell column) * 8 + bin.
    # A horizontal flip mirrors the keypoint's own frame: cell rows reverse and bins run backwards
    # (measured: 483 of 606 matches are inliers between a photo's flipped features and its mirror's).
    perm = np.zeros(128, dtype=np.intp)
    for r in range(4):
        for c in range(4):
            for o in range(8):
                perm[((3 - r) * 4 + c) * 8 + (8 - o) % 8] = (r * 4 + c) * 8 + o
    return perm


_MIRROR = _mirror_permutation()


def mirror_features(f: Features) -> Features:
    """The local features of the mirror image, from the features themselves (no picture needed)."""
    pts = f.points.copy()
    pts[:, 0] = f.shape[1] - 1 - pts[:, 0]
    return Features(pts, np.ascontiguousarray(f.descriptors[:, _MIRROR]), f.shape, f.response)


def local_picture(picture: np.ndarray) -> np.ndarray:
    """What local features are computed from: uint8 gray, the longer side at most ``MAX_SIDE``.

    Kept by the decode stage for each image and keyframe (``decode.file``) so
    that ``pack_features`` runs without reading the file again; ``features`` of
    it equal ``features`` of the picture up to resampling noise.
    """
    import cv2

    a = np.asarray(picture)
    g = a if a.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)
    h, w = g.shape
    s = MAX_SIDE / max(h, w)
    if s < 0.95:
        g = cv2.resize(g, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(g, dtype=np.uint8)


_HEADER = np.dtype([("n", "<u2"), ("h", "<u2"), ("w", "<u2")])


def pack_features(f: Features, n: int = N_STORED) -> str:
    """The ``n`` strongest keypoints as text for the store (``LOCAL_VERSION``): about 17 KB for 256.

    Layout (zlib, then base64): a header (count, height, width), the points in
    quarter pixels (uint16) and the descriptors as uint8 (OpenCV's SIFT values
    are whole numbers from 0 to 255, so nothing is lost).
    """
    import base64
    import zlib

    keep = np.arange(len(f))
    if f.response is not None and len(f) > n:
        keep = np.sort(np.argsort(-f.response, kind="stable")[:n])
    keep = keep[:n]
    head = np.array([(len(keep), f.shape[0], f.shape[1])], dtype=_HEADER).tobytes()
    pts = np.clip(np.round(f.points[keep] * 4), 0, 65535).astype("<u2").tobytes()
    desc = np.clip(np.round(f.descriptors[keep]), 0, 255).astype(np.uint8).tobytes()
    return base64.b64encode(zlib.compress(head + pts + desc, 6)).decode("ascii")


def unpack_features(text: str | None) -> Features | None:
    """``pack_features``'s text back as ``Features`` (float32 descriptors); None when empty or damaged."""
    import base64
    import binascii
    import zlib

    if not text:
        return None
    try:
        raw = zlib.decompress(base64.b64decode(text, validate=True))
        head = np.frombuffer(raw, dtype=_HEADER, count=1)[0]
        n, h, w = int(head["n"]), int(head["h"]), int(head["w"])
        at = _HEADER.itemsize
        pts = np.frombuffer(raw, dtype="<u2", count=2 * n, offset=at).reshape(n, 2).astype(np.float32) / 4
        desc = np.frombuffer(raw, dtype=np.uint8, count=128 * n, offset=at + 4 * n).reshape(n, 128).astype(np.float32)
    except (ValueError, binascii.Error, zlib.error, IndexError) as e:
        log.debug("unreadable stored local features: %s", e)
        return None
    return Features(pts, desc, (h, w))


def file_features(path: str | Path, timestamp: float | None = None) -> Features | None:
    """Features of a library image, or of a video's frame at ``timestamp``; None if it cannot be read.

    Cached per (path, size, mtime, timestamp): a page or a benchmark asks for the
    same library files again and again.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError:
        return None
    return _file_features(p, st.st_size, st.st_mtime_ns, None if timestamp is None else round(float(timestamp), 3))


@functools.lru_cache(maxsize=512)
def _file_features(path: str, size: int, mtime_ns: int, timestamp: float | None) -> Features | None:
    try:
        picture = _read_picture(path) if timestamp is None else _read_frame(path, timestamp)
    except Exception as e:  # noqa: BLE001 - a moved or damaged library file is just not verified
        log.debug("cannot read %s for verification: %s", path, e)
        return None
    return None if picture is None else features(picture)


def _read_picture(path: str, min_side: int = MAX_SIDE) -> np.ndarray:
    from ..decode.image import open_image

    return np.asarray(open_image(path, min_side=min_side))


def _read_frame(path: str, timestamp: float) -> np.ndarray | None:
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return None
        cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, timestamp) * 1000.0)
        ok, frame = cap.read()
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None
    finally:
        cap.release()


def verify(q: Features, c: Features) -> Verification:
    """Ratio-test matches from ``q`` to ``c`` and the inliers of a RANSAC similarity transform."""
    return verify_model(q, c)[0]


def verify_model(q: Features, c: Features) -> tuple[Verification, np.ndarray | None]:
    """``verify`` and the transform it found (2x3, ``q``'s points to ``c``'s), None without one."""
    if len(q) < MIN_POINTS or len(c) < MIN_POINTS:
        return Verification(0, 0), None
    qi, ci = _ratio_matches(q.descriptors, c.descriptors)
    return fit_matches(q, c, qi, ci)


def fit_matches(q: Features, c: Features, qi: np.ndarray, ci: np.ndarray) -> tuple[Verification, np.ndarray | None]:
    """``verify_model`` from its ratio-test matches (``qi``: rows of ``q``, ``ci``: of ``c``), found
    by ``_ratio_matches`` or by a matcher that keeps the same matches (``duplicates.match``)."""
    import cv2

    if len(qi) < MIN_POINTS:
        return Verification(0, len(qi)), None
    src = q.points[qi]
    dst = c.points[ci]
    model, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000, confidence=0.995)
    if model is None or mask is None:
        return Verification(0, len(qi)), None
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    if not 0.05 <= scale <= 20:
        return Verification(0, len(qi)), None
    # Many matches on one spot are one match: count inliers on a coarse grid.
    keep = mask.ravel().astype(bool)
    cells_q = {(int(x) // 4, int(y) // 4) for x, y in src[keep]}
    cells_c = {(int(x) // 4, int(y) // 4) for x, y in dst[keep]}
    return Verification(min(len(cells_q), len(cells_c)), len(qi)), model


def two_nearest(d2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of squared distances ``d2`` (at least two columns; overwritten): the nearest
    column, its distance and the second smallest distance. Two passes (argmin, then min with the
    nearest masked): the values ``np.partition(d2, 1)`` gives, several times faster."""
    rows = np.arange(len(d2))
    first = d2.argmin(axis=1)
    a = d2[rows, first]
    d2[rows, first] = np.inf
    return first, a, d2.min(axis=1)


def _ratio_matches(qd: np.ndarray, cd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowe's ratio test on L2 distances (as ``cv2.BFMatcher.knnMatch(k=2)``), then one match per
    candidate keypoint (the nearest): a feature-poor candidate must not collect many query keypoints
    on its few points. One matrix product instead of OpenCV's matcher objects."""
    if len(cd) < 2:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    q = np.asarray(qd, dtype=np.float32)
    c = np.asarray(cd, dtype=np.float32)
    # |c|^2 - 2 q.c in place, |q|^2 added to each row's two smallest only (it is the row's own), as
    # ``duplicates.match`` does: the same whole numbers, exact in float32 (SIFT's descriptors are
    # whole numbers), without three temporary matrices: a query's 1,500 descriptors against a stored
    # picture's 256, 1.09 ms instead of 1.22-1.36 (the same matches).
    d = q @ c.T
    d *= -2.0
    d += np.einsum("ij,ij->i", c, c)
    first, a, b = two_nearest(d)
    qq = np.einsum("ij,ij->i", q, q)
    return ratio_kept(first, a + qq, b + qq)


def ratio_kept(first: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_ratio_matches`` from ``two_nearest``'s answer (each query row's nearest candidate row and
    the two smallest squared distances): the rows that pass the ratio test, one per candidate row."""
    d1 = np.sqrt(np.maximum(a, 0))
    dn = np.sqrt(np.maximum(b, 0))
    ok = np.flatnonzero(d1 < RATIO * dn)
    if len(ok) == 0:
        return ok, ok
    ci, dist = first[ok], d1[ok]
    order = np.lexsort((dist, ci))  # per candidate keypoint, nearest first
    ci_sorted = ci[order]
    keep = order[np.r_[True, ci_sorted[1:] != ci_sorted[:-1]]]
    return ok[keep], ci[keep]


def verify_mirrored(q: Features, q_mirror: Features | None, c: Features) -> Verification:
    """The better of ``verify(q, c)`` and ``verify(q_mirror, c)`` (a mirrored copy matches the mirror)."""
    a = verify(q, c)
    if q_mirror is None:
        return a
    b = verify(q_mirror, c)
    return Verification(b.inliers, b.matches, True) if b.inliers > a.inliers else a


def decide(v: Verification | None, hash_distance: int | None) -> CopyEvidence:
    """Fuse geometric inliers and the pHash distance into a copy verdict (see the calibration above)."""
    p_geo = 0.0
    if v is not None and v.inliers > _INLIERS_LO:
        p_geo = min(1.0, (v.inliers - _INLIERS_LO) / (_INLIERS_HI - _INLIERS_LO))
    p_hash = 0.0
    if hash_distance is not None and hash_distance < _HASH_HI:
        p_hash = min(1.0, (_HASH_HI - hash_distance) / (_HASH_HI - _HASH_LO))
    conf = 1.0 - (1.0 - p_geo) * (1.0 - p_hash)
    return CopyEvidence(
        copy=conf >= COPY_THRESHOLD,
        confidence=round(conf, 4),
        inliers=0 if v is None else v.inliers,
        inlier_ratio=0.0 if v is None else round(v.ratio, 4),
        hash_distance=hash_distance,
    )
