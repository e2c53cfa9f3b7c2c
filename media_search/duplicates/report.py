"""Report: groups of copies (and, apart, of similar files), each with a likely original.

A group is a connected set of files under ``exact`` and ``copy`` links; the
``similar`` tier groups what only ``similar`` links join (bursts, re-shoots),
never mixed with copies. Each member carries what a user needs to decide
what to keep: size, dimensions or duration, mtime. The likely original is the
largest picture, then the longest, then the oldest file.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from typing import Any

from .links import Links, Pair

__all__ = ["Member", "Group", "DuplicateReport", "build_groups", "CSV_FIELDS"]

log = logging.getLogger(__name__)


@dataclass
class Member:
    path: str
    kind: str
    size: int
    mtime: float
    content_hash: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    original: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "size": self.size, "mtime": self.mtime,
                "width": self.width, "height": self.height, "duration": self.duration,
                "content_hash": self.content_hash, "original": self.original}  # fmt: skip


@dataclass
class Group:
    """Files that are copies of each other (``tier="copies"``) or only alike (``tier="similar"``)."""

    id: int
    tier: str
    files: list[Member]
    pairs: list[Pair]

    @property
    def kinds(self) -> list[str]:
        return sorted({m.kind for m in self.files})

    @property
    def kind(self) -> str:
        k = self.kinds
        return k[0] if len(k) == 1 else "mixed"

    @property
    def original(self) -> str:
        return next((m.path for m in self.files if m.original), self.files[0].path)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tier": self.tier, "kind": self.kind, "kinds": self.kinds, "original": self.original,
                "files": [m.to_dict() for m in self.files], "pairs": [p.to_dict() for p in self.pairs]}  # fmt: skip


@dataclass
class DuplicateReport:
    groups: list[Group]
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def copies(self) -> list[Group]:
        return [g for g in self.groups if g.tier == "copies"]

    @property
    def similar(self) -> list[Group]:
        return [g for g in self.groups if g.tier == "similar"]

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [g.to_dict() for g in self.groups], "seconds": round(self.seconds, 3), "stats": self.stats}

    def to_csv(self) -> str:
        """One row per file: its group id and tier, whether it is the likely original, its details."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        w.writeheader()
        for g in self.groups:
            for m in g.files:
                row = {"group": g.id, "tier": g.tier, "group_kind": g.kind, **m.to_dict()}
                w.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_FIELDS})
        return buf.getvalue()


CSV_FIELDS = ["group", "tier", "group_kind", "path", "kind", "original", "size", "width", "height", "duration", "mtime", "content_hash"]


def _dimensions(path: str, kind: str) -> tuple[int | None, int | None]:
    try:
        if kind == "image":
            from PIL import Image

            with Image.open(path) as im:
                return im.size
        if kind == "video":
            import cv2

            cap = cv2.VideoCapture(path)
            try:
                w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                return (w or None), (h or None)
            finally:
                cap.release()
    except Exception as e:  # noqa: BLE001 - a moved file just has no dimensions in the report
        log.debug("cannot read the dimensions of %s: %s", path, e)
    return None, None


def _member(rec: Any, durations: dict[str, float]) -> Member:
    w, h = _dimensions(rec.path, rec.kind)
    dur = durations.get(rec.file_id) if rec.kind != "image" else None
    return Member(rec.path, rec.kind, int(rec.size), float(rec.mtime), rec.content_hash, w, h, dur)


def _original_key(m: Member) -> tuple:
    return (-((m.width or 0) * (m.height or 0)), -(m.duration or 0.0), m.mtime, m.path)


def build_groups(links: Links, records: dict[str, Any], durations: dict[str, float]) -> list[Group]:
    """``records``: manifest entries by path; ``durations``: seconds by file id."""
    copies: dict[str, list[str]] = {}
    for p in links.pairs:
        if p.relation != "similar":
            for x in (p.a, p.b):
                copies.setdefault(links.root(x), [])
    for path in {x for p in links.pairs if p.relation != "similar" for x in (p.a, p.b)}:
        copies[links.root(path)].append(path)
    groups: list[tuple[str, list[str], list[Pair]]] = []
    pairs_of: dict[str, list[Pair]] = {}
    for p in links.pairs:
        if p.relation != "similar":
            pairs_of.setdefault(links.root(p.a), []).append(p)
    for root, members in copies.items():
        groups.append(("copies", sorted(set(members)), pairs_of.get(root, [])))
    # the similar tier: components of similar links between files not already in one copy group
    sim = [p for p in links.pairs if p.relation == "similar" and not links.linked(p.a, p.b)]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in sim:
        ra, rb = find(p.a), find(p.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comp: dict[str, list[str]] = {}
    for x in list(parent):
        comp.setdefault(find(x), []).append(x)
    sim_pairs: dict[str, list[Pair]] = {}
    for p in sim:
        sim_pairs.setdefault(find(p.a), []).append(p)
    for root, members in comp.items():
        if len(members) > 1:
            groups.append(("similar", sorted(members), sim_pairs.get(root, [])))
    out: list[Group] = []
    for tier, members, pairs in groups:
        files = [_member(records[p], durations) for p in members if p in records]
        if len(files) < 2:
            continue
        files.sort(key=_original_key)
        files[0].original = True
        out.append(Group(0, tier, files, sorted(pairs, key=lambda p: (p.a, p.b))))
    out.sort(key=lambda g: (g.tier != "copies", -len(g.files), g.files[0].path))
    for i, g in enumerate(out, 1):
        g.id = i
    return out
