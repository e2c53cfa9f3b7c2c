"""A sound against the library's sounds or videos' soundtracks: window alignment and fingerprints.

``rank_sounds`` ranks one source (``"audio"`` or ``"video"``); ``read_sounds`` reads the rows of
both at once when a query ranks against both (an audio query).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import rank as copyrank
from .pool import Ctx, candidates
from .rank import align_rows, shortlist

if TYPE_CHECKING:
    import numpy as np

    from ..config import Settings
    from ..embed.embedders import Embedded
    from ..signals.audio import AudioMatch
    from ..store.milvus import MilvusStore
    from ..store.records import Row
    from ..types import Match

__all__ = ["rank_sounds", "read_sounds", "sound_rows", "sound_shortlist", "stored_prints", "voted", "sample_check", "SOUND_POOL"]

#: Files a sound query's embeddings put in its head, whatever ``k``: its copies come from the
#: fingerprint index (``signals.print_index``) wherever the embeddings rank them, so the head needs
#: no more than the similar sounds a page of results shows. Each file's rows are read with their
#: vectors and fingerprints: 32 files cost 0.2 s of a 0.55 s query at 9,800 windows.
SOUND_POOL = 16


def read_sounds(lib: Ctx, sound: Embedded, pairs: Any, exclude: str, sources: Sequence[str], k: int) -> None:
    """A sound ranked against several ``sources`` (an audio query: the sounds and the videos'
    soundtracks): the shortlists first, then their rows in one read (each read filters every row
    of the collection: about 40 ms at 9,800 windows), for ``rank_sounds`` to take its own from."""
    if len(sound) == 0 or len(sources) < 2 or not lib.store.has("audio"):
        return
    lib.ensure("audio")
    for source in sources:
        lib.sound_short[source] = sound_shortlist(lib, sound, k, exclude, source, pairs)
    union = list(dict.fromkeys(f for short, _ in lib.sound_short.values() for f in short))
    lib.sound_rows = sound_rows(lib.store, union)


def sound_rows(store: MilvusStore, file_ids: Sequence[str]) -> list[Row]:
    """Every audio row of these files, with its vector: from the fingerprint index where it keeps
    them (beside a Lite ``.db``: ``store.prints``), the others from the store."""
    from ..signals.print_index import print_index

    if not file_ids:
        return []
    kept = print_index(store).windows(file_ids)
    missing = [f for f in file_ids if f not in kept]
    return [r for f in file_ids for r in kept.get(f, ())] + (store.fetch_rows("audio", missing) if missing else [])


def sound_shortlist(lib: Ctx, sound: Embedded, k: int, exclude: str, source: str, pairs: Any) -> tuple[list[str], set[str]]:
    """The files a sound is aligned with, and the head among them (see ``rank_sounds``)."""
    # The head: a pool of a fixed size, whatever ``k`` (and the files the fingerprint index finds,
    # wherever the embeddings put them). A larger ``k`` adds files of a wider pool after the head,
    # so ``k`` changes how many results come back, never which come first.
    head_size = SOUND_POOL if pairs is not None else 10
    short = shortlist(candidates(lib, "audio", sound.vectors, head_size, exclude, source=source), head_size)
    if pairs is not None:
        short += [f for f in voted(lib, pairs, exclude, source) if f not in short]
    head = set(short)
    if k > len(short):  # the head comes first: a wider pool shows only past it
        wide = shortlist(candidates(lib, "audio", sound.vectors, 2 * k, exclude, source=source), 2 * k)
        short += [f for f in wide if f not in head]
    return short, head


def voted(lib: Ctx, pairs: Any, exclude: str, source: str) -> list[str]:
    """The files the fingerprint index finds for the query's landmarks ``pairs`` among ``source``'s
    (``signals.print_index.candidates``), voted once per query (an audio query votes while Cnn14
    embeds it: ``query.search._query_sound``)."""
    if source not in lib.votes:
        from ..signals.print_index import candidates as print_candidates

        lib.votes[source] = print_candidates(lib.store, pairs, source=source, exclude=exclude)
    return lib.votes[source]


def stored_prints(store: MilvusStore, rows: Sequence[Row], source: str) -> dict[str, list[np.ndarray]]:
    """The stored landmarks of the files of the ``source`` rows, per path.

    They come from the fingerprint index (``store.prints``: each file's landmarks, as its rows
    hold them), not from the rows: reading the ``fp`` arrays of a query's 489 windows from Milvus
    Lite cost 85 ms of a 570 ms audio query at 10k windows. A file the index does not hold at the
    content hash of its rows (not synced yet, or changed since) has its ``fp`` read from the store."""
    from ..signals.print_index import print_index

    files = {r.file_id: r for r in rows if (r.source or source) == source}
    if not files:
        return {}
    kept = print_index(store).prints(list(files))
    prints: dict[str, list[np.ndarray]] = {}
    missing = []
    for f, r in files.items():
        got = kept.get(f)
        if got is None or got[0] != r.content_hash:
            missing.append(f)
        elif len(got[1]):
            prints[r.path] = [got[1]]
    for r in store.fetch_rows("audio", missing, vectors=False, copy_fields=("fp",)) if missing else ():
        if (r.source or source) == source and r.fp is not None and len(r.fp):
            prints.setdefault(r.path, []).append(r.fp)
    return prints


def sample_check(settings: Settings, samples: np.ndarray | None, source: str) -> Callable[[str, AudioMatch], bool | None] | None:
    """What ``rank.rerank_sounds`` asks of a weak fingerprint copy (``signals.waveform``): whether
    the library file at ``path`` holds the query's ``samples`` (at 32 kHz) at the match's offset.
    None when the query kept no samples (a long sound, streamed). A file that cannot be decoded
    now (moved, unreadable) answers None: the fingerprint's verdict stands."""
    if samples is None:
        return None
    from ..decode.audio import SAMPLE_RATE
    from ..signals.waveform import heard

    def check(path: str, m: AudioMatch) -> bool | None:
        return heard(samples, SAMPLE_RATE, path, m, from_video=source == "video", timeout=settings.decode_timeout)

    return check


