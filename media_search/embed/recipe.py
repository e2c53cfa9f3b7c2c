"""``Recipe``: how a model of one kind becomes an inference engine, and the engine's model identity.

Its own small module so that ``engines`` (which builds engines) and ``onnx``
(which exports them) both read it without importing each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .spec import ModelSpec

__all__ = ["Recipe", "engine_spec"]


@dataclass(frozen=True)
class Recipe:
    """How a model of one kind becomes an engine."""

    kind: str
    input_name: str
    dtype: Any  # numpy dtype of the input batch
    wrap: Callable[[Any], Any]  # torch model -> module: input batch -> unit vectors
    probe: Callable[..., np.ndarray]  # probe(n, seed=...) -> deterministic input batch
    cuda_bf16: bool = False  # torch engine on CUDA runs under bf16 autocast
    int8_keep_fp32: tuple[str, ...] = ()  # ONNX node name prefixes left in fp32 by the int8 engine


def engine_spec(spec: ModelSpec, kind: str) -> ModelSpec:
    """The model identity of ``spec``'s model run by engine ``kind``: int8 is its own."""
    if kind == "int8":
        return dataclasses.replace(spec, weights_id=f"{spec.weights_id}:int8r")  # r: reduced-range weights (below)
    return spec
