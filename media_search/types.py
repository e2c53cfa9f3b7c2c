"""The values media_search returns: ``Match``, ``SearchResult`` and ``IndexReport``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Kind", "KINDS", "Match", "SearchResult", "Failure", "IndexReport", "fmt_time"]

Kind = Literal["image", "video", "audio"]
KINDS: tuple[Kind, ...] = ("image", "video", "audio")


@dataclass(frozen=True)
class Match:
    """One library file that resembles the query.

    ``score`` is on the cosine scale (higher is more similar). ``timestamp`` is
    where the match is in the result (seconds; ``None`` for images) and
    ``query_timestamp`` where it is in the query.

    ``copy``: the file holds the query's own content, edited (cropped, rotated,
    mirrored, re-encoded, framed in a screenshot; a sound snippet under noise,
    re-encoding or a tempo change), as verified by local features or an audio
    fingerprint -- not by the embeddings, so it holds whatever the weights.
    ``copy_confidence`` (0..1, ``copy`` from 0.5) is ``None`` when no copy
    check ran on this file. Copies rank first, then the rest by ``score``.
    """

    path: str
    kind: Kind
    score: float
    timestamp: float | None = None
    query_timestamp: float | None = None
    copy: bool = False
    copy_confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SearchResult:
    """What a query found: ranked ``results`` and the library's ``exact_copies`` of the input."""

    query: str
    kind: Kind
    results: list[Match]
    exact_copies: list[str] = field(default_factory=list)

    @property
    def copy_found(self) -> bool:
        """Whether any result is an edited copy of the input; False means "no match", only similar files."""
        return any(m.copy for m in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "kind": self.kind,
            "results": [m.to_dict() for m in self.results],
            "exact_copies": list(self.exact_copies),
        }


@dataclass(frozen=True)
class Failure:
    path: str
    error: str


@dataclass
class IndexReport:
    """What an indexing run did. ``to_dict`` gives the CLI's ``--json`` object."""

    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)
    keyframes: int = 0
    windows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 2 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [{"path": f.path, "error": f.error} for f in self.failed],
            "seconds": round(self.seconds, 3),
            "by_kind": dict(self.by_kind),
            "keyframes": self.keyframes,
            "windows": self.windows,
            "notes": list(self.notes),
        }


def fmt_time(t: float | None) -> str:
    """A time in seconds as shown to people: ``75.5`` -> ``1:15.50``; ``None`` -> ``""`` (CLI and page)."""
    if t is None:
        return ""
    m, s = divmod(float(t), 60)
    return f"{int(m)}:{s:05.2f}"
