"""The model registry: every embedding model media_search can use, by name.

Each model is one ``embed.models.Model`` value (name, weights file with its
pinned revision and checksum, preprocessing id, dimension, what it embeds);
adding a model is one ``register`` call (or one entry in ``MODELS``) --
provided its ``loader`` is one ``Embedders`` knows (``torchvision``,
``siglip``, ``panns``).

The image model is chosen by ``MEDIA_SEARCH_IMAGE_MODEL`` (``Settings.image_model``,
``--image-model``; default ``resnet50``). Its identity (``ModelSpec``) is
stamped into the collections it fills. The default model keeps the plain
collection names (``media_search_images``, ...); any other model gets its own
set, its slug inserted in the prefix (``media_search_siglip_base_patch16_224_images``,
with its own ``files`` manifest), so one library holds both and switching back
loses nothing (``collection_prefix``).

Importing this module imports no torch and no transformers.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from ..errors import ConfigError, NoTextTowerError
from .models import CNN14, RESNET50, SIGLIP_BASE, Model

__all__ = [
    "MODELS",
    "DEFAULT_IMAGE_MODEL",
    "register",
    "unregister",
    "get",
    "image_model",
    "image_models",
    "text_models",
    "slug",
    "collection_prefix",
    "installed",
    "require",
    "require_text",
    "describe",
    "EXTRA_LIBRARY",
]

#: Every model, by name.
MODELS: dict[str, Model] = {m.name: m for m in (RESNET50, SIGLIP_BASE, CNN14)}
#: The image model when none is chosen: the one the product's card names.
DEFAULT_IMAGE_MODEL = RESNET50.name
#: The module each pip extra brings (checked without importing it).
EXTRA_LIBRARY: dict[str, str] = {"multimodal": "transformers"}


def register(model: Model) -> Model:
    """Add (or replace) ``model`` in the registry; returns it."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", model.name):
        raise ConfigError(f"A model name may hold letters, digits, '.', '_' and '-' only, not {model.name!r}.")
    MODELS[model.name] = model
    return model


def unregister(name: str) -> None:
    """Remove a model added with ``register`` (the built-in ones stay)."""
    if name not in (RESNET50.name, SIGLIP_BASE.name, CNN14.name):
        MODELS.pop(name, None)


def get(name: str) -> Model:
    """The model called ``name``, or a ConfigError naming the known ones."""
    key = name.strip()
    if key in MODELS:
        return MODELS[key]
    lowered = {n.lower(): m for n, m in MODELS.items()}
    if key.lower() in lowered:
        return lowered[key.lower()]
    raise ConfigError(
        f"There is no model called {name!r}: choose one of {', '.join(MODELS)} (`media-search models` lists them)."
    )


def image_model(name: str) -> Model:
    """The image model called ``name`` (it must embed pictures)."""
    model = get(name)
    if "image" not in model.embeds:
        raise ConfigError(
            f"{model.name} embeds {', '.join(model.embeds)}, not images: set MEDIA_SEARCH_IMAGE_MODEL "
            f"(--image-model) to one of {', '.join(image_models())}."
        )
    return model


def image_models() -> list[str]:
    return [n for n, m in MODELS.items() if "image" in m.embeds]


def text_models() -> list[str]:
    return [n for n, m in MODELS.items() if "text" in m.embeds]


def slug(name: str) -> str:
    """``siglip-base-patch16-224`` -> ``siglip_base_patch16_224`` (fit for a collection name)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def collection_prefix(prefix: str, model_name: str) -> str:
    """The collection prefix of a library indexed with image model ``model_name``.

    The default model keeps ``prefix`` itself (today's collection names); any
    other inserts its slug: ``media_search_`` -> ``media_search_siglip_base_patch16_224_``.
    """
    name = get(model_name).name
    return prefix if name == DEFAULT_IMAGE_MODEL else f"{prefix}{slug(name)}_"


def installed(model: Model) -> bool:
    """Whether the library ``model`` needs is installed (checked without importing it)."""
    module = EXTRA_LIBRARY.get(model.extra)
    return module is None or importlib.util.find_spec(module) is not None


def require(model: Model) -> None:
    """A ConfigError naming the install command when ``model``'s extra is missing."""
    if not installed(model):
        raise ConfigError(
            f"The model {model.name} needs the {EXTRA_LIBRARY[model.extra]} package: "
            f"pip install -e '.[{model.extra}]' (or pip install 'media_search[{model.extra}]')."
        )


def require_text(model: Model) -> None:
    """``NoTextTowerError`` (one sentence naming the models that have one) when ``model`` embeds no text."""
    if "text" not in model.embeds:
        names = text_models()
        raise NoTextTowerError(
            f"The image model {model.name} has no text tower, so it cannot search by text: index the "
            f"library with {' or '.join(names) or 'a model that embeds text'} "
            f"(MEDIA_SEARCH_IMAGE_MODEL or --image-model) and search with the same model."
        )


def describe(model: Model) -> dict[str, Any]:
    """One row of ``media-search models --json``."""
    return {
        "name": model.name,
        "embeds": list(model.embeds),
        "dim": model.dim,
        "weights": model.weights.url,
        "revision": model.revision or None,
        "sha256": model.weights.sha256,
        "preprocess": model.preprocess or None,
        "extra": model.extra or None,
        "installed": installed(model),
        "default": model.name in (DEFAULT_IMAGE_MODEL, CNN14.name),
    }
