"""Text query: words in, the library's pictures and video moments out, through the image model's text tower.

Only an image model that embeds text (``embed.registry.text_models()``, e.g.
SigLIP) can do this: the text's vector lands in the space its pictures and
keyframes were indexed in. Images rank by their vector, videos by their best
keyframe, which gives the moment (``Match.timestamp``). No copy signals: a
text has no pixels to compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..types import Kind, Match, SearchResult
from .pool import Ctx
from .search import _best_per_file

if TYPE_CHECKING:
    from ..config import Settings
    from ..embed.embedders import Embedders
    from ..store.milvus import MilvusStore

__all__ = ["search_text", "TEXT_KINDS", "MAX_TEXT"]

#: What a text query searches.
TEXT_KINDS: tuple[Kind, ...] = ("image", "video")
#: Longest text accepted (characters); the model reads its first tokens only anyway.
MAX_TEXT = 1000


def search_text(
    text: str,
    *,
    store: MilvusStore,
    embedders: Embedders,
    settings: Settings,
    k: int = 10,
    kinds: Sequence[str] | None = None,
) -> SearchResult:
    """The ``k`` pictures and videos most like ``text`` (``SearchResult.kind`` is ``"text"``)."""
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}.")
    words = " ".join(str(text).split())
    if not words:
        raise ConfigError("The text to search for is empty: give a few words, e.g. --text \"a cat asleep on a sofa\".")
    if len(words) > MAX_TEXT:
        raise ConfigError(f"The text to search for has {len(words)} characters; give at most {MAX_TEXT}.")
    targets = tuple(x for x in TEXT_KINDS if not kinds or x in kinds)
    if not targets:
        raise ConfigError(f"A text query searches {' and '.join(TEXT_KINDS)}, not {', '.join(kinds or [])}.")
    vector = embedders.text.embed_text([words])
    ctx = Ctx(store, embedders, settings)
    results: list[Match] = []
    for target in targets:
        if not store.has(target):
            continue
        ctx.ensure(target)
        results.extend(_best_per_file(ctx, target, vector, k, "", result_kind=target)())
    results.sort(key=lambda m: -m.score)
    return SearchResult(query=words, kind="text", results=results[:k], exact_copies=[])  # type: ignore[arg-type]
