"""A library of real-photo image files on disk for the query benchmark, and edited-copy queries.

Sources: scikit-image's bundled photos (``skimage.data``, those shipped
without a download) and the PNG backgrounds of Debian's ``desktop-base``
package when installed (``apt-get install --no-install-recommends
desktop-base``). Each library file is either a variant of one source
(random crop of 25-100 % of the area, mirror, quarter turns, gamma,
saturation, grayscale, longer side 240-900 px) or a collage of 2 to 4 crops
of different sources, saved as JPEG (quality 50-95), PNG or WebP. Files are
made once per folder and reused (``make_library`` counts what is there).

Queries (``make_queries``): edited copies of library files (crop, JPEG 25,
mirror, rotation, screenshot-like frame) and collages that are not in the
library (``unrelated``), so that copy verification runs on both outcomes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
_SKIMAGE = ("astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins", "grass",
            "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
            "rocket", "text", "stereo_motorcycle", "colorwheel")  # fmt: skip


def sources() -> list[np.ndarray]:
    """RGB uint8 source photos (skimage.data, desktop-base PNGs, sample_media/photos)."""
    import skimage.data as data
    from PIL import Image

    out = []
    for name in _SKIMAGE:
        a = getattr(data, name)()
        a = a[0] if isinstance(a, tuple) else a
        a = np.asarray(a)
        a = a.astype(np.uint8) * 255 if a.dtype == bool else a
        if a.dtype != np.uint8:
            a = (255 * (a.astype(np.float64) - a.min()) / max(float(a.max() - a.min()), 1e-9)).astype(np.uint8)
        out.append(np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3])
    for p in sorted(Path("/usr/share/desktop-base").glob("**/*.png")):
        if p.stat().st_size > 100_000:
            out.append(np.asarray(Image.open(p).convert("RGB")))
    for p in sorted((ROOT / "sample_media" / "photos").glob("*.jpg")):
        out.append(np.asarray(Image.open(p).convert("RGB")))
    small = []
    for a in out:  # at most 1024 px: the variants are smaller anyway
        im = Image.fromarray(np.ascontiguousarray(a))
        im.thumbnail((1024, 1024))
        small.append(np.asarray(im))
    return small


def _crop(rng: np.random.Generator, a: np.ndarray, lo: float = 0.25) -> np.ndarray:
    h, w = a.shape[:2]
    area = rng.uniform(lo, 1.0)
    ch = max(16, int(h * area ** 0.5 * rng.uniform(0.8, 1.2)))
    cw = max(16, int(w * area / max(ch / h, 1e-3)))
    ch, cw = min(ch, h), min(cw, w)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return a[y : y + ch, x : x + cw]


def _variant(rng: np.random.Generator, srcs: list[np.ndarray]) -> np.ndarray:
    from PIL import Image, ImageEnhance

    if rng.random() < 0.5:
        a = _crop(rng, srcs[int(rng.integers(len(srcs)))])
        if rng.random() < 0.5:
            a = a[:, ::-1]
        if rng.random() < 0.2:
            a = np.rot90(a, int(rng.integers(1, 4)))
        im = Image.fromarray(np.ascontiguousarray(a))
    else:  # a collage of 2 to 4 crops of different sources
        n = int(rng.integers(2, 5))
        side = 320
        tiles = [Image.fromarray(np.ascontiguousarray(_crop(rng, srcs[int(i)], 0.1))).resize((side, side))
                 for i in rng.choice(len(srcs), n, replace=False)]  # fmt: skip
        cols = 2 if n > 2 else n
        rows = (n + cols - 1) // cols
        im = Image.new("RGB", (cols * side, rows * side), tuple(int(v) for v in rng.integers(0, 255, 3)))
        for i, t in enumerate(tiles):
            im.paste(t, ((i % cols) * side, (i // cols) * side))
    im = ImageEnhance.Color(im).enhance(float(rng.uniform(0.4, 1.6)))
    g = float(rng.uniform(0.7, 1.4))
    im = im.point(lambda v: int(255 * (v / 255) ** g))
    if rng.random() < 0.1:
        im = im.convert("L").convert("RGB")
    longer = int(rng.integers(240, 900))
    s = longer / max(im.size)
    im = im.resize((max(16, round(im.width * s)), max(16, round(im.height * s))))
    return np.asarray(im)


def _save(rng: np.random.Generator, a: np.ndarray, stem: Path) -> Path:
    from PIL import Image

    r = rng.random()
    im = Image.fromarray(a)
    if r < 0.8:
        path = stem.with_suffix(".jpg")
        im.save(path, quality=int(rng.integers(50, 96)))
    elif r < 0.9:
        path = stem.with_suffix(".png")
        im.save(path)
    else:
        path = stem.with_suffix(".webp")
        im.save(path, quality=80)
    return path


def make_library(folder: Path, n: int, *, seed: int = 7, start: int = 0) -> list[Path]:
    """Image files ``start`` to ``n - 1`` in ``folder`` (those already there are kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    have = {p.stem: p for p in folder.iterdir() if p.suffix in (".jpg", ".png", ".webp")}
    srcs: list[np.ndarray] | None = None
    out = []
    for i in range(start, n):
        stem = f"img_{i:05d}"
        if stem in have:
            out.append(have[stem])
            continue
        srcs = srcs or sources()
        rng = np.random.default_rng([seed, i])
        out.append(_save(rng, _variant(rng, srcs), folder / stem))
    return out


def _edit(rng: np.random.Generator, a: np.ndarray, family: str) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(a)
    if family == "crop":
        return np.ascontiguousarray(_crop(rng, a, 0.55))
    if family == "mirror":
        return np.ascontiguousarray(a[:, ::-1])
    if family == "rotate":
        return np.asarray(im.rotate(float(rng.uniform(8, 15)), expand=True, fillcolor=(255, 255, 255)))
    if family == "frame":  # a screenshot-like frame around a smaller copy
        w, h = im.size
        canvas = Image.new("RGB", (int(w * 1.5), int(h * 1.5) + 40), (236, 236, 236))
        canvas.paste(im, (int(w * 0.25), 40 + int(h * 0.25)))
        return np.asarray(canvas)
    s = 0.5  # "jpeg": half size (saved at quality 25)
    return np.asarray(im.resize((max(16, round(im.width * s)), max(16, round(im.height * s)))))


FAMILIES = ("crop", "jpeg", "mirror", "rotate", "frame")


def make_queries(folder: Path, library: list[Path], n: int, *, seed: int = 11) -> list[dict[str, str | None]]:
    """``n`` edited copies of library files (``FAMILIES`` in turn) and ``n // 4`` unrelated collages."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    srcs = None
    out: list[dict[str, str | None]] = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        original = library[int(rng.integers(len(library)))]
        family = FAMILIES[i % len(FAMILIES)]
        path = folder / f"q_{i:03d}_{family}.jpg"
        if not path.exists():
            a = _edit(rng, np.asarray(Image.open(original).convert("RGB")), family)
            Image.fromarray(a).save(path, quality=25 if family == "jpeg" else 85)
        out.append({"query": str(path), "original": str(original), "family": family})
    for i in range(max(1, n // 4)):
        path = folder / f"u_{i:03d}.jpg"
        if not path.exists():
            srcs = srcs or sources()
            rng = np.random.default_rng([seed + 1, i])
            Image.fromarray(_variant(rng, srcs)).save(path, quality=85)
        out.append({"query": str(path), "original": None, "family": "unrelated"})
    return out
