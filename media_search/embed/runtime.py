"""Where models run: the device choice shared by every extractor."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["torch_device"]

log = logging.getLogger(__name__)


def torch_device(setting: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU. ``cuda`` without a GPU is a ConfigError."""
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "MEDIA_SEARCH_DEVICE=cuda, but this torch build sees no CUDA GPU: "
                "use MEDIA_SEARCH_DEVICE=auto or cpu, or install a CUDA build of torch."
            )
        return torch.device("cuda")
    if setting == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"MEDIA_SEARCH_DEVICE is {setting!r}; use auto, cpu or cuda.")
