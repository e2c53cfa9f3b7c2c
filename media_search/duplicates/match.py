"""Match: is a pair of pictures one picture? The checks themselves, on what ``verify.Verifier`` hands them.

* ``stored_check``: the stored local features of two rows (``Prepared``: a
  row's descriptors and its mirror image's, computed once), Lowe's ratio test
  for both orientations in one matrix product, RANSAC only where enough
  matches survive; the transform comes back with the verdict.
* ``decoded_check``: features computed again from decoded pictures (``Seen``),
  matched and fitted the same way, and the pixels must agree (``ncc``).
* ``ncc``: the correlation of two pictures once a transform lines them up; a
  shared caption or logo on two different photos gives many inliers on a
  small part only, and the rest of the picture disagrees.

Nothing here keeps state: ``verify.Verifier`` runs these on its threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..signals import image as fi

__all__ = ["NCC_MIN", "Prepared", "Seen", "decoded_check", "ncc", "one_thread", "prepare", "stored_check"]

#: Normalised correlation, after the RANSAC transform lines them up, from which two pictures
#: are one picture. Shared overlays (the same caption or logo on two photos) give many inliers
#: on a small part; the rest of the picture then disagrees.
NCC_MIN = 0.5


@dataclass
class Seen:
    """One library picture as verification sees it: gray at features scale, its features, and
    whether it sits in a frame (a screenshot: ``signals.image.content_box``), in which case
    both are of the inner picture only -- window chrome is shared by every screenshot."""

    gray: np.ndarray
    features: fi.Features
    framed: bool


#: Ratio-test matches at or under which a stored-feature check stops: RANSAC cannot find more
#: inliers than matches, and ``pictures.QUICK_MIN`` inliers or fewer count as nothing in common.
_QUICK_MATCHES = 4


@dataclass(frozen=True)
class Prepared:
    """One row's stored features, its mirror's, and their squared norms, computed once. Thousands
    are kept (``verify``), so the descriptors stay uint8, as stored (70 KB a row, not 260 KB in
    float32): the products widen them as they go."""

    features: fi.Features
    mirror: fi.Features
    both: np.ndarray  # uint8 (2n, 128): the descriptors, then the mirror's
    both_sq: np.ndarray  # float32 (2n,)

    @classmethod
    def of(cls, f: fi.Features) -> Prepared:
        m = fi.mirror_features(f)
        # one array for both orientations, the features' descriptors views of it
        n = len(f)
        both = np.ascontiguousarray(np.concatenate([f.descriptors, m.descriptors]), dtype=np.uint8)
        return cls(replace(f, descriptors=both[:n]), replace(m, descriptors=both[n:]), both, _sq(both))


def stored_check(a: Prepared, b: Prepared) -> tuple[fi.Verification, np.ndarray | None]:
    """``signals.image.verify_mirrored`` of stored features, with one matrix product for both
    orientations and no RANSAC where the ratio test leaves too few matches (most pairs); and the
    transform of the better orientation (``a``'s, or its mirror's, points to ``b``'s). A picture
    stored with fewer than ``signals.image.MIN_POINTS`` keypoints (a smooth gradient, a flat colour)
    matches nothing, as in ``verify_model``: decoding it again would find no more (its features at
    ``VERIFY_SIDE`` are coarser than the stored ones)."""
    n, nb = len(a.features), len(b.features)
    if n < fi.MIN_POINTS or nb < fi.MIN_POINTS:
        return fi.Verification(0, 0), None
    found = _ratio_pairs(a.both, a.both_sq, b.both[:nb], b.both_sq[:nb], (n,))
    if max(len(qi) for qi, _ in found) <= _QUICK_MATCHES:
        return fi.Verification(0, max(len(qi) for qi, _ in found)), None
    direct, mirror = (fi.fit_matches(f, b.features, qi, ci) if len(qi) > _QUICK_MATCHES else (fi.Verification(0, len(qi)), None)
                      for f, (qi, ci) in zip((a.features, a.mirror), found))  # fmt: skip
    if mirror[0].inliers > direct[0].inliers:
        return fi.Verification(mirror[0].inliers, mirror[0].matches, True), mirror[1]
    return direct


def _ratio_pairs(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray, parts: tuple[int, ...] = ()) -> list[tuple[np.ndarray, np.ndarray]]:
    """The matches ``signals.image._ratio_matches`` keeps from the uint8 descriptors ``a`` to ``b``
    (``a_sq``, ``b_sq``: their squared norms), from one matrix product (torch's, on one thread:
    ``one_thread``; numpy's threaded BLAS is several times slower on products this small when the
    cores are busy). ``parts``: where ``a``'s rows are cut into several pictures (a picture and its
    mirror), each matched to ``b`` on its own (one match per row of ``b`` each), its rows numbered
    from 0. The descriptors are whole numbers from 0 to 255, so every distance is a whole number that
    float32 holds exactly: the matches are those of the reference, not close to them."""
    import torch

    if len(b) < 2:
        return [(np.zeros(0, np.intp), np.zeros(0, np.intp)) for _ in range(len(parts) + 1)]
    # |a|^2 + |b|^2 - 2 a.b, with |a|^2 added after the row's two smallest are found (it is the row's own)
    e = torch.addmm(torch.from_numpy(b_sq), torch.from_numpy(a).float(), torch.from_numpy(b).float().T, beta=1, alpha=-2).numpy()
    nearest, d1, dn = fi.two_nearest(e)
    d1, dn = d1 + a_sq, dn + a_sq
    out = []
    for lo, hi in zip((0, *parts), (*parts, len(a))):
        out.append(fi.ratio_kept(nearest[lo:hi], d1[lo:hi], dn[lo:hi]))
    return out


def decoded_check(a: Seen, b: Seen) -> fi.Verification:
    """``signals.image.verify`` of the decoded pictures' features plus a pixel check: b brought
    onto a by the transform found must correlate (``NCC_MIN``)."""
    if len(a.features) < fi.MIN_POINTS or len(b.features) < fi.MIN_POINTS:
        return fi.Verification(0, 0)
    (qi, ci), = _ratio_pairs(a.features.descriptors, _sq(a.features.descriptors), b.features.descriptors, _sq(b.features.descriptors))
    v, model = fi.fit_matches(a.features, b.features, qi, ci)
    if model is not None and v.inliers > 4 and ncc(a.gray, b.gray, model) < NCC_MIN:
        return fi.Verification(0, v.matches)
    return v


def _sq(d: np.ndarray) -> np.ndarray:
    """Squared norms (float32) of uint8 descriptors."""
    w = d.astype(np.float32)
    return (w * w).sum(1)


def ncc(a: np.ndarray, b: np.ndarray, model: np.ndarray) -> float:
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


def prepare(text: str | None) -> Prepared | None:
    """A row's stored features (``signals.image.pack_features`` text) ready for ``stored_check``;
    None when it has none (an index from before they were stored) or they cannot be read: the
    pair is decoded then. A row stored with no keypoints at all is a ``Prepared`` of none."""
    f = fi.unpack_features(text)
    return None if f is None else Prepared.of(f)


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
