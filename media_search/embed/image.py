"""ResNet50 image embeddings: 2048-d global-average-pool output, L2-normalised.

The classifier is removed (``fc = Identity``). Preprocessing
(``decode.image.prepare``) squashes the whole picture to 224x224 -- no centre
crop, so nothing at the edges is lost for near-duplicate search -- and the
engine normalises with ImageNet statistics. ``prepare`` runs wherever decoding
runs (worker processes during bulk indexing); ``ImageEmbedder.embed`` takes a
batch of prepared arrays. The model's facts are ``embed.models.RESNET50``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .models import RESNET50

__all__ = ["INPUT_SIZE", "PREPROCESS", "ImageEmbedder"]

log = logging.getLogger(__name__)

INPUT_SIZE = RESNET50.input_size
PREPROCESS = RESNET50.preprocess


class ImageEmbedder:
    """Embeds prepared 224x224 RGB arrays with ResNet50.

    ``weights``: ``pretrained``, a path to a ``.pth`` state dict, or ``random``
    (seeded with ``seed``; for tests and offline demos only). ``engine``:
    ``auto`` / ``torch`` / ``onnx`` / ``int8`` (default: ``MEDIA_SEARCH_ENGINE``,
    see ``embed.engines``); fp32 engines share the torch model's ``spec``,
    the int8 one has its own.
    """

    def __init__(
        self, weights: str = "pretrained", device: str = "auto", seed: int = 0, engine: str | None = None
    ) -> None:
        from .engines import IMAGE, load_engine
        from .runtime import device_name
        from .weights import resolve

        self.resolved = resolve(weights, RESNET50.weights, seed=seed)
        self.device = device_name(device)
        model_spec = RESNET50.spec(self.resolved.weights_id)
        self.spec, self.engine = load_engine(
            engine, self.device, model_spec, IMAGE,
            _load_model, self.resolved.mode, str(self.resolved.path or ""), seed, str(self.device),
        )  # fmt: skip

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 224, 224, 3) uint8 -> (n, 2048) float32 unit vectors."""
        if len(batch) == 0:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        arr = np.stack([np.asarray(b, dtype=np.uint8) for b in batch])
        return self.engine(arr)


def _load_model(mode: str, path: str, seed: int, device: str) -> Any:
    """Build ResNet50 (not cached here: ``embed.engines`` keeps one engine per model, and an
    ONNX export must be able to let go of it)."""
    import torch
    from torchvision.models import resnet50

    from .weights import load_state_dict

    if mode == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = resnet50(weights=None)
    else:
        model = resnet50(weights=None)
        state = load_state_dict(Path(path))
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            from ..errors import WeightsUnavailableError

            raise WeightsUnavailableError(
                f"{path} is not a ResNet50 checkpoint (missing {len(missing)} and "
                f"{len(unexpected)} unexpected tensors, e.g. {(missing + unexpected)[:3]}); "
                "set MEDIA_SEARCH_IMAGE_WEIGHTS to pretrained, random or a torchvision ResNet50 .pth file.",
                path=path,
            )
    model.fc = torch.nn.Identity()
    model.eval()
    model = model.to(device=torch.device(device), memory_format=torch.channels_last)
    log.info("loaded resnet50 (%s) on %s", mode, device)
    return model
