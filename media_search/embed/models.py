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

__all__ = ["WeightsFile", "Model", "RESNET50", "CNN14", "RESNET50_IMAGENET", "CNN14_WEIGHTS"]


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
CNN14 = Model("panns-cnn14", CNN14_WEIGHTS, "", sample_rate=32000)
