"""Keep the decoders' own messages off the user's terminal, and turn them into report notes.

Native libraries write straight to file descriptor 2: FFmpeg inside OpenCV
(``[h264 @ 0x...] Invalid NAL unit size``), mpg123 inside libsndfile
(``Warning: Xing stream size off by more than 1%``), gRPC's C core
(``Received a GOAWAY ... too_many_pings``). No Python logging setting reaches
them, so the process that must stay quiet redirects fd 2 itself:

* ``install()`` (the CLI's choice, and each decode worker's) points fd 2 at an
  unlinked temporary file and gives Python's ``sys.stderr`` a duplicate of
  the real terminal, so the product's own messages, progress bars and logs
  still show. Without ``install`` nothing changes (a library user's process
  is left alone).
* ``collect()`` around a decode: what native code wrote meanwhile comes back
  as a few lines (address prefixes removed, repeats counted) for the file's
  line of the report.

``MEDIA_SEARCH_VERBOSE=1`` (the CLI's ``--verbose``) leaves fd 2 alone and
the decoders' messages show raw.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["collect", "install", "installed", "quiet_stderr", "summarise", "verbose_from_env"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_fd: int | None = None  # the capture file, while installed
_MAX_KEEP = 1 << 20  # the capture file is emptied when it grows past this
_NOISE = re.compile(r"GOAWAY|too_many_pings|^WARNING: All log messages before absl|^[EIWD]\d{4} ", re.IGNORECASE)
_PREFIX = re.compile(r"^\[([^\]@]+?)(?: @ (?:0x)?[0-9a-fA-F]+)?\]\s*")


def verbose_from_env() -> bool:
    """``MEDIA_SEARCH_VERBOSE`` set to 1/true/yes: show the decoders' messages raw."""
    return os.environ.get("MEDIA_SEARCH_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


def installed() -> bool:
    return _fd is not None


def install() -> Callable[[], None]:
    """Send fd 2 to a private file; Python's ``sys.stderr`` keeps the terminal.

    Returns the function that puts everything back (a no-op if it was installed already).
    """
    global _fd
    with _lock:
        if _fd is not None:
            return lambda: None
        # gRPC's C core reads these when it starts: keep its own logging off unless asked for.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        os.environ.setdefault("GLOG_minloglevel", "3")
        old_stderr = sys.stderr
        try:
            old_stderr.flush()
            writes_fd2 = old_stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):
            writes_fd2 = False
        try:
            saved = os.dup(2)
        except OSError:
            return lambda: None  # no fd 2 at all: nothing to protect
        fd, name = tempfile.mkstemp(prefix="media-search-stderr-")
        os.unlink(name)
        os.dup2(fd, 2)
        _fd = fd
        if writes_fd2:  # Python's own messages (errors, progress bars, logs) still reach the terminal
            sys.stderr = open(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115

    def restore() -> None:
        global _fd
        with _lock:
            if _fd is None:
                return
            if sys.stderr is not old_stderr:
                try:
                    sys.stderr.flush()
                    sys.stderr.close()
                except (OSError, ValueError):
                    pass
                sys.stderr = old_stderr
            os.dup2(saved, 2)
            os.close(saved)
            os.close(_fd)
            _fd = None

    return restore


@contextmanager
def quiet_stderr(enabled: bool = True) -> Iterator[None]:
    """``install`` for the length of a block (the CLI's commands)."""
    restore = install() if enabled else (lambda: None)
    try:
        yield
    finally:
        restore()


def _size() -> int:
    assert _fd is not None
    return os.fstat(_fd).st_size


@contextmanager
def collect() -> Iterator[list[str]]:
    """Yield a list that receives, after the block, the summarised native messages written during it."""
    lines: list[str] = []
    if _fd is None:
        yield lines
        return
    start = _size()
    try:
        yield lines
    finally:
        end = _size()
        text = os.pread(_fd, min(end - start, 1 << 16), start).decode("utf-8", "replace") if end > start else ""
        if end > _MAX_KEEP:
            with _lock:
                os.ftruncate(_fd, 0)
        lines.extend(summarise(text.splitlines()))


def summarise(raw: list[str], *, limit: int = 3) -> list[str]:
    """Decoder lines as report text: address prefixes gone, repeats counted, at most ``limit`` kinds."""
    counts: dict[str, int] = {}
    for line in raw:
        line = line.strip()
        if not line:
            continue
        if _NOISE.search(line):
            log.debug("native message: %s", line)
            continue
        m = _PREFIX.match(line)
        who = m.group(1).strip() if m else ""
        who = "mpg123" if "mpg123" in who else who.split(":")[0]
        text = f"{who}: {line[m.end():]}" if m else line
        text = text.rstrip(".")
        counts[text] = counts.get(text, 0) + 1
    out = [f"decoder: {t}" + (f" ({n} times)" if n > 1 else "") for t, n in counts.items()]
    if len(out) > limit:
        out = out[:limit] + [f"decoder: {len(out) - limit} more kinds of message"]
    return out
