"""Camera RAW files: indexed from the JPEG preview the camera embeds in them.

Nearly every RAW format carries a full-size (or large) JPEG rendering of the
shot next to the sensor data: TIFF-based ones (CR2, NEF, ARW, DNG, ORF, RW2,
PEF, SRW, ...) point at it from an IFD (``JPEGInterchangeFormat`` or a
JPEG-compressed strip), Fujifilm's RAF names it in its header, and Canon's CR3
(ISO-BMFF) keeps it in a box. We take the largest such JPEG that decodes and
apply the RAW's own EXIF orientation when the preview carries none. No RAW
developer is needed; a file with no readable preview is reported as
unsupported, with the reason, never as a damaged file.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

from ..errors import DecodeError, UnsupportedMediaError

__all__ = ["RAW_SUFFIXES", "is_raw", "raw_preview"]

#: Suffixes of camera RAW formats (Canon, Nikon, Sony, Adobe, Fujifilm, Olympus, Panasonic,
#: Pentax, Samsung, Leica, Hasselblad, Phase One, Sigma, Kodak, Minolta, Epson, Mamiya).
RAW_SUFFIXES = frozenset(
    ".cr2 .cr3 .crw .nef .nrw .arw .srf .sr2 .dng .raf .orf .rw2 .rwl .pef .srw .3fr .fff "
    ".iiq .x3f .dcr .kdc .mrw .erf .mef .mos".split()
)

_RAF_MAGIC = b"FUJIFILMCCD-RAW"
_TIFF_LIKE = (b"II*\x00", b"MM\x00*", b"IIRO", b"IIRS", b"IIU\x00")  # TIFF, Olympus ORF, Panasonic RW2
_CR3_BRAND = b"crx "
#: Previews smaller than this on their longer side are thumbnails, not worth indexing.
_MIN_PREVIEW_SIDE = 320


def is_raw(path: str | os.PathLike[str], head: bytes | None = None) -> bool:
    """True for a camera RAW file: a RAW suffix, or content only RAW formats have."""
    p = os.fspath(path)
    if head is None:
        try:
            with open(p, "rb") as fh:
                head = fh.read(64)
        except OSError:
            return False
    if head.startswith(_RAF_MAGIC) or head[:4] in (b"IIRO", b"IIRS", b"IIU\x00"):
        return True
    if head[4:8] == b"ftyp" and head[8:12] == _CR3_BRAND:
        return True
    return Path(p).suffix.lower() in RAW_SUFFIXES and (head[:4] in _TIFF_LIKE or head[4:8] == b"ftyp")


def raw_preview(path: str | os.PathLike[str], *, max_pixels: int = 144_000_000):  # -> PIL.Image.Image, upright
    """The largest embedded JPEG preview of the RAW file at ``path``, opened with Pillow and upright.

    Raises ``UnsupportedMediaError`` (with the reason) when there is none to read, and
    ``DecodeError`` when the file cannot be read at all.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read()
    except FileNotFoundError as e:
        raise DecodeError(f"{p} does not exist.", path=p) from e
    except OSError as e:
        raise DecodeError(f"{p} cannot be read: {e.strerror or e}.", path=p) from e
    fmt = Path(p).suffix.lower().lstrip(".").upper() or "RAW"
    orientation = 1
    candidates: list[tuple[int, int]] = []
    if data.startswith(_RAF_MAGIC) and len(data) >= 92:
        off, length = struct.unpack(">II", data[84:92])
        candidates.append((off, length))
    elif data[:4] in _TIFF_LIKE:
        found, orientation = _tiff_jpegs(data)
        candidates.extend(found)
    candidates.extend((off, len(data) - off) for off in _jpeg_starts(data))
    opened = []
    for off, length in dict.fromkeys(candidates):
        if not data.startswith(b"\xff\xd8\xff", off):
            continue
        try:
            im = Image.open(io.BytesIO(data[off : off + length]))  # reads the header only
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            continue
        if im.format == "JPEG" and max(im.size) >= _MIN_PREVIEW_SIDE and im.size[0] * im.size[1] <= max_pixels:
            opened.append(im)
    best = None
    for im in sorted(opened, key=lambda im: -im.size[0] * im.size[1]):
        try:
            im.load()  # the decoder stops at the JPEG's end marker
        except (OSError, SyntaxError, ValueError):
            continue  # lossless-JPEG sensor data, or a damaged preview
        best = im
        break
    if best is None:
        raise UnsupportedMediaError(
            f"{p} is a camera RAW file ({fmt}) with no embedded JPEG preview media_search can read: "
            "export it as JPEG (or TIFF) from your photo software to index it.",
            path=p,
        )
    if best.getexif().get(0x0112, 1) == 1 and orientation != 1:
        exif = best.getexif()
        exif[0x0112] = orientation
        best.info["exif"] = exif.tobytes()
    return ImageOps.exif_transpose(best)


