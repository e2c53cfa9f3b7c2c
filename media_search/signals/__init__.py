"""Copy signals beside the embeddings: "this exact content, edited", whatever the weights.

* ``signals.image``: a 64-bit perceptual hash and the local features (the
  strongest SIFT keypoints, packed) stored with image and keyframe rows;
  local-feature (RANSAC) verification of the candidates the hashes leave
  open at query time, against the stored features (no library file is read);
  mirror invariance through the mirrored query.
* ``signals.audio``: a landmark fingerprint (spectral peak pairs) stored
  with the audio rows, matched by hash lookup and offset voting, with tempo
  hypotheses.

Both give a ``copy`` verdict and a 0..1 ``confidence`` calibrated on
``scripts/bench_copy.py``; neither reads an embedding score.

Each stored signal is one ``SignalSpec`` (name and version). Its version is
stamped into the collections that hold it, like a model's identity: rows of
two versions are never mixed (``store.milvus``). ``add_copy_signals`` fills a
decoded file's signals (the decode stage, ``indexing.pool``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .audio import FP_VERSION
from .image import LOCAL_VERSION, PHASH_VERSION

if TYPE_CHECKING:
    from ..decode.file import Decoded

__all__ = ["SignalSpec", "PHASH", "LOCAL", "LANDMARKS", "SIGNALS", "add_copy_signals"]


@dataclass(frozen=True)
class SignalSpec:
    """The identity of a stored copy signal: a changed version means the stored rows must be rebuilt."""

    name: str
    version: str

    @staticmethod
    def to_json(signals: Iterable[SignalSpec]) -> str:
        return json.dumps({s.name: s.version for s in signals}, sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> tuple[SignalSpec, ...]:
        return tuple(SignalSpec(k, v) for k, v in sorted(json.loads(text).items()))

    @staticmethod
    def describe(signals: Iterable[SignalSpec]) -> str:
        return ", ".join(f"{s.name} {s.version}" for s in signals) or "no copy signal"


PHASH = SignalSpec("phash", PHASH_VERSION)
LOCAL = SignalSpec("local", LOCAL_VERSION)
LANDMARKS = SignalSpec("landmarks", FP_VERSION)
#: The copy signals stored with each kind's rows.
SIGNALS: dict[str, tuple[SignalSpec, ...]] = {"image": (LOCAL, PHASH), "video": (LOCAL, PHASH), "audio": (LANDMARKS,)}


def add_copy_signals(d: Decoded) -> Decoded:
    """Fill ``phashes``, ``local`` and ``prints``; drop the local pictures once used (they would
    only weigh on the way back from a worker process)."""
    from .audio import landmarks, pack
    from .image import pack_features, phash_hex, stored_features

    if d.frames is not None:
        d.phashes = [phash_hex(f) for f in d.frames]
        if d.pictures is not None:
            d.local = [pack_features(stored_features(p)) for p in d.pictures]
            d.pictures = None
    if d.audio is not None:
        d.prints = pack(landmarks(d.audio.samples, d.audio.sr))
    return d
