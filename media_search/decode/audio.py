"""Decode audio files and video soundtracks to mono float32 samples at 32 kHz.

Which decoder handles what:

| input                                   | decoder                                        |
|-----------------------------------------|------------------------------------------------|
| wav, flac, ogg/vorbis, opus, mp3, aiff  | ``soundfile`` (libsndfile >= 1.1 reads mp3 and |
|                                         | opus), then ``soxr`` resampling to 32 kHz      |
| m4a/aac, wma, ... and video soundtracks | an ``ffmpeg`` subprocess that resamples and    |
| (mp4, mkv, webm, avi, mov, ...)         | pipes AU float32 (channels kept, then mixed to |
|                                         | mono by mean, as for soundfile)                |
| anything ``soundfile`` rejects          | ``ffmpeg``, as a fallback                      |

Formats are recognised by content, not by suffix: an mp3 that is really a wav
decodes as the wav it is. Where ffmpeg is needed but not installed the error
says so and how to install it. The ffmpeg subprocess runs with a timeout and is
killed when it passes it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..embed.models import CNN14
from ..errors import DecodeError, UnsupportedMediaError
from . import refuse_empty

__all__ = ["SAMPLE_RATE", "Audio", "NoSoundtrackError", "decode_audio", "ffmpeg_failure", "has_ffmpeg", "resample"]

log = logging.getLogger(__name__)

SAMPLE_RATE = CNN14.sample_rate  # the rate PANNs Cnn14 was trained on (embed.models)

# Containers soundfile cannot read: go straight to ffmpeg.
_FFMPEG_SUFFIXES = frozenset(
    ".m4a .aac .mp4 .m4v .mkv .webm .avi .mov .wmv .wma .flv .3gp .ts .mpg .mpeg .ac3 .amr".split()
)
_INSTALL_FFMPEG = "install it (apt install ffmpeg / brew install ffmpeg) and try again"


class NoSoundtrackError(DecodeError):
    """A video has no audio stream: callers skip its soundtrack quietly."""


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` is mono float32 at ``sr`` Hz, shape ``(n,)``."""

    samples: np.ndarray
    duration: float  # seconds
    source: Literal["audio", "video"] = "audio"
    sr: int = SAMPLE_RATE


def has_ffmpeg() -> bool:
    """Whether an ``ffmpeg`` executable is on ``PATH``."""
    return shutil.which("ffmpeg") is not None


