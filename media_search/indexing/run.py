"""Indexing: walk → skip unchanged → decode (worker processes) → embed (batched) → write, with a report.

**Stages.** ``index_paths`` receives the store, the embedders and the
settings (never the ``Library``). ``walk`` lists candidate files; their
manifest entries are read in batches of 256 ids (a re-run over an unchanged
folder reads no file). Files to (re)index go to a ``pool.DecodePool``: worker
processes hash, detect and decode them while this process embeds the previous
ones, batching pictures (images and keyframes) across files, and writes
finished files in column batches (``store.schema`` names the columns).

**Crash safety** rests on the ``files`` manifest (see ``store.manifest``): a
file's manifest entry is set to ``pending`` before its old rows are deleted and
its new rows written, and to ``done`` after. A run that starts by finding
``pending`` entries (a killed run) deletes their rows and indexes those files
again, so no duplicate and no orphan row survives a kill at any moment
(``tests/test_crash_resume.py`` kills real runs with SIGKILL). Ctrl-C (SIGINT)
is held back while a batch is being written, then raised: the files already
written stay, the ones being decoded or embedded are dropped, and the next
run picks them up.

**Incremental.** Unchanged (resolved path, size, mtime): skipped unread.
Changed stat, same bytes: the manifest is updated, nothing re-embedded.
Changed bytes: rows replaced. Gone from a folder given to this run: rows
removed (unless ``delete_missing=False``).

**Concurrency.** Milvus Lite lets one process open a ``.db``: while a run
holds it, a query from another process (CLI, page) fails at once with
``StoreLockedError`` ("in use by another process ... use a Milvus server"),
and nothing is written or corrupted; it works again when the run ends. With
a Milvus server, queries run during indexing and see each file either with
all its rows or with none of the new ones (a query may briefly miss a file
being replaced).

Only this module and ``pool`` catch per-file errors: a file that cannot be
read, is not media, or fails to decode is recorded in the report and the run
goes on. Store, model and configuration errors stop the run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embed.embedders import Embedded, embed_frames, embed_sound
from ..identity import file_id
from ..store.records import FileRecord
from ..store.schema import COLLECTIONS, TABLES
from ..types import Failure, IndexReport
from . import columns
from .pool import DecodePool, Job, Outcome, default_workers
from .triage import known_hash, manifest_run
from .walk import Entry

if TYPE_CHECKING:
    from ..config import Settings
    from ..embed.embedders import Embedders
    from ..store.milvus import MilvusStore

__all__ = ["index_paths"]

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
_WRITE_ROWS = 256  # write when this many rows are ready...
_WRITE_SECONDS = 2.0  # ...or this long after the last write (bounds the work a kill loses)
_INLINE_BELOW = 8  # fewer files than this: decode inline, starting workers costs more


@dataclass
class Prepared:
    """One file, decoded and embedded, ready to be written."""

    entry: Entry
    fid: str
    kind: str
    content_hash: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> columns
    notes: list[str] = field(default_factory=list)
    extra_rows: int = 0  # rows written already, in parts (a streamed sound)

    @property
    def n_rows(self) -> int:
        return sum(len(c["id"]) for c in self.rows.values()) + self.extra_rows


def index_paths(
    paths: list[Any],
    *,
    store: MilvusStore,
    embedders: Embedders,
    settings: Settings,
    delete_missing: bool = True,
    follow_symlinks: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
) -> IndexReport:
    """Index files and folders; see the module docstring.

    ``progress`` is called with ``{"event": "start", "total": files to index,
    "unchanged": n}`` once the walk and manifest lookups are done, then with
    ``{"event": "file", "done": k, "total": n, "path": p, "status": s}`` as each
    file is written, found unchanged by content, or fails. ``workers``: decode
    processes (default ``pool.default_workers()``; 0 decodes inline).
    """
    paths = [os.path.expanduser(os.fspath(p)) for p in paths]  # lib.index(["~/Pictures"]), like the CLI
    with manifest_run(store, settings, paths, follow_symlinks=follow_symlinks, delete_missing=delete_missing,
                      progress=progress) as plan:  # fmt: skip
        report, todo, known = plan.report, plan.todo, plan.known
        run = _Run(store, embedders, settings, report, known, progress, {e.real: e for e in todo})
        n_workers = default_workers() if workers is None else workers
        if len(todo) < _INLINE_BELOW:
            n_workers = 0
        jobs = (Job(e.path, e.real, settings, known_hash(known.get(file_id(e.real)), e)) for e in todo)
        with DecodePool(n_workers) as pool:
            for outcome in pool.run(jobs):
                run.take(outcome)
            run.finish()
    return report


class _Run:
    """The embed and write stages: batches pictures across files, writes finished files."""

    def __init__(
        self, store: MilvusStore, embedders: Embedders, settings: Settings, report: IndexReport,
        known: dict[str, FileRecord], progress: Progress | None, entries: dict[str, Entry],
    ) -> None:  # fmt: skip
        self.store, self.embedders, self.settings = store, embedders, settings
        self.report, self.known, self.progress = report, known, progress
        self.entries, self.total = entries, len(entries)
        self.waiting: list[tuple[Prepared, Outcome]] = []  # decoded, frames not yet embedded
        self.frames = 0
        self.ready: list[Prepared] = []
        self.touched: list[FileRecord] = []
        self.done = 0
        self.last_write = time.monotonic()

    def take(self, out: Outcome) -> None:
        e = self.entries[out.job.real]
        fid = file_id(e.real)
        if out.error:
            self.report.failed.append(Failure(e.path, out.error))
            if fid in self.known:  # its indexed rows describe content that is gone
                self.store.remove_files([fid])
            self._tick(e.path, "failed")
        elif out.same:
            old = self.known[fid]
            self.touched.append(FileRecord(**{**old.__dict__, "size": e.size, "mtime": e.mtime}))
            self.report.unchanged += 1
            self._tick(e.path, "unchanged")
        else:
            item = self._prepare(out, e, fid)
            if out.decoded is not None and out.decoded.stream_audio:
                self._stream(item, out)
                return
            if out.decoded is not None and out.decoded.n_frames:
                self.waiting.append((item, out))
                self.frames += out.decoded.n_frames
            else:
                self.ready.append(item)
        if self.frames >= self.settings.batch_size:
            self._embed_waiting()
        self._maybe_write()

    def finish(self) -> None:
        self._embed_waiting()
        self._maybe_write(force=True)

    def _prepare(self, out: Outcome, e: Entry, fid: str) -> Prepared:
        """Embed the sound now (its windows batch within the file); pictures wait for a full batch."""
        d = out.decoded
        assert d is not None
        item = Prepared(e, fid, out.kind, out.content_hash)
        item.notes += [f"{e.path}: {n}" for n in d.notes]
        common = {"file_id": fid, "path": e.real, "content_hash": out.content_hash}
        if d.audio is not None:
            sound = embed_sound(self.embedders.audio, d.audio, "video" if d.kind == "video" else "audio")
            if d.kind == "audio":
                item.notes += [f"{e.path}: {n}" for n in sound.notes]
            if len(sound):
                item.rows["audio"] = columns.sequence_columns(fid, "a", sound, {**common, "source": sound.source, "fp": columns.prints(d, sound)})
        return item

    def _embed_waiting(self) -> None:
        if not self.waiting:
            return
        frames = np.concatenate([o.decoded.frames for _, o in self.waiting])  # type: ignore[union-attr]
        vectors = embed_frames(self.embedders.image, frames, self.settings.batch_size)
        at = 0
        for item, out in self.waiting:
            d = out.decoded
            assert d is not None and d.timestamps is not None
            vecs = vectors[at : at + d.n_frames]
            at += d.n_frames
            common = {"file_id": item.fid, "path": item.entry.real, "content_hash": item.content_hash}
            if d.kind == "image":
                e = item.entry
                item.rows["image"] = columns.columns([item.fid], vecs, {**common, "size": e.size, "mtime": e.mtime, "phash": columns.phashes(d), "local": columns.local(d)})
            else:
                emb = Embedded(vecs, d.timestamps, d.duration)
                item.rows["video"] = columns.sequence_columns(item.fid, "v", emb, {**common, "phash": columns.phashes(d), "local": columns.local(d)})
            self.ready.append(item)
        self.waiting, self.frames = [], 0

    def _stream(self, item: Prepared, out: Outcome) -> None:
        """A file whose sound is too long to hold: its rows are written in parts as it is decoded."""
        from ..errors import DecodeError, UnsupportedMediaError
        from .stream import SoundRows, sound_parts

        self._embed_waiting()
        self._maybe_write(force=True)  # what is ready goes first: this file's parts are written alone
        d = out.decoded
        assert d is not None
        e = item.entry
        if d.n_frames:
            assert d.frames is not None and d.timestamps is not None
            vecs = embed_frames(self.embedders.image, d.frames, self.settings.batch_size)
            fields = {"file_id": item.fid, "path": e.real, "content_hash": item.content_hash, "phash": columns.phashes(d),
                      "local": columns.local(d)}
            item.rows["video"] = columns.sequence_columns(item.fid, "v", Embedded(vecs, d.timestamps, d.duration), fields)
            d.frames = None  # embedded: not held while the sound streams (1,171 keyframes: 176 MB)
        source = "video" if d.kind == "video" else "audio"
        common = {"file_id": item.fid, "path": e.real, "content_hash": item.content_hash, "source": source}
        summary = SoundRows()
        parts = sound_parts(e.real, self.embedders.audio, self.settings, fid=item.fid, fields=common,
                            from_video=d.kind == "video", summary=summary)  # fmt: skip
        kinds = ["audio", *item.rows]
        started, keyframes = False, 0
        if "video" in item.rows:  # the keyframe rows go first, under the pending mark, and are let go
            self._begin(item, kinds)
            started = True
            cols = item.rows.pop("video")
            with _interrupt_after():
                self.store.upsert_rows("video", cols)
            keyframes = len(cols["id"])
            item.extra_rows += keyframes
            del cols
        try:
            for cols in _parts_or_none(parts, d.kind == "video"):
                if not started:
                    self._begin(item, kinds)
                    started = True
                with _interrupt_after():
                    self.store.upsert_rows("audio", cols)
                item.extra_rows += len(cols["id"])
        except (DecodeError, UnsupportedMediaError) as err:
            if started or item.fid in self.known:
                self.store.remove_files([item.fid])
            self.report.failed.append(Failure(e.path, f"{e.path}: {err}" if e.path not in str(err) else str(err)))
            self._tick(e.path, "failed")
            return
        self.embedders.audio.shrink()  # the sound's batches are done: their working memory goes back
        if not started:
            self._begin(item, list(item.rows))
        item.notes += [f"{e.path}: {n}" for n in summary.notes if d.kind == "audio" or not n.startswith("silent")]
        with _interrupt_after():
            for kind, cols in item.rows.items():
                self.store.upsert_rows(kind, cols)  # type: ignore[arg-type]
            self.store.put_files([_record(item, "done")])
        _count(item, self.report)
        self.report.keyframes += keyframes
        self.report.windows += item.extra_rows - keyframes
        self._tick(e.path, "indexed")
        self.last_write = time.monotonic()

    def _begin(self, item: Prepared, kinds: list[str]) -> None:
        """The first write of a streamed file: collections, the pending mark, its old rows out."""
        with _interrupt_after():
            for kind in kinds:
                self.store.ensure(kind, self.embedders.spec(kind))  # type: ignore[arg-type]
            self.store.put_files([_record(item, "pending")])
            old = self.known.get(item.fid)
            for kind in COLLECTIONS:
                if old is not None and _had(old, kind):
                    self.store.delete_rows(kind, [item.fid])  # type: ignore[arg-type]

    def _maybe_write(self, *, force: bool = False) -> None:
        rows = sum(i.n_rows for i in self.ready)
        due = time.monotonic() - self.last_write >= _WRITE_SECONDS
        if not (self.ready or self.touched) or not (force or due or rows >= _WRITE_ROWS):
            return
        with _interrupt_after():
            if self.touched:
                self.store.put_files(self.touched)
            _write(self.store, self.embedders, self.ready, self.known, self.report)
        for item in self.ready:
            self._tick(item.entry.path, "indexed")
        log.info("wrote %d file(s) (%d rows); %d/%d done", len(self.ready), rows, self.done, self.total)
        self.ready, self.touched = [], []
        self.last_write = time.monotonic()

    def _tick(self, path: str, status: str) -> None:
        self.done += 1
        if self.progress:
            self.progress({"event": "file", "done": self.done, "total": self.total, "path": path, "status": status})


@contextmanager
def _interrupt_after() -> Iterator[None]:
    """Hold SIGINT back while a batch is written, then raise it: a batch is written whole or not at all."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt







