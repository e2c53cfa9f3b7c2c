"""The models, each described once: ``RESNET50`` and ``CNN14``.

A ``Model`` holds every fact of one embedding model: name, weights file (URL,
checksum, id), preprocessing id, input (picture side or sample rate),
dimension and metric. The embedders, the weights loader, the engines and the
decoders (picture size, sample rate) read them from here; ``Model.spec`` gives
the ``ModelSpec`` identity stamped into the collections it fills.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import ModelSpec

__all__ = [
    "WeightsFile",
    "Model",
    "RESNET50",
    "CNN14",
    "SIGLIP_BASE",
    "RESNET50_IMAGENET",
    "CNN14_WEIGHTS",
]


@dataclass(frozen=True)
class WeightsFile:
    """A downloadable checkpoint."""

    filename: str  # name in the cache folder, e.g. "resnet50-11ad3fa6.pth"
    url: str
    setting: str  # env variable that selects it, e.g. "MEDIA_SEARCH_IMAGE_WEIGHTS"
    sha256: str | None = None  # full hex digest or a hex prefix (torchvision: 8 digits)
    size: int | None = None  # exact size in bytes when known
    weights_id: str = ""  # id stamped into collections, e.g. "IMAGENET1K_V2"


@dataclass(frozen=True)
class Model:
    """One embedding model, described once: everything indexing and querying must agree on."""

    name: str
    weights: WeightsFile
    preprocess: str
    dim: int = 2048
    metric: str = "COSINE"
    input_size: int = 0  # pictures: side of the square input
    sample_rate: int = 0  # sound: Hz
    #: What it embeds into one space: ``("image",)``, ``("image", "text")``, ``("audio",)``.
    embeds: tuple[str, ...] = ("image",)
    #: Which code builds it: ``torchvision`` (ResNet50), ``panns`` (Cnn14), ``siglip`` (``embed.siglip``).
    loader: str = "torchvision"
    #: Pinned upstream revision (a Hugging Face commit) of ``weights`` and ``files``.
    revision: str = ""
    #: More files of the same checkpoint folder (config, tokenizer), downloaded beside ``weights``.
    files: tuple[WeightsFile, ...] = ()
    #: The pip extra that brings its library (``multimodal``: transformers), "" when always installed.
    extra: str = ""
    #: Architecture as JSON (``transformers`` config kwargs): what ``random`` weights are built from.
    config: str = ""
    #: Text tower: tokens per text (padded to this length, as the model was trained).
    text_length: int = 0

    def spec(self, weights_id: str, preprocess: str | None = None) -> ModelSpec:
        """The identity stamped into a collection for these weights."""
        return ModelSpec(self.name, weights_id, self.dim, self.metric, preprocess or self.preprocess)


# torchvision/models/resnet.py, ResNet50_Weights.IMAGENET1K_V2 (the DEFAULT); torch.hub
# checks the 8 hex digits in the file name against the start of the file's sha256.
RESNET50_IMAGENET = WeightsFile(
    filename="resnet50-11ad3fa6.pth",
    url="https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    setting="MEDIA_SEARCH_IMAGE_WEIGHTS",
    sha256="11ad3fa6",
    weights_id="IMAGENET1K_V2",
)

# PANNs Cnn14, Zenodo record 3987831 (the URL panns_inference uses). Zenodo publishes
# md5 541141fa2ee191a88f24a3219fff024e; the sha256 and size below are pinned
# identically by several independent projects that also record that md5.
CNN14_WEIGHTS = WeightsFile(
    filename="Cnn14_mAP=0.431.pth",
    url="https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1",
    setting="MEDIA_SEARCH_AUDIO_WEIGHTS",
    sha256="0dc499e40e9761ef5ea061ffc77697697f277f6a960894903df3ada000e34b31",
    size=327_428_481,
    weights_id="Cnn14_mAP=0.431",
)

#: ResNet50, classifier removed: the whole picture squashed to 224x224, ImageNet statistics.
RESNET50 = Model("resnet50", RESNET50_IMAGENET, "v1:squash224-bilinear-imagenet", input_size=224)
#: PANNs Cnn14 at 32 kHz (the rate it was trained on); its preprocessing id names the window
#: and hop (``embed.audio.preprocess_id``), so it is filled in there.
CNN14 = Model("panns-cnn14", CNN14_WEIGHTS, "", sample_rate=32000, embeds=("audio",), loader="panns")


# google/siglip-base-patch16-224 through transformers, pinned to one commit of the model
# repository. The sha256 and size of model.safetensors are the Hugging Face LFS metadata of
# that commit as recorded by several independent public projects; they were NOT recomputed
# here (the build machine cannot reach huggingface.co). The small files (config, tokenizer)
# are pinned by the commit in their URL only.
_SIGLIP_BASE_REV = "7fd15f0689c79d79e38b1c2e2e2370a7bf2761ed"
_SIGLIP_BASE_URL = f"https://huggingface.co/google/siglip-base-patch16-224/resolve/{_SIGLIP_BASE_REV}/"


def _hf_file(base: str, name: str, **kw: object) -> WeightsFile:
    return WeightsFile(filename=name, url=base + name, setting="MEDIA_SEARCH_IMAGE_WEIGHTS", **kw)  # type: ignore[arg-type]


#: SigLIP base, patch 16, 224 px: image and text in one 768-d space (sigmoid loss). Its processor
#: squashes the whole picture to 224x224 (no crop, as ``decode.image.prepare`` does) and scales
#: pixels to [-1, 1]; texts are lower-cased SentencePiece tokens padded to 64.
SIGLIP_BASE = Model(
    "siglip-base-patch16-224",
    _hf_file(
        _SIGLIP_BASE_URL,
        "model.safetensors",
        sha256="2c63cb7d1f2e95ba501893cbb8faeb4ea9a3af295498d35097126228659c2af8",
        size=812_672_320,
        weights_id=f"google/siglip-base-patch16-224@{_SIGLIP_BASE_REV[:12]}",
    ),
    "v1:squash224-bilinear-siglip-pm1",
    dim=768,
    input_size=224,
    embeds=("image", "text"),
    loader="siglip",
    revision=_SIGLIP_BASE_REV,
    files=tuple(
        _hf_file(_SIGLIP_BASE_URL, n)
        for n in ("config.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json")
    ),
    extra="multimodal",
    config="{}",  # transformers' SiglipConfig() defaults are this model's architecture
    text_length=64,
)
