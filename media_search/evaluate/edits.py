"""Edited copies of a library's files, the queries of ``media-search evaluate``.

One function per kind makes one edited copy per family, from a seeded
generator, into a folder the caller owns (a temporary one):

* images: ``crop`` (60-80 % of each side), ``jpeg`` (quality 20), ``resize``
  (a quarter to a half of the size), ``brightness`` (darker or brighter, with
  contrast), ``mirror`` (left-right), ``overlay`` (a caption and a logo);
* videos: ``trim`` (4 s from inside), ``reencode`` (half size, low bitrate), with ffmpeg;
* sounds: ``snippet`` (3 s), ``gain`` (quieter or louder), ``noise`` (white
  noise at 10 dB SNR), ``mp3`` (a 3 s snippet at 32 kbit/s, libsndfile's MP3 encoder).

The picture edits follow ``scripts/bench/copy_media.py`` (the copy-detection
benchmark's generators), kept small here so the package does not depend on scripts/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["FAMILIES", "edit", "has_ffmpeg"]

#: Edit families per kind of original, in report order.
FAMILIES: dict[str, tuple[str, ...]] = {
    "image": ("crop", "jpeg", "resize", "brightness", "mirror", "overlay"),
    "video": ("trim", "reencode"),
    "audio": ("snippet", "gain", "noise", "mp3"),
}


def has_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def edit(kind: str, family: str, src: str | Path, out_dir: Path, rng: np.random.Generator) -> Path:
    """One edited copy of ``src`` (a ``kind`` file) by ``family``, written under ``out_dir``; returns its path."""
    maker: dict[str, Callable[[str, Path, Path, np.random.Generator], Path]] = {
        "image": _image, "video": _video, "audio": _audio,
    }  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    return maker[kind](family, Path(src), out_dir, rng)


# -- pictures ----------------------------------------------------------------------------------------


def _font(size: int):  # noqa: ANN202
    from PIL import ImageFont

    for f in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        if os.path.exists(f):
            return ImageFont.truetype(f, size)
    return ImageFont.load_default()


def _image(family: str, src: Path, out_dir: Path, rng: np.random.Generator) -> Path:
    from PIL import Image, ImageDraw, ImageEnhance

    from ..decode.image import open_image

    im = open_image(src).convert("RGB")
    w, h = im.size
    quality = 92
    if family == "crop":
        f = rng.uniform(0.6, 0.8)
        cw, ch = max(8, int(w * f)), max(8, int(h * f))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = im.crop((x, y, x + cw, y + ch))
    elif family == "jpeg":
        quality = 20
    elif family == "resize":
        f = rng.uniform(0.25, 0.5)
        im = im.resize((max(16, int(w * f)), max(16, int(h * f))), Image.Resampling.LANCZOS)
    elif family == "brightness":
        b = rng.uniform(0.55, 0.75) if rng.random() < 0.5 else rng.uniform(1.3, 1.6)
        im = ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(b)).enhance(rng.uniform(0.7, 1.4))
    elif family == "mirror":
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif family == "overlay":
        layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        d.text((int(w * 0.05), int(h * rng.uniform(0.6, 0.8))), str(rng.choice(["SALE -50%", "(c) 2024 News", "Holiday 2023"])),
               font=_font(max(14, w // 12)), fill=(255, 255, 255, 230), stroke_width=2, stroke_fill=(0, 0, 0, 230))  # fmt: skip
        r = max(12, w // 10)
        x0, y0 = w - r - int(w * 0.04), int(h * 0.04)
        d.ellipse([x0, y0, x0 + r, y0 + r], fill=(220, 30, 30, 200))
        im = Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")
    else:
        raise ValueError(family)
    out = out_dir / f"{src.stem}.{family}.jpg"
    im.save(out, quality=quality)
    return out


# -- videos ------------------------------------------------------------------------------------------


def _video(family: str, src: Path, out_dir: Path, rng: np.random.Generator) -> Path:
    out = out_dir / f"{src.stem}.{family}.mp4"
    base = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error"]
    if family == "trim":
        duration = _duration(src)
        length = min(4.0, duration)
        start = float(rng.uniform(0, max(0.0, duration - length)))
        cmd = base + ["-ss", f"{start:.2f}", "-i", str(src), "-t", f"{length:.2f}", "-c:v", "libx264", "-preset", "veryfast",
                      "-crf", "23", "-c:a", "aac", str(out)]  # fmt: skip
    elif family == "reencode":
        cmd = base + ["-i", str(src), "-vf", "scale=trunc(iw/4)*2:trunc(ih/4)*2", "-c:v", "libx264", "-preset", "veryfast",
                      "-crf", "35", "-c:a", "aac", "-b:a", "48k", str(out)]  # fmt: skip
    else:
        raise ValueError(family)
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return out


def _duration(src: Path) -> float:
    try:
        from ..decode.video import probe_video

        return float(probe_video(src).duration) or 8.0
    except Exception:  # noqa: BLE001 - a guess is enough to place the cut
        return 8.0


# -- sounds ------------------------------------------------------------------------------------------


def _audio(family: str, src: Path, out_dir: Path, rng: np.random.Generator) -> Path:
    import soundfile as sf

    from ..decode.audio import decode_audio

    a = decode_audio(src)
    x, sr = a.samples, a.sr
    length = min(3.0, a.duration) if family in ("snippet", "mp3") else a.duration
    start = float(rng.uniform(0, max(0.0, a.duration - length)))
    part = np.asarray(x[int(start * sr) : int((start + length) * sr)], dtype=np.float32)
    if family == "gain":
        g = rng.uniform(0.1, 0.3) if rng.random() < 0.5 else rng.uniform(1.5, 1.9)
        part = np.clip(part * g / max(1.0, float(np.abs(part).max()) * g), -1, 1).astype(np.float32)
    elif family == "noise":
        p = float(np.mean(part**2)) or 1e-6
        part = (part + rng.normal(0, np.sqrt(p / 10), len(part))).astype(np.float32)
    elif family not in ("snippet", "mp3"):
        raise ValueError(family)
    if family == "mp3":
        out = out_dir / f"{src.stem}.{family}.mp3"
        sf.write(out, part, sr, format="MP3", compression_level=0.9)
    else:
        out = out_dir / f"{src.stem}.{family}.wav"
        sf.write(out, part, sr)
    return out
