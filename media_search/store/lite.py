"""Milvus Lite's one-process-per-.db lock, seen from our side.

Milvus Lite runs an embedded server per ``.db`` and holds a ``flock`` on
``<db>/LOCK`` while it runs. ``locked`` tells whether *another* process holds
it (a conflict with a client of this very process is no error), and
``opened`` / ``release`` count this process's stores of one file so that the
last one to close stops the embedded server and frees the file for others.
"""

from __future__ import annotations

import logging
import os

__all__ = ["opened", "release", "locked"]

log = logging.getLogger(__name__)


#: Open Lite stores per absolute .db path in this process.
_USERS: dict[str, int] = {}


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