def decode_audio(
    path: str | Path,
    *,
    sr: int = SAMPLE_RATE,
    timeout: float = 120.0,
    from_video: bool = False,
    span: tuple[float, float] | None = None,
) -> Audio:
    """Decode ``path`` to mono float32 at ``sr`` Hz; ``span``: only ``(start, seconds)`` of it
    (the decoders seek: a stretch of a long file costs what the stretch does).

    ``from_video=True`` reads the soundtrack of a video file and marks the result
    ``source="video"``; a video without an audio stream raises
    ``NoSoundtrackError`` (a ``DecodeError``: "... has no soundtrack").

    Raises ``DecodeError`` for empty, corrupt or timed-out files and
    ``UnsupportedMediaError`` for files that no decoder recognises as audio.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise DecodeError(f"Cannot read {p.name}: {e.strerror or e}.", path=p) from e
    refuse_empty(p, size, "audio")

    source: Literal["audio", "video"] = "video" if from_video else "audio"
    samples: np.ndarray | None = None
    sf_error: Exception | None = None
    if not from_video and p.suffix.lower() not in _FFMPEG_SUFFIXES:
        try:
            samples = _decode_soundfile(p, sr, span)
        except Exception as e:  # libsndfile raises several types; ffmpeg gets a try
            sf_error = e
            log.debug("soundfile could not read %s: %s", p, e)
    if samples is None:
        samples = _decode_ffmpeg(p, sr, timeout=timeout, from_video=from_video, sf_error=sf_error, span=span)

    samples = np.ascontiguousarray(np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0), dtype=np.float32)
    if samples.size == 0:
        what = "soundtrack" if from_video else "file"
        raise DecodeError(f"The {what} of {p.name} holds no audio samples.", path=p)
    return Audio(samples=samples, duration=samples.size / sr, source=source, sr=sr)


def _decode_soundfile(path: Path, sr: int, span: tuple[float, float] | None = None) -> np.ndarray:
    import soundfile as sf

    if span is None:
        data, native_sr = sf.read(str(path), dtype="float32", always_2d=True)
    else:
        with sf.SoundFile(str(path)) as f:
            native_sr = f.samplerate
            f.seek(min(int(span[0] * native_sr), f.frames))
            data = f.read(int(span[1] * native_sr), dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return resample(mono, native_sr, sr)


def resample(samples: np.ndarray, sr_in: int, sr_out: int, *, method: Literal["best", "poly"] = "best") -> np.ndarray:
    """Resample mono float32 ``samples``: the one resampler of the package.

    ``best``: soxr (high quality), or scipy's polyphase filter where soxr is
    missing. ``poly``: always scipy's polyphase filter, whatever is installed
    (the audio fingerprint, whose stamped version assumes it).
    """
    if sr_in == sr_out or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    if method == "best":
        try:
            import soxr
        except ImportError:
            pass
        else:
            return soxr.resample(samples, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(samples, int(sr_out) // g, int(sr_in) // g).astype(np.float32)


def _decode_ffmpeg(
    path: Path, sr: int, *, timeout: float, from_video: bool, sf_error: Exception | None,
    span: tuple[float, float] | None = None,
) -> np.ndarray:
    exe = shutil.which("ffmpeg")
    if exe is None:
        if sf_error is not None:
            raise DecodeError(
                f"{path.name} could not be decoded by soundfile ({sf_error}); reading it needs ffmpeg, "
                f"which is not installed: {_INSTALL_FFMPEG}.",
                path=path,
            ) from sf_error
        what = "The soundtrack of a video" if from_video else f"A {path.suffix or 'file of this kind'} file"
        raise DecodeError(
            f"{what} ({path.name}) needs ffmpeg, which is not installed: {_INSTALL_FFMPEG}.", path=path
        )
    cmd = [
        exe, "-nostdin", "-hide_banner", "-v", "error",
        *(("-ss", f"{span[0]:.3f}") if span else ()), "-i", str(path), *(("-t", f"{span[1]:.3f}") if span else ()),
        "-map", "0:a:0", "-vn", "-sn", "-dn", "-ar", str(sr), "-c:a", "pcm_f32be", "-f", "au", "-",
    ]  # fmt: skip  (AU keeps the channel count, so we downmix by mean exactly as for soundfile)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:  # run() has killed ffmpeg already
        raise DecodeError(
            f"Decoding {path.name} took longer than {timeout:g} s and was stopped; "
            "the file may be damaged or very long.",
            path=path,
        ) from e
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise ffmpeg_failure(path, err, proc.returncode, from_video=from_video, sf_error=sf_error)
    if err:
        log.debug("ffmpeg warnings for %s: %s", path, err)
    return _parse_au(proc.stdout, path)


def ffmpeg_failure(
    path: Path, err: str, returncode: int, *, from_video: bool, sf_error: Exception | None
) -> DecodeError | UnsupportedMediaError:
    """The error for an ffmpeg run that failed with stderr ``err`` (also ``decode.stream``'s)."""
    low = err.lower()
    if "matches no streams" in low or "does not contain any stream" in low:
        return NoSoundtrackError(f"{path.name} has no soundtrack.", path=path)
    unreadable = "invalid data found when processing input" in low or err.startswith(f"{path}: ")
    if unreadable and sf_error is not None:  # neither decoder recognises the container
        e = UnsupportedMediaError(
            f"{path.name} is not an audio file that soundfile or ffmpeg can read; "
            "check that it really is audio (wav, flac, ogg, opus, mp3, m4a).",
            path=path,
        )
        e.__cause__ = sf_error
        return e
    last = err.splitlines()[-1] if err else f"exit status {returncode}"
    return DecodeError(f"ffmpeg could not decode {path.name}: {last}.", path=path)


def _parse_au(data: bytes, path: Path) -> np.ndarray:
    """Samples of an AU stream of big-endian float32 (ffmpeg's ``-f au``), downmixed by mean."""
    if len(data) < 24 or data[:4] != b".snd":
        raise DecodeError(f"ffmpeg returned no audio for {path.name}.", path=path)
    offset = int.from_bytes(data[4:8], "big")
    channels = max(1, int.from_bytes(data[20:24], "big"))
    body = data[offset:]
    frames = len(body) // (4 * channels)
    samples = np.frombuffer(body[: frames * 4 * channels], dtype=">f4").reshape(frames, channels)
    return samples.mean(axis=1).astype(np.float32)
