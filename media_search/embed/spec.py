"""``ModelSpec``: everything that must match between indexing and querying (see ``models``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """The identity of an embedding model, stamped into every collection it fills.

    ``weights_id`` names the exact weights: ``IMAGENET1K_V2:<sha256 prefix>`` for
    pretrained ones, ``file:<sha256 prefix>`` for a user's file, ``random:<seed>``.
    ``preprocess`` is a version string that changes whenever preprocessing does.
    """

    name: str
    weights_id: str
    dim: int
    metric: str = "COSINE"
    preprocess: str = "v1"

    @property
    def is_random(self) -> bool:
        return self.weights_id.startswith("random:")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        return cls(**json.loads(text))

    def describe(self) -> str:
        return f"{self.name} ({self.weights_id}, {self.dim}-d {self.metric}, preprocessing {self.preprocess})"

