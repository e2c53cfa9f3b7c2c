"""Links: the pairs found (with their evidence) and the union-find that turns them into groups."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Pair", "Links", "Relation"]

Relation = Literal["exact", "copy", "similar"]


@dataclass(frozen=True)
class Pair:
    """Two files and why they belong together.

    ``relation``: ``exact`` (same bytes), ``copy`` (an edited copy, verified by
    copy evidence) or ``similar`` (near-duplicate: close pHash and embedding,
    not verified as a copy). ``method`` names the evidence: ``content_hash``,
    ``phash``, ``local_features``, ``keyframes`` or ``audio_fingerprint``.
    Times: ``a_time`` / ``b_time`` where the shared content is in ``a`` / ``b``
    (s; keyframe time for a picture in a video, ``b_time`` = where sound ``a``
    starts in ``b`` for sounds), ``offset`` = ``b_time - a_time``.
    """

    a: str
    b: str
    relation: Relation
    method: str
    confidence: float | None = None
    phash_distance: int | None = None
    inliers: int | None = None
    mirrored: bool | None = None
    matched_frames: int | None = None
    votes: int | None = None
    cosine: float | None = None
    a_time: float | None = None
    b_time: float | None = None
    offset: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


class Links:
    """Pairs by relation, with a union-find over the ``exact`` and ``copy`` ones."""

    def __init__(self) -> None:
        self.pairs: list[Pair] = []
        self._parent: dict[str, str] = {}

    def _find(self, x: str) -> str:
        p = self._parent.setdefault(x, x)
        while p != self._parent[p]:
            self._parent[p] = self._parent[self._parent[p]]
            p = self._parent[p]
        self._parent[x] = p
        return p

    def linked(self, a: str, b: str) -> bool:
        """True when ``a`` and ``b`` are already in one copy group."""
        return self._find(a) == self._find(b)

    def add(self, pair: Pair) -> None:
        if pair.a == pair.b:
            return
        self.pairs.append(pair)
        if pair.relation != "similar":
            ra, rb = self._find(pair.a), self._find(pair.b)
            if ra != rb:
                self._parent[max(ra, rb)] = min(ra, rb)

    def root(self, path: str) -> str:
        return self._find(path)
