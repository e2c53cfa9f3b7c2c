"""The embed stage: each model turns a batch of decoded media into unit vectors.

An embedder has a ``spec`` (a frozen :class:`ModelSpec` whose identity is
stamped into the collections it fills) and an ``embed`` method that takes a
batch and returns an ``(n, spec.dim)`` float32 array of unit vectors. Each
model is described once in ``models`` (``RESNET50``, ``CNN14``); ``embedders``
holds the models a library uses and the two embed steps.
"""

from .spec import ModelSpec

__all__ = ["ModelSpec"]
