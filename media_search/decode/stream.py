"""Audio decoded in blocks: an hours-long recording in flat memory.

``AudioStream(path)`` iterates over mono float32 blocks at 32 kHz (about
``BLOCK_SECONDS`` each). The decoders are those of ``decode.audio``, read
incrementally:

* ``soundfile`` reads blocks of the file and ``soxr.ResampleStream`` resamples
  them (the same resampler as the whole-file decode, fed in pieces);
* otherwise (m4a, video soundtracks, files soundfile rejects) an ``ffmpeg``
  subprocess writes AU float32 to a pipe, read block by block.

A reader thread decodes ahead of the consumer through a small queue (at most
``AHEAD`` blocks), so decoding overlaps embedding and memory stays flat.
``timeout`` bounds each wait for the next block (a stalled decoder), not the
whole file: time spent by the consumer does not count. ``seconds`` is how
much has been decoded, ``notes`` what the decoders said (a file cut short
ends the stream with a note rather than an error when some audio came out).
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DecodeError
from . import quiet, refuse_empty
from .audio import _FFMPEG_SUFFIXES, _INSTALL_FFMPEG, SAMPLE_RATE, ffmpeg_failure

__all__ = ["BLOCK_SECONDS", "AudioStream", "probe_seconds"]

log = logging.getLogger(__name__)

BLOCK_SECONDS = 10.0
AHEAD = 3
_END = object()


def probe_seconds(path: str | Path, *, from_video: bool = False) -> float | None:
    """The duration a file declares (cheap: no decoding), or None when it declares none."""
    p = Path(path)
    if not from_video and p.suffix.lower() not in _FFMPEG_SUFFIXES:
        try:
            import soundfile as sf

            info = sf.info(str(p))
            if info.samplerate > 0 and info.frames > 0:
                return float(info.frames) / info.samplerate
        except Exception:  # noqa: BLE001 - not for soundfile: ask ffprobe
            pass
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-v", "quiet", "-show_entries", "format=duration", "-of", "csv=p=0", str(p)],
            capture_output=True, timeout=30, check=False,
        ).stdout.decode("ascii", "replace").strip()  # fmt: skip
        value = float(out.splitlines()[0]) if out else 0.0
    except (subprocess.TimeoutExpired, ValueError, OSError, IndexError):
        return None
    return value if value > 0 else None


class AudioStream:
    """Mono float32 blocks at ``sr`` Hz of an audio file or a video's soundtrack; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        sr: int = SAMPLE_RATE,
        timeout: float = 120.0,
        from_video: bool = False,
        block_seconds: float = BLOCK_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.sr, self.timeout, self.from_video = int(sr), float(timeout), from_video
        self.block = max(1024, int(block_seconds * sr))
        self.samples = 0
        self.notes: list[str] = []
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=AHEAD)
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        try:
            size = self.path.stat().st_size
        except OSError as e:
            raise DecodeError(f"Cannot read {self.path.name}: {e.strerror or e}.", path=self.path) from e
        refuse_empty(self.path, size, "audio")

    @property
    def seconds(self) -> float:
        return self.samples / self.sr

    def __iter__(self) -> Iterator[np.ndarray]:
        self._thread = threading.Thread(target=self._read, name="audio-stream", daemon=True)
        self._thread.start()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.timeout)
                except queue.Empty:
                    raise DecodeError(
                        f"Decoding {self.path.name} stalled for more than {self.timeout:g} s and was stopped; "
                        "the file may be damaged.",
                        path=self.path,
                    ) from None
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                self.samples += item.size
                yield item
        finally:
            self.close()
        if self.samples == 0:
            what = "soundtrack" if self.from_video else "file"
            raise DecodeError(f"The {what} of {self.path.name} holds no audio samples.", path=self.path)

    def close(self) -> None:
        """Stop decoding (also when the consumer stops early)."""
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        while True:  # unblock the reader if it waits on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    # -- the reader thread -------------------------------------------------------------------------
    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            with quiet.collect() as said:
                sf_error = None
                done = False
                if not self.from_video and self.path.suffix.lower() not in _FFMPEG_SUFFIXES:
                    done, sf_error = self._read_soundfile()
                if not done:
                    self._read_ffmpeg(sf_error)
            self.notes.extend(said)
            self._put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer's thread
            self._put(e)

    def _read_soundfile(self) -> tuple[bool, Exception | None]:
        """(finished, soundfile's error when it could not start)."""
        try:
            import soundfile as sf
            import soxr
        except ImportError as e:
            return False, e
        try:
            f = sf.SoundFile(str(self.path))
        except Exception as e:  # noqa: BLE001 - libsndfile raises several types; ffmpeg gets a try
            log.debug("soundfile could not open %s: %s", self.path, e)
            return False, e
        given = 0
        with f:
            rs = soxr.ResampleStream(f.samplerate, self.sr, 1, dtype="float32", quality="HQ") if f.samplerate != self.sr else None
            step = max(1024, int(self.block * f.samplerate / self.sr))
            while not self._stop.is_set():
                try:
                    data = f.read(step, dtype="float32", always_2d=True)
                except Exception as e:  # noqa: BLE001 - a damaged stretch: stop here, or try ffmpeg
                    if given == 0:
                        return False, e
                    self.notes.append(f"decoding stopped at {given / self.sr:.1f} s ({e})")
                    break
                last = len(data) < step
                mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
                out = rs.resample_chunk(np.ascontiguousarray(mono), last=last) if rs is not None else mono
                out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)
                if out.size:
                    given += out.size
                    if not self._put(out):
                        break
                if last:
                    break
        return True, None

    def _read_ffmpeg(self, sf_error: Exception | None) -> None:
        exe = shutil.which("ffmpeg")
        p = self.path
        if exe is None:
            if sf_error is not None:
                raise DecodeError(
                    f"{p.name} could not be decoded by soundfile ({sf_error}); reading it needs ffmpeg, "
                    f"which is not installed: {_INSTALL_FFMPEG}.",
                    path=p,
                ) from sf_error
            raise DecodeError(f"{p.name} needs ffmpeg, which is not installed: {_INSTALL_FFMPEG}.", path=p)
        cmd = [
            exe, "-nostdin", "-hide_banner", "-v", "error", "-i", str(p),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-ar", str(self.sr), "-c:a", "pcm_f32be", "-f", "au", "-",
        ]  # fmt: skip
        with tempfile.TemporaryFile() as err_file:
            self._proc = proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err_file)
            assert proc.stdout is not None
            given = 0
            try:
                head = _read_exactly(proc.stdout, 24)
                channels = 1
                if len(head) == 24 and head[:4] == b".snd":
                    offset = int.from_bytes(head[4:8], "big")
                    channels = max(1, int.from_bytes(head[20:24], "big"))
                    _read_exactly(proc.stdout, max(0, offset - 24))
                    frame = 4 * channels
                    while not self._stop.is_set():
                        data = _read_exactly(proc.stdout, self.block * frame)
                        n = len(data) // frame
                        if n:
                            x = np.frombuffer(data[: n * frame], dtype=">f4").reshape(n, channels).mean(axis=1)
                            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
                            given += n
                            if not self._put(x):
                                break
                        if len(data) < self.block * frame:
                            break
            finally:
                if self._stop.is_set() and proc.poll() is None:
                    proc.kill()
                proc.stdout.close()
                code = proc.wait()
            err_file.seek(0)
            err = err_file.read(1 << 16).decode("utf-8", "replace").strip()
        if self._stop.is_set():
            return
        if code != 0 and given == 0:
            raise ffmpeg_failure(p, err, code, from_video=self.from_video, sf_error=sf_error)
        if err:
            self.notes.extend(quiet.summarise(err.splitlines()))
        if code != 0:
            self.notes.append(f"decoding stopped at {given / self.sr:.1f} s (ffmpeg exit status {code})")


def _read_exactly(stream: Any, n: int) -> bytes:
    """``n`` bytes from a pipe, fewer only at its end."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


