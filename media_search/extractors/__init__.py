"""Embedding models: each turns a batch of decoded media into unit vectors.

An extractor has a ``spec`` (a frozen :class:`ModelSpec` whose identity is
stamped into the collections it fills) and an ``embed`` method that takes a
batch and returns an ``(n, spec.dim)`` float32 array of unit vectors.
"""

from .spec import ModelSpec

__all__ = ["ModelSpec"]
