"""Detect a file's kind (image, video or audio) from its content, not its suffix.

Magic bytes decide for unambiguous formats. Containers that may hold video or
only sound (MP4/MOV, Matroska/WebM, AVI, Ogg, ASF) are probed with OpenCV: a
container with no decodable video frame is treated as audio, so an ``.mp4``
holding only a soundtrack is indexed as a sound rather than rejected.
"""

from __future__ import annotations

import os
from pathlib import Path

from .decode import refuse_empty
from .errors import DecodeError, UnsupportedMediaError
from .types import Kind

__all__ = ["detect_kind", "sniff"]

_HEAD = 64
_AUDIO_MP4_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
#: ISO-BMFF brands of HEIF/HEIC and AVIF pictures (phones' photos): images, not videos.
_IMAGE_MP4_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}


def sniff(head: bytes) -> str | None:
    """Classify the first bytes of a file: 'image', 'video', 'audio', 'container' or None.

    'container' means the format may hold video or only sound; probe to decide.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image"  # JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:2] == b"BM" and len(head) >= 26:
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"  # TIFF
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "container"
    if head[:4] == b"fLaC" or head[:3] == b"ID3":
        return "audio"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if head[4:8] == b"ftyp":
        if head[8:12] in _IMAGE_MP4_BRANDS:
            return "image"
        return "audio" if head[8:12] in _AUDIO_MP4_BRANDS else "container"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska / WebM
        return "container"
    if head[:4] == b"OggS":
        return "container" if b"theora" in head.lower() else "audio"
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return "container"  # ASF / WMV / WMA
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3") or head[:1] == b"\x47" and len(head) > 188 and head[188:189] == b"\x47":
        return "container"  # MPEG-PS / MPEG-TS
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio"  # MPEG audio frame (mp3) or ADTS AAC
    return None


def _has_video_stream(path: str) -> bool:
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return False
        ok = cap.grab()
        return bool(ok)
    finally:
        cap.release()


def detect_kind(path: str | Path) -> Kind:
    """Return 'image', 'video' or 'audio' for ``path``, judged by its content.

    Raises ``UnsupportedMediaError`` for directories and files of no known
    media kind, and ``DecodeError`` for empty or unreadable files.
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        raise UnsupportedMediaError(f"{p} is a directory, not a media file: give a file (index folders with `media-search index`).", path=p)
    try:
        with open(p, "rb") as fh:
            head = fh.read(_HEAD * 4)
    except FileNotFoundError as e:
        raise DecodeError(f"{p} does not exist.", path=p) from e
    except OSError as e:
        raise DecodeError(f"{p} cannot be read: {e.strerror or e}.", path=p) from e
    refuse_empty(p, len(head))
    kind = sniff(head)
    from .decode.raw import is_raw

    if is_raw(p, head):
        return "image"  # a camera RAW file: its embedded preview is the picture
    if kind == "container":
        return "video" if _has_video_stream(p) else "audio"
    if kind is None:
        looks = "text" if _looks_like_text(head) else "an unknown format"
        raise UnsupportedMediaError(
            f"{p} is not an image, video or audio file (its content is {looks}): give a photo, video or sound file.", path=p
        )
    return kind  # type: ignore[return-value]


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
