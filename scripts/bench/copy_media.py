"""Generated media for ``scripts/bench_copy.py``: a library of real-looking pictures and sounds,
and edited copies of them (one folder per edit family), all from fixed seeds.

Pictures: the 12 photos of ``sample_media/photos``, 8 more real photos and scans that ship with
scikit-image and matplotlib, and 16 procedural "paintings" as distractors; unrelated queries are
other scikit-image pictures and paintings kept out of the library. Sounds: the 4 sample sounds,
espeak-ng speech in several voices, generated songs (chords, melody, drums; each with its own key,
tempo and timbre) and noise textures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
IMAGE_FAMILIES = ["crop", "downscale", "jpeg20", "rotate", "brightness_contrast", "grayscale",
                  "mirror", "text_logo", "screenshot", "crop_jpeg"]  # fmt: skip
AUDIO_FAMILIES = ["snippet", "noise_10db", "gain", "mp3_low", "resample", "tempo", "short"]


# -- pictures --------------------------------------------------------------------------------------
def _extra_pictures() -> dict[str, np.ndarray]:
    from PIL import Image
    import skimage
    import matplotlib

    sk = Path(skimage.__file__).parent / "data"
    mpl = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data"
    names = ["coins.png", "ihc.png", "moon.png", "motorcycle_left.png", "page.png", "microaneurysms.png", "horse.png"]
    out = {Path(n).stem: np.asarray(Image.open(sk / n).convert("RGB")) for n in names}
    out["grace_hopper"] = np.asarray(Image.open(mpl / "grace_hopper.jpg").convert("RGB"))
    return out


def _unrelated_pictures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from PIL import Image
    import skimage

    sk = Path(skimage.__file__).parent / "data"
    out = {Path(n).stem: np.asarray(Image.open(sk / n).convert("RGB")) for n in ["color.png", "text.png", "logo.png", "phantom.png"]}
    for i in range(4):
        out[f"painting_x{i}"] = painting(rng, 100 + i)
    return out


def painting(rng: np.random.Generator, seed: int) -> np.ndarray:
    """A procedural picture: smooth colour field, shapes, texture (not noise: it has structure)."""
    from PIL import Image, ImageDraw, ImageFilter

    r = np.random.default_rng(seed)
    w, h = int(r.integers(400, 700)), int(r.integers(300, 560))
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([127 + 100 * np.sin(r.uniform(2, 9) * xx + r.uniform(0, 6) + r.uniform(1, 5) * yy) for _ in range(3)], -1)
    im = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(int(r.integers(8, 25))):
        x0, y0 = int(r.integers(0, w)), int(r.integers(0, h))
        x1, y1 = x0 + int(r.integers(20, w // 2)), y0 + int(r.integers(20, h // 2))
        col = tuple(int(c) for c in r.integers(0, 256, 3))
        kind = r.integers(0, 3)
        if kind == 0:
            d.ellipse([x0, y0, x1, y1], fill=col, outline=(0, 0, 0))
        elif kind == 1:
            d.rectangle([x0, y0, x1, y1], fill=col)
        else:
            d.polygon([(int(r.integers(0, w)), int(r.integers(0, h))) for _ in range(5)], fill=col)
    im = im.filter(ImageFilter.GaussianBlur(float(r.uniform(0, 1.5))))
    arr = np.asarray(im).astype(np.float32) + r.normal(0, 6, (h, w, 1))
    return arr.clip(0, 255).astype(np.uint8)


def _save(a: np.ndarray, path: Path, quality: int = 92) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, quality=quality) if path.suffix == ".jpg" else Image.fromarray(a).save(path)


def _font(size: int):  # noqa: ANN202
    from PIL import ImageFont

    for f in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        if os.path.exists(f):
            return ImageFont.truetype(f, size)
    return ImageFont.load_default(size=size)


def edit_image(a: np.ndarray, family: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One edited copy; returns (pixels, JPEG quality to save with)."""
    from PIL import Image, ImageDraw, ImageEnhance, ImageOps

    h, w = a.shape[:2]
    im = Image.fromarray(a)
    if family in ("crop", "crop_jpeg"):
        f = rng.uniform(0.6, 0.8)
        ch, cw = int(h * f), int(w * f)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return a[y : y + ch, x : x + cw], 20 if family == "crop_jpeg" else 92
    if family == "downscale":
        f = rng.uniform(0.25, 0.5)
        return np.asarray(im.resize((max(16, int(w * f)), max(16, int(h * f))), Image.Resampling.LANCZOS)), 92
    if family == "jpeg20":
        return a, 20
    if family == "rotate":
        deg = rng.uniform(8, 15) * rng.choice([-1, 1])
        return np.asarray(im.rotate(deg, resample=Image.Resampling.BICUBIC, expand=bool(rng.integers(0, 2)), fillcolor=(0, 0, 0))), 92
    if family == "brightness_contrast":
        b, c = rng.choice([rng.uniform(0.55, 0.75), rng.uniform(1.3, 1.6)]), rng.choice([rng.uniform(0.5, 0.7), rng.uniform(1.3, 1.6)])
        return np.asarray(ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(b)).enhance(c)), 92
    if family == "grayscale":
        return np.asarray(ImageOps.grayscale(im).convert("RGB")), 92
    if family == "mirror":
        return a[:, ::-1].copy(), 92
    if family == "text_logo":
        im = im.convert("RGBA")
        layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        size = max(14, w // 12)
        d.text((int(w * 0.05), int(h * rng.uniform(0.6, 0.8))), rng.choice(["SALE -50%", "© 2024 News", "Breaking!", "Holiday 2023"]),
               font=_font(size), fill=(255, 255, 255, 230), stroke_width=2, stroke_fill=(0, 0, 0, 230))  # fmt: skip
        r = max(12, w // 10)
        x0, y0 = w - r - int(w * 0.04), int(h * 0.04)
        d.ellipse([x0, y0, x0 + r, y0 + r], fill=(220, 30, 30, 200))
        d.rectangle([x0 + r // 4, y0 + r // 3, x0 + 3 * r // 4, y0 + 2 * r // 3], fill=(255, 255, 255, 220))
        return np.asarray(Image.alpha_composite(im, layer).convert("RGB")), 92
    if family == "screenshot":
        return _screenshot(im, rng), 92
    raise ValueError(family)


def _screenshot(im, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
    """The picture inside an application window: title bar, toolbar, sidebar, status bar."""
    from PIL import Image, ImageDraw

    W, H = 1280, 800
    dark = bool(rng.integers(0, 2))
    bg = (40, 42, 46) if dark else (236, 236, 236)
    fg = (220, 220, 220) if dark else (40, 40, 40)
    canvas = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(canvas)
    d.rectangle([0, 0, W, 34], fill=(30, 30, 30) if dark else (210, 210, 214))
    for i, col in enumerate([(255, 95, 86), (255, 189, 46), (39, 201, 63)]):
        d.ellipse([12 + 22 * i, 10, 26 + 22 * i, 24], fill=col)
    d.text((W // 2 - 80, 8), "photo.jpg - Viewer", font=_font(15), fill=fg)
    d.rectangle([0, 34, W, 74], fill=(52, 54, 58) if dark else (246, 246, 246))
    for i in range(8):
        d.rounded_rectangle([12 + 44 * i, 42, 44 + 44 * i, 66], radius=5, outline=fg)
    side = int(rng.integers(180, 260))
    d.rectangle([0, 74, side, H - 26], fill=(48, 50, 54) if dark else (228, 228, 232))
    for i in range(14):
        d.text((14, 90 + 30 * i), f"Folder {i + 1}", font=_font(14), fill=fg)
    d.rectangle([0, H - 26, W, H], fill=(30, 30, 30) if dark else (210, 210, 214))
    d.text((10, H - 22), "100%  |  3 of 24", font=_font(13), fill=fg)
    area_w, area_h = W - side - 40, H - 74 - 26 - 40
    s = min(area_w / im.width, area_h / im.height) * rng.uniform(0.7, 1.0)
    pic = im.resize((max(1, int(im.width * s)), max(1, int(im.height * s))), Image.Resampling.LANCZOS)
    canvas.paste(pic, (side + 20 + (area_w - pic.width) // 2, 74 + 20 + (area_h - pic.height) // 2))
    return np.asarray(canvas)


def make_images(out: Path, *, seed: int = 0, per_family: int | None = None) -> dict:
    """Write the picture library and queries; returns {"library": [...], "queries": [...], "unrelated": [...]}."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    lib_dir, q_dir = out / "images" / "library", out / "images" / "queries"
    shutil.rmtree(out / "images", ignore_errors=True)
    sources: dict[str, Path] = {}
    for p in sorted((ROOT / "sample_media" / "photos").glob("*.jpg")):
        dst = lib_dir / p.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
        sources[p.stem] = dst
    for name, a in _extra_pictures().items():
        sources[name] = lib_dir / f"{name}.png"
        _save(a, sources[name])
    for i in range(16):
        _save(painting(rng, i), lib_dir / f"painting_{i:02d}.jpg")
    queries = []
    names = sorted(sources)
    for fam in IMAGE_FAMILIES:
        for name in names[: per_family or len(names)]:
            a = np.asarray(Image.open(sources[name]).convert("RGB"))
            e, q = edit_image(a, fam, rng)
            path = q_dir / fam / f"{name}.jpg"
            _save(np.ascontiguousarray(e), path, quality=q)
            queries.append({"family": fam, "query": str(path), "original": str(sources[name])})
    unrelated = []
    for name, a in _unrelated_pictures(rng).items():
        path = q_dir / "unrelated" / f"{name}.jpg"
        _save(a, path)
        unrelated.append(str(path))
    return {"library": sorted(str(p) for p in lib_dir.iterdir()), "queries": queries, "unrelated": unrelated}


# -- sounds ----------------------------------------------------------------------------------------
SR = 22050
_SPEECH = [
    ("en", "The quick brown fox jumps over the lazy dog near the river bank at dawn."),
    ("en-us", "Please remember to bring your umbrella tomorrow, because it may rain all afternoon."),
    ("en+f3", "Reverse media search finds similar images, videos and sounds in your own library."),
    ("en+m3", "Seven hundred and twenty three people attended the concert in the park last night."),
    ("de", "Der Zug nach Berlin fährt heute wegen Bauarbeiten zwanzig Minuten später ab."),
    ("fr", "Le petit déjeuner est servi de sept heures à dix heures dans la grande salle."),
]
_UNRELATED_SPEECH = [("en+f2", "This sentence was never added to the library, so nothing should match it."),
                     ("es", "La biblioteca de sonidos no contiene esta frase en ninguna parte.")]  # fmt: skip


def _espeak(voice: str, text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True, capture_output=True)


def song(seed: int, seconds: float = 12.0) -> np.ndarray:
    """A generated song: a chord progression, a melody and drums, in its own key, tempo and timbre."""
    r = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n, dtype=np.float64)
    bpm = r.uniform(76, 144)
    beat = 60.0 / bpm
    root = int(r.integers(45, 58))
    prog = [[0, 4, 7], [9, 12, 16], [5, 9, 12], [7, 11, 14], [2, 5, 9], [4, 7, 11]]
    order = r.permutation(len(prog))[:4]
    harm = r.uniform(0.1, 1.0, 6) / np.arange(1, 7)

    def tone(f: float, start: float, dur: float, amp: float, decay: float) -> None:
        s, e = int(start * SR), min(n, int((start + dur) * SR))
        if e <= s:
            return
        t = np.arange(e - s) / SR
        vib = 1 + 0.003 * np.sin(2 * np.pi * r.uniform(4, 6) * t)
        env = np.minimum(1, t / 0.01) * np.exp(-t * decay)
        x[s:e] += amp * env * sum(h * np.sin(2 * np.pi * f * (k + 1) * vib * t) for k, h in enumerate(harm))

    t0, bar = 0.0, 0
    while t0 < seconds:
        chord = prog[order[bar % 4]]
        for iv in chord:
            tone(440 * 2 ** ((root + iv - 69) / 12), t0, 4 * beat, 0.25, r.uniform(0.3, 1.2))
        tt = t0
        while tt < t0 + 4 * beat:
            dur = beat * r.choice([0.5, 0.5, 1, 1, 1.5, 2])
            if r.random() < 0.85:
                note = root + 12 + int(r.choice([0, 2, 4, 5, 7, 9, 11, 12, 14])) + int(r.choice(chord)) % 3
                tone(440 * 2 ** ((note - 69) / 12), tt, dur, 0.45, r.uniform(1, 4))
            tt += dur
        for b in range(4):  # kick on 1 and 3, hats on every half beat
            bt = t0 + b * beat
            if b % 2 == 0:
                s = int(bt * SR)
                k = np.arange(min(int(0.15 * SR), n - s)) / SR
                x[s : s + len(k)] += 0.8 * np.sin(2 * np.pi * (50 + 80 * np.exp(-k * 30)) * k) * np.exp(-k * 20)
            for half in (0, 0.5):
                s = int((bt + half * beat) * SR)
                m = min(int(0.05 * SR), n - s)
                if m > 0:
                    hat = r.normal(0, 1, m) * np.exp(-np.arange(m) / SR * 80)
                    x[s : s + m] += 0.15 * np.diff(hat, prepend=0)
        t0 += 4 * beat
        bar += 1
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def texture(seed: int, seconds: float = 10.0) -> np.ndarray:
    """Rain or machine-like noise: filtered noise with droplets or a drifting hum."""
    from scipy.signal import lfilter

    r = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = lfilter([1], [1, -r.uniform(0.5, 0.95)], r.normal(0, 0.1, n))
    t = np.arange(n) / SR
    if seed % 2:
        for _ in range(int(seconds * 12)):
            s = int(r.integers(0, n - 2000))
            x[s : s + 2000] += 0.6 * np.sin(2 * np.pi * r.uniform(1500, 4000) * t[:2000]) * np.exp(-t[:2000] * 60)
    else:
        f0 = r.uniform(60, 140) * (1 + 0.05 * np.sin(2 * np.pi * 0.2 * t))
        x += sum(0.3 / k * np.sin(2 * np.pi * k * np.cumsum(f0) / SR) for k in range(1, 8))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def make_audio(out: Path, *, seed: int = 0, per_family: int | None = None) -> dict:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    lib_dir, q_dir = out / "audio" / "library", out / "audio" / "queries"
    shutil.rmtree(out / "audio", ignore_errors=True)
    lib_dir.mkdir(parents=True)
    for p in sorted((ROOT / "sample_media" / "audio").iterdir()):
        shutil.copy(p, lib_dir / p.name)
    for i, (voice, text) in enumerate(_SPEECH):
        _espeak(voice, text, lib_dir / f"speech_{i}.wav")
    for i in range(6):
        sf.write(lib_dir / f"song_{i}.flac", song(i), SR)
    for i in range(2):
        sf.write(lib_dir / f"texture_{i}.ogg", texture(i), SR)
    library = sorted(str(p) for p in lib_dir.iterdir())
    queries = []
    for fam in AUDIO_FAMILIES:
        for orig in library[: per_family or len(library)]:
            path = q_dir / fam / (Path(orig).stem + (".mp3" if fam == "mp3_low" else ".wav"))
            path.parent.mkdir(parents=True, exist_ok=True)
            edit_audio(orig, fam, path, rng)
            queries.append({"family": fam, "query": str(path), "original": orig})
    unrelated = []
    for i, (voice, text) in enumerate(_UNRELATED_SPEECH):
        unrelated.append(str(q_dir / "unrelated" / f"speech_{i}.wav"))
        _espeak(voice, text, Path(unrelated[-1]))
    for i in range(2):
        unrelated.append(str(q_dir / "unrelated" / f"song_{i}.wav"))
        sf.write(unrelated[-1], song(100 + i, 4.0), SR)
    return {"library": library, "queries": queries, "unrelated": unrelated}


def edit_audio(orig: str, family: str, out: Path, rng: np.random.Generator) -> None:
    import soundfile as sf

    from media_search.decode.audio import decode_audio

    a = decode_audio(orig)
    x, sr = a.samples, a.sr
    dur = {"short": rng.uniform(1.0, 2.0)}.get(family, rng.uniform(2.0, 5.0))
    dur = min(dur, a.duration)
    start = rng.uniform(0, max(0.0, a.duration - dur))
    snip = x[int(start * sr) : int((start + dur) * sr)].copy()
    tmp = out.with_suffix(".tmp.wav")
    if family in ("snippet", "short"):
        sf.write(out, snip, sr)
    elif family == "noise_10db":
        p = float(np.mean(snip**2))
        sf.write(out, snip + rng.normal(0, np.sqrt(p / 10), len(snip)).astype(np.float32), sr)
    elif family == "gain":
        g = rng.choice([rng.uniform(0.1, 0.3), rng.uniform(1.5, 1.9)])
        sf.write(out, np.clip(snip * g / max(1.0, np.abs(snip).max() * g), -1, 1), sr)
    elif family == "mp3_low":
        sf.write(tmp, snip, sr)
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(tmp), "-ac", "1", "-ar", "16000", "-b:a", "24k", str(out)], check=True)
    elif family == "resample":
        sf.write(tmp, snip, sr)
        rate = int(rng.choice([8000, 11025, 16000]))
        subprocess.run(["sox", str(tmp), "-r", str(rate), str(out)], check=True)
    elif family == "tempo":
        sf.write(tmp, snip, sr)
        subprocess.run(["sox", str(tmp), str(out), "tempo", f"{rng.choice([0.95, 0.96, 1.04, 1.05]):.2f}"], check=True)
    else:
        raise ValueError(family)
    tmp.unlink(missing_ok=True)
