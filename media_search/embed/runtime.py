"""Where models run: the device choice shared by every extractor."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["torch_device", "device_name", "gpu_possible"]

log = logging.getLogger(__name__)


def gpu_possible() -> bool:
    """Whether a GPU driver is present at all (NVIDIA or ROCm device files): without one, ``auto``
    means the CPU and torch need not be imported to find that out (a cached ONNX engine runs
    without torch)."""
    import glob
    import os

    return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/kfd")


def device_name(setting: str = "auto") -> str:
    """``torch_device(setting)`` as a string (``cpu`` or ``cuda``); torch is imported only when a GPU
    driver is present or ``cuda`` is asked for."""
    if setting == "cpu" or (setting == "auto" and not gpu_possible()):
        return "cpu"
    return str(torch_device(setting).type)


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