def rank_sounds(
    lib: Ctx, sound: Embedded, k: int, exclude: str, *, source: str, pairs: Any = None, samples: np.ndarray | None = None,
) -> list[Match]:  # fmt: skip
    """The files whose ``source`` sound (``"audio"``, or ``"video"``: soundtracks) agrees with
    ``sound``, aligned in time and, with ``pairs``, checked by their fingerprints (and the weak
    copies among them on the query's ``samples``: ``sample_check``)."""
    from ..embed.audio import AUDIO_HOP, AUDIO_WINDOW

    store = lib.store
    if not store.has("audio") or len(sound) == 0:
        return []
    lib.ensure("audio")
    if source in lib.sound_short:  # read with the other source's (``read_sounds``)
        short, head = lib.sound_short[source]
        mine = set(short)
        rows = [r for r in lib.sound_rows if r.file_id in mine]
    else:
        short, head = sound_shortlist(lib, sound, k, exclude, source, pairs)
        rows = sound_rows(store, short)
    rows = [r for r in rows if r.content_hash != exclude]
    in_head = {r.path for r in rows if r.file_id in head}
    out = align_rows(sound.timestamps, sound.vectors, rows, tol=AUDIO_HOP, source=source)
    if pairs is not None:
        out = copyrank.rerank_sounds(pairs, out, stored_prints(store, rows, source), head=in_head,
                                     check=sample_check(lib.settings, samples, source))  # fmt: skip
    else:
        out = sorted(out, key=lambda m: (-m.score, m.path))
    out = sorted(out, key=lambda m: m.path not in in_head)[:k]  # stable: the head first, in its order
    for r in rows:  # for ``place_matches``: no ffprobe per result
        lib.lengths[r.path] = max(lib.lengths.get(r.path, 0.0), (r.timestamp or 0.0) + AUDIO_WINDOW)
    return out
