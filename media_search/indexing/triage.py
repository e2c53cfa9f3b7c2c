"""The manifest side of an indexing run: which walked files need work, and the repairs around it.

Shared by the local indexer (``indexing.run``) and the Ray one
(``indexing.distributed``): ``repair`` undoes what a killed run left
``pending``, ``triage`` splits walked entries into failures, unchanged files
and files to decode (manifest lookups in batches of ``LOOKUP`` ids),
``remove_missing`` drops files gone from the folders given to the run, and
``note_missing_ffmpeg`` says when soundtracks were skipped for want of ffmpeg.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..identity import file_id
from ..store.records import FileRecord
from ..types import Failure, IndexReport
from .walk import Entry, walk

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.milvus import MilvusStore

__all__ = ["LOOKUP", "Triaged", "manifest_run", "known_hash", "note_missing_ffmpeg", "remove_missing", "repair", "triage"]

LOOKUP = 256  # manifest ids per query


@dataclass
class Triaged:
    """What a run has to do: the files to decode, their manifest entries, and the report so far."""

    report: IndexReport
    todo: list[Entry]
    known: dict[str, FileRecord]


@contextmanager
def manifest_run(
    store: MilvusStore, settings: Settings, paths: list[str], *, follow_symlinks: bool, delete_missing: bool,
    progress: Callable[[dict[str, Any]], None] | None,
) -> Iterator[Triaged]:  # fmt: skip
    """The manifest around a run, local or on Ray: repair, walk and triage before; remove the files
    gone from ``paths``, flush and time the report after (only when the run's body returns)."""
    started = time.monotonic()
    report = IndexReport()
    repair(store, report)
    skip = {settings.uri} if settings.is_lite else None
    entries = list(walk(paths, follow_symlinks=follow_symlinks, skip=skip, notes=report.notes))
    seen = {file_id(e.real) for e in entries if not e.error}  # a failing file is not "gone"
    todo, known = triage(store, entries, report)
    if progress:
        progress({"event": "start", "total": len(todo), "unchanged": report.unchanged})
    yield Triaged(report, todo, known)
    if delete_missing:
        report.removed += remove_missing(store, paths, seen)
    store.flush()
    report.seconds = time.monotonic() - started
    note_missing_ffmpeg(todo, report)


def note_missing_ffmpeg(todo: list[Entry], report: IndexReport) -> None:
    """Say so when videos were indexed without their soundtracks for want of ffmpeg (never silently)."""
    from ..decode.audio import has_ffmpeg

    videos = [e.path for e in todo if os.path.splitext(e.path)[1].lower() in _VIDEO_SUFFIXES]
    if videos and not has_ffmpeg():
        report.notes.append(
            f"ffmpeg is not installed: the soundtracks of {len(videos)} video(s) (e.g. {videos[0]}) were not indexed, "
            "only their pictures; install it (apt install ffmpeg / brew install ffmpeg) and index them again"
        )


_VIDEO_SUFFIXES = frozenset(".mp4 .m4v .mov .mkv .webm .avi .wmv .mpg .mpeg .ts .3gp .ogv".split())


def triage(store: MilvusStore, entries: list[Entry], report: IndexReport) -> tuple[list[Entry], dict[str, FileRecord]]:
    """Split walked entries into failures, unchanged files and files to decode (batched manifest lookups)."""
    ok = []
    for e in entries:
        if e.error:
            report.failed.append(Failure(e.path, f"{e.path} {e.error}."))
        elif not _is_utf8(e.real):
            shown = e.path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            report.failed.append(
                Failure(shown, f"{shown}: its name is not valid UTF-8 and Milvus stores paths as text; rename it (e.g. with convmv).")
            )
        else:
            ok.append(e)
    fids = [file_id(e.real) for e in ok]
    known: dict[str, FileRecord] = {}
    if store.has("files"):
        for start in range(0, len(fids), LOOKUP):
            known.update(store.get_files(fids[start : start + LOOKUP]))
    todo = []
    for e, fid in zip(ok, fids):
        old = known.get(fid)
        if old and old.state == "done" and old.size == e.size and old.mtime == e.mtime and old.path == e.real:
            report.unchanged += 1
        else:
            todo.append(e)
    return todo, known


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def known_hash(old: FileRecord | None, e: Entry) -> str | None:
    return old.content_hash if old and old.state == "done" and old.path == e.real else None




def repair(store: MilvusStore, report: IndexReport) -> None:
    """Undo what a killed run left half-written: rows of ``pending`` files."""
    stale = store.pending_files()
    if not stale:
        return
    store.remove_files(stale)
    report.notes.append(f"repaired {len(stale)} file(s) left half-written by an interrupted run")


def remove_missing(store: MilvusStore, roots: list[str], seen: set[str]) -> int:
    """Remove files under the given folders that were indexed before and are gone now."""
    folders = [os.path.realpath(r) for r in roots if os.path.isdir(r)]
    files = [os.path.realpath(r) for r in roots if not os.path.isdir(r) and not os.path.exists(r)]
    if not (folders or files) or not store.has("files"):
        return 0
    gone = []
    for rec in store.iter_files():
        if rec.file_id in seen:
            continue
        inside = any(rec.path.startswith(f.rstrip(os.sep) + os.sep) for f in folders) or rec.path in files
        if inside and not os.path.isfile(rec.path):
            gone.append(rec.file_id)
    return store.remove_files(gone)
