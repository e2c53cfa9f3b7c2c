"""Verdicts: the pair checks of earlier runs, kept beside the library, so that a new run checks only new pairs.

A check's outcome depends only on the two pictures' content and on how they are compared, so a
verdict is keyed by both sides' content (content hash, and the keyframe's time for a video) and
stamped with a version (the stored local features' and pHash's versions and the verification
settings): re-indexing a file under another content, or a new version, simply misses. What is
kept per pair: the inliers, matches and mirror flag of the stored-feature check (``q``) and of
the decoded check (``v``); the decisions are taken again from them on every run.

Sounds are matched all at once (``sounds.sound_votes``), not pair by pair: what is kept is each
pair's votes and offset in ms (``a``, in the inliers and matches columns), and which sounds the
last run matched (``r``, the run's number in the inliers column): every pair among those is
known, so the next run counts only the pairs with a sound it did not have (``last_run``).

The file is derived data, like the fingerprint index (``store.prints``):

* Milvus Lite: ``<uri>.duplicates.sqlite`` next to the ``.db``;
* a Milvus server: ``$XDG_CACHE_HOME/media_search/duplicates/<sha1(uri, prefix)>.sqlite``
  (``MEDIA_SEARCH_PRINTS_DIR`` overrides the folder, as for the fingerprint index).

Deleting it costs one full run; an unreadable one is replaced by an empty one. New verdicts are
written once, at the end of a run, in one transaction.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from ..signals import image as fi

__all__ = ["Verdicts", "verdicts_path"]

log = logging.getLogger(__name__)


def _version() -> str:
    from .pictures import QUICK_MIN
    from .sounds import sound_version
    from .verify import CONFIRM_SIDE, NCC_MIN, VERIFY_SIDE

    return f"{fi.LOCAL_VERSION}|{fi.PHASH_VERSION}|side{VERIFY_SIDE}|ncc{NCC_MIN}|quick{QUICK_MIN}|confirm{CONFIRM_SIDE}|{sound_version()}|v3"

Key = tuple[str, str, float | None, str, float | None]  # (stage, hash a, time a, hash b, time b)
Verdict = tuple[int, int, bool]  # (inliers, matches, mirrored)


def verdicts_path(store: Any) -> str:
    """Where ``store``'s verdicts live (see the module docstring)."""
    from ..store.prints import side_file

    return side_file(store, "duplicates")


def _text(key: Key) -> str:
    stage, ha, ta, hb, tb = key
    return f"{stage}|{ha}|{'' if ta is None else round(ta, 3)}|{hb}|{'' if tb is None else round(tb, 3)}"


class Verdicts:
    """Pair verdicts by content; ``path=None`` keeps them in memory only (nothing written)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.version = _version()
        self._old: dict[str, Verdict] = {}
        self._new: dict[str, Verdict] = {}
        self.hits = 0
        if path:
            self._old = self._load(path)

    def _load(self, path: str) -> dict[str, Verdict]:
        if not os.path.exists(path):
            return {}
        try:
            with sqlite3.connect(path) as db:
                row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
                if not row or row[0] != self.version:
                    return {}
                return {k: (int(i), int(m), bool(r)) for k, i, m, r in db.execute("SELECT key, inliers, matches, mirrored FROM verdicts")}
        except sqlite3.Error as e:
            log.warning("ignoring the unreadable duplicate verdicts %s: %s", path, e)
            return {}

    def __len__(self) -> int:
        return len(self._old) + len(self._new)

    def __contains__(self, key: Key) -> bool:
        k = _text(key)
        return k in self._old or k in self._new

    def get(self, key: Key) -> Verdict | None:
        k = _text(key)
        got = self._old.get(k)
        if got is not None:
            self.hits += 1  # kept from an earlier run
            return got
        return self._new.get(k)

    def stage(self, stage: str) -> Iterator[tuple[str, str, Verdict]]:
        """(content a, content b, verdict) of every pair kept under ``stage`` (keys without times)."""
        for kept in (self._old, self._new):
            for k, v in kept.items():
                if k.startswith(stage + "|"):
                    _, ha, _, hb, _ = k.split("|")
                    yield ha, hb, v

    def last_run(self) -> tuple[int, set[str]]:
        """The number of the last run that matched sounds, and the contents it matched."""
        runs: dict[int, set[str]] = {}
        for ha, _, v in self.stage("r"):
            runs.setdefault(v[0], set()).add(ha)
        return (max(runs), runs[max(runs)]) if runs else (0, set())

    def put(self, key: Key, verdict: fi.Verification) -> None:
        self._new[_text(key)] = (int(verdict.inliers), int(verdict.matches), bool(verdict.mirrored))

    def save(self) -> int:
        """Write the new verdicts (all of them again when the version changed); returns how many."""
        if not self.path or not self._new:
            return 0
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(self.path) as db:
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, inliers INTEGER, matches INTEGER, mirrored INTEGER)")
                row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
                if not row or row[0] != self.version:
                    db.execute("DELETE FROM verdicts")
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (self.version,))
                db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)", [(k, *v) for k, v in self._new.items()])
        except (sqlite3.Error, OSError) as e:
            log.warning("could not keep the duplicate verdicts in %s: %s", self.path, e)
            return 0
        self._old.update(self._new)
        n, self._new = len(self._new), {}
        return n
