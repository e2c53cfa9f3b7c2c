"""Words: pictures proposed by their stored local features (a bag of visual words), beside pHash and the embeddings.

pHash is blind to rotation and crops, and an embedding's nearest rows may miss a
copy (always with ``random`` weights). The stored local features (256 SIFT
descriptors per image: ``signals.image.pack_features``) are invariant to rotation,
scale and crops by design, so each picture's descriptors are counted over a small
vocabulary learnt from the library itself (k-means on a sample of its descriptors,
fixed seed), weighted by tf-idf (a word most pictures have says little) and
compared: each picture's ``TOP`` most alike pictures are *proposed*. As with the
embeddings, a proposal is only a candidate: it becomes a copy through the
local-feature checks of ``verify``, never through this similarity.

Cost: one pass over the stored descriptors (projected on their 32 principal
components, then assigned: descriptors x ``VOCAB`` x 32 products) and one over the
pairs of pictures (``n x n x VOCAB`` products, in blocks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..signals import image as fi

__all__ = ["VOCAB", "TOP", "word_vectors", "word_neighbours"]

#: Visual words (k-means centroids of the library's own descriptors).
VOCAB = 256
#: Pictures proposed per picture.
TOP = 5
_SAMPLE = 20_000
_ITERS = 8
_DIMS = 32
_CHUNK = 65_536
_BLOCK = 1024


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    import torch

    c = torch.from_numpy(centres)
    cc = (c * c).sum(1)
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), _CHUNK):
        part = torch.from_numpy(x[start : start + _CHUNK])
        out[start : start + len(part)] = (cc[None, :] - 2.0 * part @ c.T).argmin(1).numpy()
    return out


def _project(x: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    import torch

    out = np.empty((len(x), basis.shape[1]), dtype=np.float32)
    b, m = torch.from_numpy(basis), torch.from_numpy(mean.astype(np.float32))
    for start in range(0, len(x), _CHUNK):
        part = np.ascontiguousarray(x[start : start + _CHUNK], dtype=np.float32)
        out[start : start + _CHUNK] = ((torch.from_numpy(part) - m) @ b).numpy()
    return out


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    import torch

    centres = x[rng.choice(len(x), size=k, replace=False)].copy()
    tx = torch.from_numpy(x)
    for _ in range(_ITERS):
        label = _nearest(x, centres)
        counts = np.bincount(label, minlength=k)
        sums = torch.zeros((k, x.shape[1]), dtype=torch.float32).index_add_(0, torch.from_numpy(label), tx).numpy()
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def word_vectors(local: Sequence[str | None], *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(``(n, VOCAB)`` unit tf-idf word vectors, which rows had stored features) for the stored
    local features of ``n`` pictures."""
    descs, owners = [], []
    for i, text in enumerate(local):
        f = fi.unpack_features(text)
        if f is not None and len(f) >= 3:
            descs.append(f.descriptors.astype(np.uint8))  # whole numbers 0-255: a quarter of the memory
            owners.append(np.full(len(f), i, dtype=np.int64))
    n = len(local)
    ok = np.zeros(n, dtype=bool)
    if not descs:
        return np.zeros((n, VOCAB), np.float32), ok
    x = np.concatenate(descs)  # uint8, made float32 a chunk at a time
    del descs
    owner = np.concatenate(owners)
    ok[np.unique(owner)] = True
    rng = np.random.default_rng(seed)
    k = min(VOCAB, max(2, len(x) // 8))
    sample = x[rng.choice(len(x), size=min(len(x), _SAMPLE), replace=False)].astype(np.float32)
    # SIFT's first ``_DIMS`` principal components (of the sample): a quarter of the products
    mean = sample.mean(0)
    centred = sample - mean
    _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    basis = np.ascontiguousarray(vecs[:, ::-1][:, :_DIMS], dtype=np.float32)
    centres = _kmeans(_project(sample, mean, basis), k, rng)
    words = np.concatenate([_nearest(_project(x[s : s + _CHUNK], mean, basis), centres) for s in range(0, len(x), _CHUNK)])
    counts = np.bincount(owner * VOCAB + words, minlength=n * VOCAB).reshape(n, VOCAB).astype(np.float32)
    df = (counts > 0).sum(0)
    idf = np.log((ok.sum() + 1) / (df + 1)).astype(np.float32)
    v = np.sqrt(counts) * idf[None, :]
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.where(norm > 0, v / np.maximum(norm, 1e-12), 0).astype(np.float32), ok


def word_neighbours(vectors: np.ndarray, ok: np.ndarray, top: int = TOP) -> list[tuple[int, int]]:
    """(i, j), i < j: each row's ``top`` most alike rows among those with words (both directions merged)."""
    import torch

    rows = np.nonzero(ok)[0]
    if len(rows) < 2:
        return []
    v = torch.from_numpy(np.ascontiguousarray(vectors[rows]))
    k = min(top, len(rows) - 1)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, len(rows), _BLOCK):
        sim = (v[start : start + _BLOCK] @ v.T).numpy()
        idx = np.arange(start, start + len(sim))
        sim[np.arange(len(sim)), idx] = -np.inf
        best = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        for a, js in zip(rows[idx].tolist(), rows[best].tolist()):
            for b in js:
                pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)
