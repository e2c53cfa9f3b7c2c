"""Milvus Lite's one-process-per-.db lock, seen from our side.

Milvus Lite runs an embedded server per ``.db`` and holds a ``flock`` on
``<db>/LOCK`` while it runs. ``locked`` tells whether *another* process holds
it (a conflict with a client of this very process is no error), and
``opened`` / ``release`` count this process's stores of one file so that the
last one to close stops the embedded server and frees the file for others.
``write_buffer`` sizes the server's write buffer before it starts.
"""

from __future__ import annotations

import logging
import os

__all__ = ["opened", "release", "locked", "write_buffer", "WRITE_BUFFER"]

log = logging.getLogger(__name__)


#: Bytes of rows Milvus Lite buffers before it writes them to a Parquet segment (its own default is
#: 128 MB). A write turns the buffer into Python objects first, about 7 times its size: a 32 MB
#: buffer of audio rows made a 250 MB spike in the middle of indexing a 4-hour recording.
WRITE_BUFFER = 16 << 20

#: Open Lite stores per absolute .db path in this process.
_USERS: dict[str, int] = {}


def write_buffer() -> None:
    """Give Milvus Lite ``WRITE_BUFFER`` unless the user set ``MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES``
    (read once, when ``milvus_lite`` is first imported: a process that imported it before keeps
    what it read)."""
    os.environ.setdefault("MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES", str(WRITE_BUFFER))


def opened(path: str) -> None:
    """Count one more open store of ``path`` (an absolute .db path) in this process."""
    _USERS[path] = _USERS.get(path, 0) + 1


def release(path: str) -> None:
    """One store of ``path`` closed; the last one stops the embedded server, releasing the file."""
    _USERS[path] = _USERS.get(path, 1) - 1
    if _USERS[path] > 0:
        return
    del _USERS[path]
    try:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(path)
    except Exception:  # noqa: BLE001 - best effort: the lock is released at exit anyway
        log.debug("releasing the Milvus Lite server for %s failed", path, exc_info=True)


def locked(uri: str) -> bool:
    """True when another process holds the Milvus Lite lock on ``uri``."""
    import fcntl

    lock = os.path.join(uri, "LOCK")
    if not os.path.exists(lock):
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return _held_elsewhere(uri)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _held_elsewhere(uri: str) -> bool:
    """A flock conflict may come from this very process (an open client): that is no lock error."""
    try:
        from milvus_lite import server_manager  # noqa: F401
    except ImportError:
        return True
    real = os.path.realpath(uri)
    for path in _open_paths():
        if os.path.realpath(path) == real:
            return False
    return True


def _open_paths() -> list[str]:
    try:
        from milvus_lite.server_manager import server_manager_instance

        return list(getattr(server_manager_instance, "_servers", {}).keys())
    except Exception:  # noqa: BLE001 - best effort introspection of milvus_lite internals
        return []