def _tiff_jpegs(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """(offset, length) of JPEGs an IFD points at (IFD chain, SubIFDs, EXIF IFD), and IFD0's orientation."""
    order = "<" if data[:2] == b"II" else ">"
    out: list[tuple[int, int]] = []
    orientation = 1
    try:
        first = struct.unpack(order + "I", data[4:8])[0]
    except struct.error:
        return out, orientation
    todo, seen = [first], set()
    while todo and len(seen) < 64:
        ifd = todo.pop()
        if ifd in seen or ifd <= 0 or ifd + 2 > len(data):
            continue
        seen.add(ifd)
        tags = _read_ifd(data, ifd, order)
        if tags is None:
            continue
        entries, next_ifd = tags
        if len(seen) == 1:
            orientation = int(entries.get(0x0112, [1])[0]) if 1 <= int(entries.get(0x0112, [1])[0]) <= 8 else 1
        if 0x0201 in entries and 0x0202 in entries:
            out.append((int(entries[0x0201][0]), int(entries[0x0202][0])))
        if entries.get(0x0103, [0])[0] in (6, 7) and 0x0111 in entries and 0x0117 in entries and len(entries[0x0111]) == 1:
            out.append((int(entries[0x0111][0]), int(entries[0x0117][0])))
        for sub in (0x014A, 0x8769):  # SubIFDs, EXIF IFD
            todo.extend(int(v) for v in entries.get(sub, []))
        if next_ifd:
            todo.append(next_ifd)
    return out, orientation


_TYPE_SIZES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 7: ("B", 1), 13: ("I", 4), 16: ("Q", 8)}


def _read_ifd(data: bytes, at: int, order: str) -> tuple[dict[int, list[int]], int] | None:
    try:
        (count,) = struct.unpack_from(order + "H", data, at)
        if count > 1000:
            return None
        entries: dict[int, list[int]] = {}
        for i in range(count):
            tag, typ, n, value = struct.unpack_from(order + "HHI4s", data, at + 2 + 12 * i)
            if typ not in _TYPE_SIZES or tag not in (0x0103, 0x0111, 0x0112, 0x0117, 0x0201, 0x0202, 0x014A, 0x8769) or n > 4096:
                continue
            fmt, size = _TYPE_SIZES[typ]
            raw = value if size * n <= 4 else data[struct.unpack(order + "I", value)[0] :][: size * n]
            if len(raw) < size * n:
                continue
            entries[tag] = list(struct.unpack(order + fmt * n, raw[: size * n]))
        (next_ifd,) = struct.unpack_from(order + "I", data, at + 2 + 12 * count)
        return entries, next_ifd
    except struct.error:
        return None


def _jpeg_starts(data: bytes, limit: int = 16) -> list[int]:
    """Where JPEG streams start (CR3's preview box, makers' private tags), found by their marker."""
    out: list[int] = []
    at = data.find(b"\xff\xd8\xff")
    while at >= 0 and len(out) < limit:
        out.append(at)
        at = data.find(b"\xff\xd8\xff", at + 3)
    return out
