"""Audio decoding: every format to mono float32 at 32 kHz, and bad input as clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media_search.decode import audio as audio_mod
from media_search.decode.audio import SAMPLE_RATE, NoSoundtrackError, decode_audio, has_ffmpeg
from media_search.errors import DecodeError, MediaSearchError, UnsupportedMediaError

needs_ffmpeg = pytest.mark.skipif(not has_ffmpeg(), reason="ffmpeg is not installed")


def _tone(seconds: float, sr: int = 44100, channels: int = 2, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("audio")
    sf.write(d / "tone.wav", _tone(2.0), 44100)
    sf.write(d / "tone.flac", _tone(2.0, sr=48000, channels=1), 48000)
    sf.write(d / "tone.ogg", _tone(2.0), 44100)
    if has_ffmpeg():
        _ffmpeg("-i", str(d / "tone.wav"), "-b:a", "64k", str(d / "tone.mp3"))
        _ffmpeg("-i", str(d / "tone.wav"), "-c:a", "aac", "-b:a", "96k", str(d / "tone.m4a"))
        _ffmpeg("-i", str(d / "tone.wav"), "-c:a", "libopus", "-b:a", "48k", str(d / "tone.opus"))
        _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-f", "lavfi",
                "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-pix_fmt", "yuv420p",
                "-shortest", str(d / "clip.mp4"))  # fmt: skip
        _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "1", "-pix_fmt", "yuv420p",
                str(d / "mute.mp4"))  # fmt: skip
    return d


@pytest.mark.parametrize("name", ["tone.wav", "tone.flac", "tone.ogg", "tone.mp3", "tone.m4a", "tone.opus"])
def test_formats_decode_to_mono_32k(media: Path, name: str) -> None:
    if not (media / name).exists():
        pytest.skip("needs ffmpeg to generate")
    a = decode_audio(media / name)
    assert a.samples.dtype == np.float32 and a.samples.ndim == 1
    assert a.sr == SAMPLE_RATE and a.source == "audio"
    assert a.duration == pytest.approx(2.0, abs=0.06)  # encoder priming/padding
    assert a.duration == pytest.approx(a.samples.size / SAMPLE_RATE)
    # the 440 Hz tone survives, at the level of the mean of the channels
    spectrum = np.abs(np.fft.rfft(a.samples[: SAMPLE_RATE]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)
    assert 0.4 < np.abs(a.samples).max() < 0.65


@pytest.mark.parametrize("name", ["tone.wav", "tone.ogg", "tone.mp3", "tone.m4a"])
def test_a_span_decodes_that_stretch_only(media: Path, tmp_path: Path, name: str) -> None:
    """``span=(start, seconds)``: the decoders seek (soundfile, or ffmpeg's ``-ss``/``-t``) and
    return what the whole decode holds from ``start`` on, for ``seconds``."""
    src = media / name
    if not src.exists():
        pytest.skip("needs ffmpeg to generate")
    rng = np.random.default_rng(7)  # a varied signal: a shifted span would not line up with it
    noise = rng.standard_normal(44100 * 6).astype(np.float32) * np.repeat(rng.uniform(0.05, 0.4, 60), 4410).astype(np.float32)
    wav = tmp_path / "varied.wav"
    sf.write(wav, noise, 44100)
    long = tmp_path / f"varied{src.suffix}"
    if src.suffix != ".wav":
        _ffmpeg("-i", str(wav), *(["-b:a", "128k"] if src.suffix != ".ogg" else []), str(long))
    whole = decode_audio(long if src.suffix != ".wav" else wav, sr=8000).samples
    part = decode_audio(long if src.suffix != ".wav" else wav, sr=8000, span=(2.5, 2.0)).samples
    assert part.size == pytest.approx(2.0 * 8000, abs=8000 * 0.05)
    ref = whole[int(2.5 * 8000) : int(2.5 * 8000) + part.size]
    corr = max(float(np.corrcoef(ref[400 + d : 4400 + d], part[400:4400])[0, 1]) for d in range(-80, 81))
    assert corr > 0.9, corr  # the same stretch (lossy codecs shift by their priming, at most 10 ms)
    assert decode_audio(wav, sr=8000, span=(5.5, 3.0)).samples.size == pytest.approx(0.5 * 8000, abs=8)


@needs_ffmpeg
def test_video_soundtrack(media: Path) -> None:
    a = decode_audio(media / "clip.mp4", from_video=True)
    assert a.source == "video" and a.sr == SAMPLE_RATE
    assert a.duration == pytest.approx(2.0, abs=0.1)


@needs_ffmpeg
def test_video_without_audio_says_no_soundtrack(media: Path) -> None:
    with pytest.raises(NoSoundtrackError, match="has no soundtrack"):
        decode_audio(media / "mute.mp4", from_video=True)


def test_mp3_that_is_really_wav_decodes_by_content(media: Path, tmp_path: Path) -> None:
    fake = tmp_path / "really_a_wav.mp3"
    shutil.copy(media / "tone.wav", fake)
    a = decode_audio(fake)
    assert a.duration == pytest.approx(2.0, abs=1e-3)


def test_short_and_silent_files_decode(tmp_path: Path) -> None:
    sf.write(tmp_path / "short.wav", _tone(0.1, sr=32000, channels=1), 32000)
    sf.write(tmp_path / "silent.wav", np.zeros(32000, np.float32), 32000)
    assert decode_audio(tmp_path / "short.wav").samples.size == 3200
    silent = decode_audio(tmp_path / "silent.wav")
    assert silent.duration == pytest.approx(1.0) and not silent.samples.any()


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        decode_audio(tmp_path / "empty.wav")


def test_text_named_ogg_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "notes.ogg"
    p.write_text("these are my notes, not a sound\n" * 20)
    with pytest.raises((UnsupportedMediaError, DecodeError)) as info:
        decode_audio(p)
    assert "notes.ogg" in str(info.value) and info.value.path == str(p)


def test_corrupt_wav_header(media: Path, tmp_path: Path) -> None:
    data = bytearray((media / "tone.wav").read_bytes())
    data[0:4] = b"RIFX"  # big-endian RIFF marker on little-endian data
    data[8:44] = os.urandom(36)
    p = tmp_path / "corrupt.wav"
    p.write_bytes(bytes(data))
    with pytest.raises(MediaSearchError, match="corrupt.wav"):
        decode_audio(p)


def test_header_only_wav_has_no_samples(media: Path, tmp_path: Path) -> None:
    p = tmp_path / "header_only.wav"
    sf.write(p, np.zeros(0, np.float32), 32000)
    with pytest.raises(DecodeError, match="no audio samples"):
        decode_audio(p)


def test_missing_ffmpeg_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_mod.shutil, "which", lambda name: None)
    assert not has_ffmpeg()
    m4a = tmp_path / "song.m4a"
    m4a.write_bytes(b"\0\0\0\x20ftypM4A " + bytes(200))
    with pytest.raises(DecodeError, match="needs ffmpeg, which is not installed"):
        decode_audio(m4a)
    with pytest.raises(DecodeError, match="apt install ffmpeg"):
        decode_audio(m4a.rename(tmp_path / "film.mp4"), from_video=True)


@needs_ffmpeg
def test_ffmpeg_timeout_kills_and_raises(tmp_path: Path) -> None:
    # two minutes of aac decode and resample for far longer than the 0.05 s allowed
    p = tmp_path / "long.m4a"
    _ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=120:r=48000", "-c:a", "aac", "-b:a", "32k", str(p))
    with pytest.raises(DecodeError, match="longer than"):
        decode_audio(p, timeout=0.05)
