"""A photo library as people have it: HEIC/HEIF and AVIF from phones, camera RAW files.

HEIC and AVIF files are generated here (pillow-heif writes HEIC, Pillow writes AVIF), stored
sideways with an EXIF orientation tag, and must index and be found by their upright JPEG twin.
RAW files are built by hand around an embedded JPEG preview (TIFF-based like NEF/DNG, and
Fujifilm's RAF); one with no preview is reported as unsupported with the reason.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media_search.decode.image import open_image
from media_search.detect import detect_kind, sniff
from media_search.errors import UnsupportedMediaError

pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is a dependency: pip install -e .")
ORIENTATION = 0x0112


def _upright(seed: int, size: tuple[int, int] = (480, 320)) -> Image.Image:
    """A landscape picture that looks different turned (a gradient, blocks, a bright corner)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], axis=-1).astype(np.uint8)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        arr[y0 : y0 + 60, x0 : x0 + 60] = rng.integers(0, 255, 3)
    arr[:40, :40] = 255
    return Image.fromarray(arr, "RGB")


def _sideways_exif() -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90° clockwise to display": the pixels are stored turned left
    return exif.tobytes()


def _save_sideways(img: Image.Image, path: Path, fmt: str) -> Path:
    stored = img.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise: what the camera wrote
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()
    stored.save(path, format=fmt, exif=_sideways_exif(), quality=90)
    return path


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.mark.parametrize("suffix,fmt", [(".heic", "HEIF"), (".avif", "AVIF")])
def test_heic_and_avif_are_images_decoded_upright(tmp_path: Path, suffix: str, fmt: str) -> None:
    upright = _upright(1)
    path = _save_sideways(upright, tmp_path / f"phone{suffix}", fmt)
    head = path.read_bytes()[:64]
    assert head[4:8] == b"ftyp"  # an ISO-BMFF container, like an MP4 ...
    assert sniff(head) == "image"  # ... but a picture
    assert detect_kind(path) == "image"
    # A wrong suffix still works: judged by content.
    renamed = path.rename(tmp_path / "phone.mp4")
    assert detect_kind(renamed) == "image"
    got = open_image(renamed)
    assert got.mode == "RGB" and got.size == upright.size
    assert _mean_diff(got, upright) < 12, "EXIF orientation not applied"


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"])
def test_heif_brands_are_not_videos(brand: bytes) -> None:
    assert sniff(b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00mif1heic") == "image"
    assert sniff(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2") == "container"  # an MP4 is still probed


# --- camera RAW ---------------------------------------------------------------------------------


def _jpeg(img: Image.Image, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    kwargs = {}
    if orientation:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        kwargs["exif"] = exif.tobytes()
    img.save(buf, "JPEG", quality=92, **kwargs)
    return buf.getvalue()


def tiff_raw(preview: bytes | None, orientation: int = 1) -> bytes:
    """A minimal TIFF-based RAW: IFD0 (orientation, a small JPEG thumbnail) and a SubIFD with
    the large preview (JPEGInterchangeFormat/Length), then some fake sensor bytes."""
    thumb = _jpeg(_upright(9, (160, 120)))
    sensor = bytes(range(256)) * 64
    entries0 = [(0x0112, 3, 1, orientation), (0x0201, 4, 1, 0), (0x0202, 4, 1, len(thumb))]
    if preview is not None:
        entries0.append((0x014A, 4, 1, 0))
    ifd0_at = 8
    ifd0_size = 2 + 12 * len(entries0) + 4
    sub_at = ifd0_at + ifd0_size
    sub_size = 2 + 12 * 2 + 4
    thumb_at = sub_at + sub_size
    preview_at = thumb_at + len(thumb)
    fixed = {0x0201: thumb_at, 0x014A: sub_at}
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd0_at))
    out += struct.pack("<H", len(entries0))
    for tag, typ, n, value in sorted(entries0):
        value = fixed.get(tag, value)
        out += struct.pack("<HHI", tag, typ, n) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    out += struct.pack("<I", 0)
    sub = [(0x0201, 4, 1, preview_at), (0x0202, 4, 1, len(preview or b""))]
    out += struct.pack("<H", 2) + b"".join(struct.pack("<HHII", *e) for e in sub) + struct.pack("<I", 0)
    assert len(out) == thumb_at
    out += thumb + (preview or b"") + sensor
    return bytes(out)


def raf_raw(preview: bytes) -> bytes:
    header = bytearray(b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\x00"))
    at = 100
    header += struct.pack(">II", at, len(preview))
    return bytes(header.ljust(at, b"\x00")) + preview + b"\x00" * 4096


def test_raw_preview_is_the_picture(tmp_path: Path) -> None:
    upright = _upright(2)
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    nef = tmp_path / "DSC_0001.NEF"
    nef.write_bytes(tiff_raw(_jpeg(sideways), orientation=6))  # the RAW's IFD0 says how to turn it
    raf = tmp_path / "DSCF0001.RAF"
    raf.write_bytes(raf_raw(_jpeg(sideways, orientation=6)))  # the preview's own EXIF says it
    for path in (nef, raf):
        assert detect_kind(path) == "image"
        got = open_image(path)
        assert got.size == upright.size, path
        assert _mean_diff(got, upright) < 8, path


def test_raw_without_preview_is_unsupported_with_the_reason(tmp_path: Path) -> None:
    cr2 = tmp_path / "IMG_0001.CR2"
    cr2.write_bytes(tiff_raw(None))  # only a 160x120 thumbnail: too small to stand for the photo
    assert detect_kind(cr2) == "image"
    with pytest.raises(UnsupportedMediaError, match=r"camera RAW file \(CR2\) with no embedded JPEG preview"):
        open_image(cr2)


def test_a_photo_library_indexes_and_finds_heic_avif_and_raw(tmp_path: Path, library) -> None:
    photos = tmp_path / "Pictures"
    photos.mkdir()
    twin = _upright(3)
    _save_sideways(twin, photos / "IMG_0001.HEIC", "HEIF")
    _save_sideways(_upright(4), photos / "IMG_0002.avif", "AVIF")
    (photos / "DSC_0003.NEF").write_bytes(tiff_raw(_jpeg(_upright(5).transpose(Image.Transpose.ROTATE_90)), orientation=6))
    (photos / "IMG_0004.CR2").write_bytes(tiff_raw(None))
    for seed in range(10, 16):
        _upright(seed).save(photos / f"other_{seed}.jpg", quality=90)
    report = library.index([photos])
    assert report.indexed == 9, report.to_dict()
    failed = {Path(f["path"]).name: f["error"] for f in report.to_dict()["failed"]}
    assert list(failed) == ["IMG_0004.CR2"], failed
    assert "camera RAW file" in failed["IMG_0004.CR2"] and "damaged" not in failed["IMG_0004.CR2"]

    queries = tmp_path / "queries"
    queries.mkdir()
    for name, img, expect in [("twin.jpg", twin, "IMG_0001.HEIC"), ("four.jpg", _upright(4), "IMG_0002.avif"), ("five.jpg", _upright(5), "DSC_0003.NEF")]:
        img.save(queries / name, quality=90)
        results = library.find_similar(queries / name, k=3, kinds=["image"])
        assert Path(results[0].path).name == expect, [(Path(m.path).name, m.score) for m in results]
    # ... and the rotated HEIC finds its upright JPEG twin.
    (photos / "twin.jpg").write_bytes((queries / "twin.jpg").read_bytes())
    library.index([photos / "twin.jpg"])
    results = library.find_similar(photos / "IMG_0001.HEIC", k=3, kinds=["image"])
    assert Path(results[0].path).name == "twin.jpg", [(Path(m.path).name, m.score) for m in results]