def _write(store: MilvusStore, embedders: Embedders, items: list[Prepared], known: dict[str, FileRecord], report: IndexReport) -> None:
    """Write prepared files: pending marks, old rows out, new rows in, done marks."""
    if not items:
        return
    for item in items:
        for kind in item.rows:
            store.ensure(kind, embedders.spec(kind))  # type: ignore[arg-type]
    store.put_files([_record(i, "pending") for i in items])
    for kind in COLLECTIONS:
        stale = [i.fid for i in items if i.fid in known and _had(known[i.fid], kind)]
        store.delete_rows(kind, stale)  # type: ignore[arg-type]
    for kind in COLLECTIONS:
        parts = [i.rows[kind] for i in items if kind in i.rows]
        if parts:
            cols = columns.concat(parts)
            assert set(cols) == {"id", "vector", *TABLES[kind].names}, f"{kind} columns {sorted(cols)} differ from store.schema"
            store.upsert_rows(kind, cols)  # type: ignore[arg-type]
    store.put_files([_record(i, "done") for i in items])
    for i in items:
        _count(i, report)


def _count(i: Prepared, report: IndexReport) -> None:
    report.indexed += 1
    report.by_kind[i.kind] = report.by_kind.get(i.kind, 0) + 1
    report.keyframes += len(i.rows.get("video", {}).get("id", []))
    report.windows += len(i.rows.get("audio", {}).get("id", []))
    report.notes.extend(i.notes)


def _parts_or_none(parts: Iterator[dict[str, Any]], video: bool) -> Iterator[dict[str, Any]]:
    """The parts; for a video, none when it has no soundtrack (its keyframes still count)."""
    from ..decode.audio import NoSoundtrackError
    from ..errors import DecodeError

    try:
        yield from parts
    except NoSoundtrackError:
        if not video:
            raise
    except DecodeError:
        if not video:
            raise
        log.debug("the soundtrack of a video could not be streamed", exc_info=True)


def _had(rec: FileRecord, kind: str) -> bool:
    return rec.kind == kind or (rec.kind == "video" and kind == "audio") or rec.state != "done"


def _record(item: Prepared, state: str) -> FileRecord:
    return FileRecord(item.fid, item.entry.real, item.kind, item.content_hash, item.entry.size, item.entry.mtime, state, item.n_rows)
