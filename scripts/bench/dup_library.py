"""A library of real files for timing ``media-search duplicates`` (``scripts/bench_duplicates.py --sections real``).

Pictures are cut from the real photos and wallpapers on this machine (scikit-image's data, the
``sample_media`` photos, ``/usr/share/wallpapers`` and ``/usr/share/images/desktop-base``): each
is a random 20-45 % crop of one source, resized to 480-800 px, its brightness changed and saved
as JPEG (quality 70-95). Crops of one source overlap now and then, so some are true partial
copies of each other, as in a real library. Videos (``n / 50``): 6 s pans across a source at
320x240. Sounds (``n / 10``): 6 s generated songs (``copy_media.song``), each its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def sources() -> list[Path]:
    import skimage

    found: list[Path] = []
    sk = Path(skimage.__file__).parent / "data"
    found += [p for p in sorted(sk.iterdir()) if p.suffix in (".png", ".jpg") and "chessboard" not in p.name]
    found += sorted((ROOT / "sample_media" / "photos").glob("*.jpg"))
    for folder in ("/usr/share/wallpapers", "/usr/share/images/desktop-base"):
        for dirpath, _, names in os.walk(folder, followlinks=True):
            # one picture per wallpaper: the smallest of its sizes that is at least 1600 px wide
            sized = []
            for n in sorted(names):
                if n.endswith((".png", ".jpg")) and "screenshot" not in n:
                    w, _, h = Path(n).stem.partition("x")
                    area = int(w) * int(h) if w.isdigit() and h.isdigit() else 0
                    sized.append((area if not w.isdigit() or int(w) >= 1600 else 1 << 40, n))
            if sized:
                found.append(Path(dirpath) / min(sized)[1])
    return sorted(set(found))


def _load(path: Path, cache: dict[Path, np.ndarray]) -> np.ndarray:
    from PIL import Image

    if path not in cache:
        im = Image.open(path).convert("RGB")
        if max(im.size) > 2000:  # the large wallpapers: plenty of pixels for 800 px crops
            s = 2000 / max(im.size)
            im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
        cache[path] = np.asarray(im)
    return cache[path]


def make_library(out: Path, n_images: int, *, seed: int = 0, start: int = 0) -> dict[str, list[str]]:
    """Write ``n_images`` pictures (numbered from ``start``), ``n_images // 50`` videos and
    ``n_images // 10`` sounds under ``out``; returns their paths by kind."""
    import cv2
    import soundfile as sf
    from PIL import Image, ImageEnhance

    from .copy_media import SR, song

    rng = np.random.default_rng(seed + start)
    src = sources()
    cache: dict[Path, np.ndarray] = {}
    made: dict[str, list[str]] = {"image": [], "video": [], "audio": []}
    (out / "images").mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n_images):
        a = _load(src[int(rng.integers(len(src)))], cache)
        h, w = a.shape[:2]
        f = rng.uniform(0.2, 0.45)
        ch, cw = max(32, int(h * f)), max(32, int(w * f * rng.uniform(0.8, 1.25)))
        ch, cw = min(ch, h), min(cw, w)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        im = Image.fromarray(a[y : y + ch, x : x + cw])
        side = int(rng.integers(480, 801))
        s = side / max(im.size)
        im = im.resize((max(16, round(im.width * s)), max(16, round(im.height * s))), Image.Resampling.BILINEAR)
        im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.8, 1.2)))
        path = out / "images" / f"{i // 1000:03d}" / f"pic_{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, quality=int(rng.integers(70, 96)))
        made["image"].append(str(path))
    (out / "videos").mkdir(parents=True, exist_ok=True)
    for i in range(start // 50, (start + n_images) // 50):
        a = _load(src[int(rng.integers(len(src)))], cache)
        h, w = a.shape[:2]
        ch, cw = h // 3, w // 3
        path = out / "videos" / f"clip_{i:05d}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        dy, dx = rng.uniform(-2, 2), rng.uniform(-4, 4)
        for k in range(60):
            y = int(np.clip(y0 + dy * k, 0, h - ch))
            x = int(np.clip(x0 + dx * k, 0, w - cw))
            frame = cv2.resize(a[y : y + ch, x : x + cw], (320, 240), interpolation=cv2.INTER_AREA)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        made["video"].append(str(path))
    (out / "sounds").mkdir(parents=True, exist_ok=True)
    for i in range(start // 10, (start + n_images) // 10):
        path = out / "sounds" / f"song_{i:05d}.flac"
        sf.write(path, song(10_000 + i, seconds=6.0), SR)
        made["audio"].append(str(path))
    return made
