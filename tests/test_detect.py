"""Detection by content (media_search.detect): the suffix never decides."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media_search.detect import detect_kind, sniff
from media_search.errors import DecodeError, UnsupportedMediaError


def _picture(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "RGB")


def _encoded(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im = _picture()
    if fmt == "GIF":
        im = im.convert("P")
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"])
def test_every_image_format_is_detected_whatever_its_name(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "no_suffix_at_all"
    path.write_bytes(_encoded(fmt))
    assert detect_kind(path) == "image"


def test_jpeg_named_png_is_an_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(_encoded("JPEG"))
    assert detect_kind(path) == "image"


def test_png_named_dat_is_an_image(tmp_path: Path) -> None:
    path = tmp_path / "blob.dat"
    path.write_bytes(_encoded("PNG"))
    assert detect_kind(str(path)) == "image"


def test_text_named_png_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are my notes, not a picture\n")
    with pytest.raises(UnsupportedMediaError, match="not an image, video or audio file") as info:
        detect_kind(path)
    assert "text" in str(info.value)
    assert info.value.path == str(path)


def test_binary_junk_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "junk.jpg"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnsupportedMediaError, match="unknown format"):
        detect_kind(path)


def test_empty_file_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        detect_kind(path)


def test_directory_is_unsupported(tmp_path: Path) -> None:
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    with pytest.raises(UnsupportedMediaError, match="directory"):
        detect_kind(folder)


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="does not exist"):
        detect_kind(tmp_path / "gone.jpg")


def test_a_bomb_header_is_still_an_image(tmp_path: Path) -> None:
    # Detection reads 256 bytes; the size guard is the decoder's job.
    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    assert detect_kind(path) == "image"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0" + b"\0" * 60, "image"),
        (b"RIFF\0\0\0\0WAVEfmt " + b"\0" * 48, "audio"),
        (b"fLaC" + b"\0" * 60, "audio"),
        (b"ID3\x04" + b"\0" * 60, "audio"),
        (b"\0\0\0\x18ftypM4A " + b"\0" * 52, "audio"),
        (b"\0\0\0\x18ftypisom" + b"\0" * 52, "container"),
        (b"\x1a\x45\xdf\xa3" + b"\0" * 60, "container"),
        (b"RIFF\0\0\0\0AVI LIST" + b"\0" * 48, "container"),
        (b"hello world, plain text" + b" " * 41, None),
    ],
)
def test_sniff(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind
