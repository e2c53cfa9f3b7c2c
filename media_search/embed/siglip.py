"""SigLIP (through ``transformers``): pictures and texts in one space.

``SiglipEmbedder`` takes the same prepared 224x224 uint8 pictures as
ResNet50 (``decode.image.prepare`` squashes the whole picture, as SigLIP's own
processor does), scales them to [-1, 1] (mean 0.5, std 0.5), resizes them in
the graph when the model's side differs, and returns the image tower's pooled
projection as unit vectors; ``embed_text`` does the same for texts through the
text tower. Any SigLIP checkpoint works: the registry entry (``embed.models``)
says which.

Weights (``MEDIA_SEARCH_IMAGE_WEIGHTS``), the same three forms as ResNet50's:

* ``pretrained``: the checkpoint folder (``model.safetensors`` checked against
  its sha256 and size, config and tokenizer files at the pinned revision) is
  downloaded once into ``weights.cache_dir()/<model>@<revision>/``;
* a local folder (a ``save_pretrained`` folder: ``config.json`` and
  ``model.safetensors``, with the tokenizer files or without), or a file inside one;
* ``random``: seeded, untrained weights of the registry entry's architecture
  (for tests and offline demos only).

Without tokenizer files (``random``, or a folder without them) texts are
tokenised by ``ByteTokenizer`` (UTF-8 bytes), which is enough to run the real
text tower on random weights; real SigLIP text search needs the model's own
SentencePiece tokenizer (``sentencepiece``, in the ``multimodal`` extra).

SigLIP always runs on torch (bf16 autocast on CUDA): ``MEDIA_SEARCH_ENGINE``
``onnx`` / ``int8`` apply to ResNet50 and Cnn14 only, so its identity is the
torch one.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightsUnavailableError
from .models import Model
from .recipe import Recipe
from .registry import require
from .spec import ModelSpec

__all__ = ["SiglipEmbedder", "ByteTokenizer", "resolve_folder", "ResolvedFolder"]

log = logging.getLogger(__name__)

#: Tokenizer files a checkpoint folder may hold; with none of them texts go through ``ByteTokenizer``.
_TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json")


class ByteTokenizer:
    """Texts -> ``(n, length)`` token ids: lower-cased UTF-8 bytes + 3, then ``</s>`` (1), padded with 1.

    SigLIP pads every text to its full length and pools the last position, so
    padding to ``length`` is what the model expects. Needs a vocabulary of at
    least 259 ids.
    """

    EOS = PAD = 1
    OFFSET = 3

    def __init__(self, length: int) -> None:
        self.length = max(2, int(length))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), self.length), self.PAD, dtype=np.int64)
        for i, text in enumerate(texts):
            ids = [b + self.OFFSET for b in " ".join(text.lower().split()).encode("utf-8")][: self.length - 1]
            out[i, : len(ids)] = ids
            out[i, len(ids)] = self.EOS
        return out


@dataclass(frozen=True)
class ResolvedFolder:
    mode: str  # pretrained | file | random
    folder: Path | None
    weights_id: str


def resolve_folder(value: str, model: Model, *, seed: int = 0, dest_dir: Path | None = None) -> ResolvedFolder:
    """A weights setting -> the checkpoint folder (downloaded and checked) and its weights id."""
    from .weights import _sha256_of, cache_dir, download

    keyword = value.strip().lower()
    if keyword == "random":
        return ResolvedFolder("random", None, f"random:{seed}")
    if keyword == "pretrained":
        folder = (dest_dir or cache_dir()) / f"{model.name}@{(model.revision or 'main')[:12]}"
        for wf in (model.weights, *model.files):
            download(wf, folder)
        ident = model.weights.weights_id or model.name
        if model.weights.sha256:
            ident = f"{ident}:{model.weights.sha256[:16].lower()}"
        return ResolvedFolder("pretrained", folder, ident)
    path = Path(value).expanduser()
    folder = path if path.is_dir() else path.parent
    weights = folder / "model.safetensors"
    if not value.strip() or not (folder / "config.json").is_file() or not weights.is_file():
        raise WeightsUnavailableError(
            f"{model.weights.setting} is {value!r}, which is not a {model.name} checkpoint folder: give a folder "
            f"holding config.json and model.safetensors (as save_pretrained writes it), 'pretrained' to "
            f"download it, or 'random' (untrained weights, for tests only).",
            path=path,
        )
    return ResolvedFolder("file", folder, f"file:{_sha256_of(weights)[:16]}")


class SiglipEmbedder:
    """A SigLIP model: ``embed`` for prepared pictures, ``embed_text`` for texts; unit vectors of ``spec.dim``."""

    def __init__(
        self,
        model: Model,
        weights: str = "pretrained",
        device: str = "auto",
        seed: int = 0,
        engine: str | None = None,
    ) -> None:
        from .engines import TorchEngine
        from .runtime import torch_device

        require(model)
        self.model = model
        self.resolved = resolve_folder(weights, model, seed=seed)
        self.device = torch_device(device)
        if engine in ("onnx", "int8"):
            log.warning("%s runs on torch: MEDIA_SEARCH_ENGINE=%s applies to ResNet50 and Cnn14 only", model.name, engine)
        folder = str(self.resolved.folder or "")
        net = _load_model(model, self.resolved.mode, folder, seed, str(self.device))
        dim = int(net.config.vision_config.hidden_size)  # SigLIP pools without a projection
        if dim != model.dim:
            raise WeightsUnavailableError(
                f"The checkpoint {folder or 'random'} gives {dim}-d vectors, but {model.name} declares {model.dim}: "
                f"point {model.weights.setting} at a {model.name} checkpoint.",
                path=folder or None,
            )
        self.spec = ModelSpec(model.name, self.resolved.weights_id, model.dim, model.metric, model.preprocess)
        self.net = net
        self.engine = TorchEngine(net, self.device, _recipe(model.input_size, int(net.config.vision_config.image_size)))
        self.tokenize = _tokenizer(folder, model.text_length or int(net.config.text_config.max_position_embeddings))

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """(n, side, side, 3) uint8 prepared pictures -> (n, dim) float32 unit vectors."""
        if len(batch) == 0:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        return self.engine(np.stack([np.asarray(b, dtype=np.uint8) for b in batch]))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (n, dim) float32 unit vectors in the pictures' space."""
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        ids = torch.from_numpy(self.tokenize(list(texts))).to(self.device)
        with torch.inference_mode():
            out = _pooled(self.net.get_text_features(input_ids=ids)).float()
            return torch.nn.functional.normalize(out, dim=1).cpu().numpy()


def _pooled(out: Any) -> Any:
    """``get_*_features`` returns a tensor (transformers 4) or an output with ``pooler_output`` (5)."""
    return getattr(out, "pooler_output", out)


def _tokenizer(folder: str, length: int) -> Any:
    """The checkpoint's own tokenizer when its folder has one, else ``ByteTokenizer``."""
    if folder and any((Path(folder) / f).is_file() for f in _TOKENIZER_FILES):
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(folder)
        except Exception as e:  # noqa: BLE001 - a clear error names the cause
            raise WeightsUnavailableError(
                f"Cannot load the tokenizer in {folder} ({type(e).__name__}: {str(e)[:200]}); "
                "pip install -e '.[multimodal]' brings sentencepiece, which SigLIP's tokenizer needs.",
                path=folder,
            ) from e

        def run(texts: list[str]) -> np.ndarray:
            enc = tok([t.lower() for t in texts], padding="max_length", max_length=length, truncation=True, return_tensors="np")
            return np.asarray(enc["input_ids"], dtype=np.int64)

        return run
    return ByteTokenizer(length)


def _recipe(prepared: int, side: int) -> Recipe:
    from .engines import probe_batch

    return Recipe(
        "siglip-image", "pixels", np.uint8, functools.partial(_image_pipeline, side=side),
        functools.partial(probe_batch, size=prepared), cuda_bf16=True,
    )  # fmt: skip


def _image_pipeline(model: Any, side: int) -> Any:
    """uint8 NHWC -> [-1, 1] NCHW at the model's side -> image tower -> unit vectors."""
    import torch

    class SiglipImage(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
            if x.shape[-1] != side or x.shape[-2] != side:
                x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
            out = _pooled(self.inner.get_image_features(pixel_values=x))
            return torch.nn.functional.normalize(out.float(), dim=1)

    return SiglipImage(model).eval()


@functools.lru_cache(maxsize=4)
def _load_model(model: Model, mode: str, folder: str, seed: int, device: str) -> Any:
    """Build the SigLIP model once per (entry, weights, device) in this process."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    if mode == "random":
        kwargs = json.loads(model.config or "{}")
        text = kwargs.setdefault("text_config", {})
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            text.setdefault(key, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = SiglipModel(SiglipConfig(**kwargs))
    else:
        try:
            net = SiglipModel.from_pretrained(folder, local_files_only=True)
        except Exception as e:  # noqa: BLE001
            raise WeightsUnavailableError(
                f"{folder} does not hold a SigLIP checkpoint that transformers can load "
                f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); point "
                f"{model.weights.setting} at a save_pretrained folder of {model.name}.",
                path=folder,
            ) from e
    net.eval()
    net = net.to(torch.device(device))
    log.info("loaded %s (%s) on %s", model.name, mode, device)
    return net
