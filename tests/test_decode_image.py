"""Image decoding (media_search.decode.image): orientation, every mode, the bomb guard, draft."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media_search.decode.image import MAX_PIXELS, open_image
from media_search.errors import DecodeError, UnsupportedMediaError

PHOTOS = sorted((Path(__file__).resolve().parents[1] / "sample_media" / "photos").glob("*.jpg"))
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _rgb(path: Path, **kw: object) -> np.ndarray:
    im = open_image(path, **kw)  # type: ignore[arg-type]
    assert im.mode == "RGB"
    return np.asarray(im)


def _close(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tol))


# --- orientation -------------------------------------------------------------------


def _halves(w: int, h: int) -> Image.Image:
    """Left half red, right half blue."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[:, : w // 2] = RED
    arr[:, w // 2 :] = BLUE
    return Image.fromarray(arr, "RGB")


def _save_oriented(im: Image.Image, path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    _save_oriented(_halves(64, 40), path, orientation=6)  # 6: rotate 90° clockwise to display
    assert Image.open(path).size == (64, 40)  # stored landscape
    arr = _rgb(path)
    assert arr.shape == (64, 40, 3)  # decoded portrait
    # The stored left (red) column is the displayed top row.
    assert _close(arr[5, 20], RED) and _close(arr[58, 20], BLUE)


def test_exif_orientation_is_applied_on_the_draft_path_too(tmp_path: Path) -> None:
    path = tmp_path / "big_rotated.jpg"
    _save_oriented(_halves(1600, 1000), path, orientation=6)
    arr = _rgb(path, min_side=224)
    h, w = arr.shape[:2]
    assert h > w and w >= 224 and h < 1600  # portrait, drafted to a reduced scale
    assert _close(arr[10, w // 2], RED) and _close(arr[h - 10, w // 2], BLUE)


# --- modes and formats -----------------------------------------------------------------


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    im = Image.new("P", (20, 10), 0)
    im.putpalette([0, 0, 0] + [255, 0, 0] + [0] * 762)
    im.paste(1, (10, 0, 20, 10))  # right half: palette colour 1 (red); left half: index 0
    path = tmp_path / "p.png"
    im.save(path, transparency=0)  # index 0 is transparent
    assert Image.open(path).mode == "P"
    arr = _rgb(path)
    assert _close(arr[5, 2], WHITE, 0) and _close(arr[5, 15], RED, 0)


def test_la_is_composited_on_white(tmp_path: Path) -> None:
    lum = np.zeros((10, 20), dtype=np.uint8)
    alpha = np.zeros((10, 20), dtype=np.uint8)
    alpha[:, 10:] = 255  # left transparent, right opaque black
    path = tmp_path / "la.png"
    Image.merge("LA", [Image.fromarray(lum), Image.fromarray(alpha)]).save(path)
    assert Image.open(path).mode == "LA"
    arr = _rgb(path)
    assert _close(arr[5, 2], WHITE, 0) and _close(arr[5, 15], (0, 0, 0), 0)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(path)
    assert _close(_rgb(path)[4, 4], (255, 127, 127), 2)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"cmyk.{fmt.lower()}"
    cmyk = np.zeros((10, 20, 4), dtype=np.uint8)
    cmyk[:, :10, 0] = 255  # cyan
    cmyk[:, 10:, 1] = 255  # magenta
    Image.fromarray(cmyk, "CMYK").save(path, fmt)
    assert Image.open(path).mode == "CMYK"
    arr = _rgb(path)
    assert _close(arr[5, 2], (0, 255, 255), 30) and _close(arr[5, 17], (255, 0, 255), 30)


def test_16_bit_grey_is_scaled_to_8_bits(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(1000, 60000, 32).astype(np.uint16), (8, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    arr = _rgb(path)
    row = arr[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    assert np.array_equal(arr[..., 0], arr[..., 2])


def test_grey_and_bilevel(tmp_path: Path) -> None:
    Image.new("L", (8, 8), 77).save(tmp_path / "l.png")
    assert _close(_rgb(tmp_path / "l.png")[0, 0], (77, 77, 77), 0)
    bilevel = Image.new("1", (8, 8), 0)
    bilevel.paste(1, (4, 0, 8, 8))
    bilevel.save(tmp_path / "one.png")
    arr = _rgb(tmp_path / "one.png")
    assert _close(arr[0, 0], (0, 0, 0), 0) and _close(arr[0, 7], WHITE, 0)


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), c).convert("P") for c in (RED, (0, 255, 0), BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(path), "n_frames", 1) == 3
    assert _close(_rgb(path)[8, 8], RED, 8)


@pytest.mark.parametrize(("fmt", "kw"), [("WEBP", {"lossless": True}), ("TIFF", {}), ("BMP", {}), ("PNG", {})])
def test_other_formats_round_trip(tmp_path: Path, fmt: str, kw: dict) -> None:
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    path = tmp_path / f"img.{fmt.lower()}"
    Image.fromarray(src, "RGB").save(path, fmt, **kw)
    assert np.array_equal(_rgb(path), src)


# --- bad input -----------------------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header (with a correct CRC) claims width x height RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [50000, 12500])  # past Pillow's own guard; past only ours
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_is_refused_quickly(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(side, side))
    assert path.stat().st_size < 200
    assert side * side > MAX_PIXELS
    started = time.monotonic()
    with pytest.raises(DecodeError, match=f"{MAX_PIXELS // 1_000_000} megapixel limit") as info:
        open_image(path)
    assert time.monotonic() - started < 1.0
    assert info.value.path == str(path)


_NO_ALLOCATION = textwrap.dedent(
    """
    import json, resource, sys
    from media_search.decode.image import open_image
    from media_search.errors import DecodeError
    limit = 1 << 30  # 1 GiB of address space: decoding would need 7.5 GB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        open_image(sys.argv[1])
    except DecodeError as e:
        print(json.dumps({"error": str(e)}))
    """
)


def test_decompression_bomb_allocates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(50000, 50000))
    out = subprocess.run([sys.executable, "-c", _NO_ALLOCATION, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "megapixel limit" in json.loads(out.stdout)["error"]


def test_truncated_jpeg_is_a_decode_error(tmp_path: Path) -> None:
    data = PHOTOS[0].read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    for kw in ({}, {"min_side": 224}):
        with pytest.raises(DecodeError, match="damaged or truncated"):
            open_image(path, **kw)  # type: ignore[arg-type]


def test_empty_text_and_directory(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        open_image(tmp_path / "empty.jpg")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(UnsupportedMediaError, match="not an image"):
        open_image(tmp_path / "text.png")
    (tmp_path / "x.jpg").mkdir()
    with pytest.raises(UnsupportedMediaError, match="directory"):
        open_image(tmp_path / "x.jpg")


# --- the JPEG draft path ---------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder():
    from media_search.embed.image import ImageEmbedder

    return ImageEmbedder("random", "cpu")


def test_jpeg_draft_matches_full_decode(tmp_path: Path, embedder) -> None:
    from media_search.decode.image import INPUT_SIZE, prepare

    paths = []
    for src in PHOTOS:
        im = Image.open(src).convert("RGB")
        big = im.resize((im.width * 3, im.height * 3), Image.Resampling.BICUBIC)
        path = tmp_path / src.name
        big.save(path, "JPEG", quality=92)
        paths.append(path)
    drafted = [prepare(open_image(p, min_side=INPUT_SIZE)) for p in paths]
    full = [prepare(open_image(p)) for p in paths]
    # The draft path really decodes at a reduced scale, never below the model input.
    small = open_image(paths[0], min_side=INPUT_SIZE)
    assert min(small.size) >= INPUT_SIZE and small.width < Image.open(paths[0]).width
    # Pixels differ by resampling noise only.
    diff = [np.abs(d.astype(int) - f.astype(int)).mean() for d, f in zip(drafted, full)]
    assert max(diff) < 4.0, diff
    a, b = embedder.embed(drafted), embedder.embed(full)
    cosine = np.sum(a * b, axis=1)
    assert cosine.min() > 0.99
    # And the same ranking: each draft finds its own full decode first.
    assert np.array_equal(np.argmax(a @ b.T, axis=1), np.arange(len(paths)))
