"""Indexing: walk → skip unchanged → detect → decode → embed → write, with a report.

Crash safety rests on the ``files`` manifest (see ``store.milvus``): a file's
manifest entry is set to ``pending`` before its old rows are deleted and its
new rows written, and to ``done`` after. A run that starts by finding
``pending`` entries (a killed run) deletes their rows and indexes those files
again, so no duplicate and no orphan row survives a kill at any moment.

Only this module catches per-file errors: a file that cannot be read, is not
media, or fails to decode is recorded in the report and the run goes on.
Store, model and configuration errors stop the run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .detect import detect_kind
from .embed import Embedded, embed_audio, embed_image, embed_soundtrack, embed_video
from .errors import DecodeError, UnsupportedMediaError
from .identity import content_hash, file_id, row_id
from .store.milvus import COLLECTIONS, FileRecord
from .types import Failure, IndexReport
from .walk import Entry, walk

if TYPE_CHECKING:
    from .library import Library

__all__ = ["index_paths", "remove_paths"]

log = logging.getLogger(__name__)

#: Errors that belong to one file: recorded, and the run goes on.
FILE_ERRORS = (UnsupportedMediaError, DecodeError, OSError)


@dataclass
class Prepared:
    """One file, decoded and embedded, ready to be written."""

    entry: Entry
    fid: str
    kind: str
    content_hash: str
    rows: dict[str, dict[str, Any]]  # kind -> columns
    notes: list[str]

    @property
    def n_rows(self) -> int:
        return sum(len(c["id"]) for c in self.rows.values())


def index_paths(
    lib: Library,
    paths: list[Any],
    *,
    delete_missing: bool = True,
    follow_symlinks: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> IndexReport:
    """Index files and folders; see the module docstring."""
    started = time.monotonic()
    report = IndexReport()
    store = lib.store
    roots = [os.fspath(p) for p in paths]
    _repair(lib, report)
    seen: set[str] = set()
    entries = list(walk(roots, follow_symlinks=follow_symlinks, skip={lib.settings.uri} if lib.settings.is_lite else None))
    total = len(entries)
    for start in range(0, total, 256):
        chunk = entries[start : start + 256]
        known = store.get_files([file_id(e.real) for e in chunk if not e.error])
        pending: list[Prepared] = []
        for e in chunk:
            fid = file_id(e.real)
            seen.add(fid)
            if e.error:
                report.failed.append(Failure(e.path, f"{e.path} {e.error}."))
                continue
            old = known.get(fid)
            if old and old.state == "done" and old.size == e.size and old.mtime == e.mtime and old.path == e.real:
                report.unchanged += 1
                continue
            try:
                item = _prepare(lib, e, fid, old)
            except FILE_ERRORS as err:
                report.failed.append(Failure(e.path, _sentence(err, e.path)))
                if old:  # its indexed rows describe content that is gone
                    remove_file_ids(lib, [fid])
                continue
            if item is None:  # same bytes as indexed: only the stat changed
                store.put_files([FileRecord(**{**old.__dict__, "size": e.size, "mtime": e.mtime})])  # type: ignore[union-attr]
                report.unchanged += 1
                continue
            pending.append(item)
            if sum(p.n_rows for p in pending) >= 256:
                _write(lib, pending, known, report)
                pending = []
        _write(lib, pending, known, report)
        if progress:
            progress({"done": min(start + 256, total), "total": total})
    if delete_missing:
        report.removed += _remove_missing(lib, roots, seen)
    store.flush()
    report.seconds = time.monotonic() - started
    return report


def _sentence(err: BaseException, path: str) -> str:
    if isinstance(err, OSError) and not isinstance(err, (DecodeError, UnsupportedMediaError)):
        return f"{path} cannot be read: {err.strerror or err}."
    return str(err)


def _prepare(lib: Library, e: Entry, fid: str, old: FileRecord | None) -> Prepared | None:
    digest = content_hash(e.real)
    if old and old.state == "done" and old.content_hash == digest and old.path == e.real:
        return None
    kind = detect_kind(e.real)
    common = {"file_id": fid, "path": e.real, "content_hash": digest}
    rows: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if kind == "image":
        emb = embed_image(lib, e.real)
        rows["image"] = _columns([fid], emb.vectors, {**common, "size": e.size, "mtime": e.mtime})
    elif kind == "video":
        frames = embed_video(lib, e.real)
        notes += [f"{e.path}: {n}" for n in frames.notes]
        rows["video"] = _sequence_columns(fid, "v", frames, common)
        sound = embed_soundtrack(lib, e.real)
        if sound is not None:
            rows["audio"] = _sequence_columns(fid, "a", sound, {**common, "source": "video"})
    else:
        sound = embed_audio(lib, e.real)
        notes += [f"{e.path}: {n}" for n in sound.notes]
        rows["audio"] = _sequence_columns(fid, "a", sound, {**common, "source": "audio"})
    return Prepared(e, fid, kind, digest, rows, notes)


def _columns(ids: list[str], vectors: np.ndarray, fields: dict[str, Any]) -> dict[str, Any]:
    n = len(ids)
    cols: dict[str, Any] = {"id": ids, "vector": vectors}
    for name, value in fields.items():
        cols[name] = value if isinstance(value, (list, np.ndarray)) else [value] * n
    return cols


def _sequence_columns(fid: str, tag: str, emb: Embedded, fields: dict[str, Any]) -> dict[str, Any]:
    ts = [round(float(t), 3) for t in emb.timestamps]
    ids = [row_id(fid, tag, t) for t in ts]
    return _columns(ids, emb.vectors, {**fields, "timestamp": ts, "duration": float(emb.duration or 0.0)})


def _write(lib: Library, items: list[Prepared], known: dict[str, FileRecord], report: IndexReport) -> None:
    """Write prepared files: pending marks, old rows out, new rows in, done marks."""
    if not items:
        return
    store = lib.store
    for item in items:
        for kind in item.rows:
            lib.ensure(kind)  # type: ignore[arg-type]
    store.put_files([_record(i, "pending") for i in items])
    for kind in COLLECTIONS:
        stale = [i.fid for i in items if i.fid in known and _had(known[i.fid], kind)]
        store.delete_rows(kind, stale)  # type: ignore[arg-type]
    for kind in COLLECTIONS:
        parts = [i.rows[kind] for i in items if kind in i.rows]
        if parts:
            store.upsert_rows(kind, _concat(parts))  # type: ignore[arg-type]
    store.put_files([_record(i, "done") for i in items])
    for i in items:
        report.indexed += 1
        report.by_kind[i.kind] = report.by_kind.get(i.kind, 0) + 1
        report.keyframes += len(i.rows.get("video", {}).get("id", []))
        report.windows += len(i.rows.get("audio", {}).get("id", []))
        report.notes.extend(i.notes)


def _had(rec: FileRecord, kind: str) -> bool:
    return rec.kind == kind or (rec.kind == "video" and kind == "audio") or rec.state != "done"


def _record(item: Prepared, state: str) -> FileRecord:
    return FileRecord(item.fid, item.entry.real, item.kind, item.content_hash, item.entry.size, item.entry.mtime, state, item.n_rows)


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in parts[0]:
        if name == "vector":
            out[name] = np.concatenate([np.asarray(p[name], dtype=np.float32) for p in parts])
        else:
            out[name] = [v for p in parts for v in p[name]]
    return out


def _repair(lib: Library, report: IndexReport) -> None:
    """Undo what a killed run left half-written: rows of ``pending`` files."""
    store = lib.store
    if not store.has("files"):
        return
    stale = [r.file_id for r in store.iter_files(state="pending")]
    if not stale:
        return
    for kind in COLLECTIONS:
        store.delete_rows(kind, stale)  # type: ignore[arg-type]
    store.forget_files(stale)
    report.notes.append(f"repaired {len(stale)} file(s) left half-written by an interrupted run")


def _remove_missing(lib: Library, roots: list[str], seen: set[str]) -> int:
    """Remove files under the given folders that were indexed before and are gone now."""
    store = lib.store
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
    return remove_file_ids(lib, gone)


def remove_file_ids(lib: Library, file_ids: list[str]) -> int:
    store = lib.store
    for kind in COLLECTIONS:
        store.delete_rows(kind, file_ids)  # type: ignore[arg-type]
    store.forget_files(file_ids)
    return len(file_ids)


def remove_paths(lib: Library, paths: list[str]) -> int:
    """Remove the given files (by path) from the index; returns how many were indexed."""
    fids = [file_id(os.path.realpath(p)) for p in paths]
    known = lib.store.get_files(fids)
    return remove_file_ids(lib, list(known))
