"""Settings, read from the environment once per call and overridable in code.

| variable                      | meaning                                              |
|-------------------------------|------------------------------------------------------|
| MEDIA_SEARCH_MILVUS_URI       | ``*.db`` path: Milvus Lite; ``http(s)://``: a server  |
| MEDIA_SEARCH_MILVUS_TOKEN     | token for servers that need one                      |
| MEDIA_SEARCH_PREFIX           | collection name prefix (default ``media_search_``)   |
| MEDIA_SEARCH_DEVICE           | ``auto`` / ``cpu`` / ``cuda``                        |
| MEDIA_SEARCH_ENGINE           | ``auto`` / ``torch`` / ``onnx`` / ``int8``           |
| MEDIA_SEARCH_IMAGE_MODEL      | image model (``embed.registry``; default ``resnet50``) |
| MEDIA_SEARCH_IMAGE_WEIGHTS    | ``pretrained`` / a ``.pth`` path / ``random``        |
| MEDIA_SEARCH_AUDIO_WEIGHTS    | ``pretrained`` / a ``.pth`` path / ``random``        |
| MEDIA_SEARCH_HOME             | data folder (default ``$XDG_DATA_HOME/media_search``) |
| MEDIA_SEARCH_STREAM_SECONDS   | sounds longer than this are decoded and embedded in  |
|                               | blocks, in flat memory (default 300)                 |
| MEDIA_SEARCH_MAX_QUERY_SECONDS| longest query file accepted (default 14400: 4 h)     |
| MEDIA_SEARCH_VERBOSE          | 1: show the decoders' own messages raw (CLI)         |
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["Settings", "data_home", "ENGINES", "check_engine", "engine_from_env", "is_lite_uri"]

_DEVICES = ("auto", "cpu", "cuda")
#: Inference engines (``embed.engines``).
ENGINES = ("auto", "torch", "onnx", "int8")


def check_engine(value: str) -> str:
    """``value`` if it names an engine, else a ConfigError."""
    if value not in ENGINES:
        raise ConfigError(f"MEDIA_SEARCH_ENGINE is {value!r}; use one of {', '.join(ENGINES)}.")
    return value


def engine_from_env() -> str:
    """``MEDIA_SEARCH_ENGINE`` (default ``auto``, case-insensitive), checked."""
    return check_engine(os.environ.get("MEDIA_SEARCH_ENGINE", "auto").strip().lower() or "auto")


def _seconds(env: os._Environ[str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name} is {text!r}; give a number of seconds greater than 0.")
    return value


def data_home() -> Path:
    """The folder for media_search's own data (index file, uploads)."""
    if os.environ.get("MEDIA_SEARCH_HOME"):
        return Path(os.environ["MEDIA_SEARCH_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "media_search"


@dataclass(frozen=True)
class Settings:
    uri: str
    token: str | None = None
    prefix: str = "media_search_"
    device: str = "auto"
    engine: str = "auto"
    image_model: str = "resnet50"
    image_weights: str = "pretrained"
    audio_weights: str = "pretrained"
    video_interval: float = 1.0
    video_max_frames: int = 600
    decode_timeout: float = 120.0
    batch_size: int = 16
    stream_seconds: float = 300.0
    max_query_seconds: float = 14400.0

    def __post_init__(self) -> None:
        if self.is_lite and self.uri.startswith("~"):  # Library(uri="~/photos.db"), like the CLI
            object.__setattr__(self, "uri", os.path.expanduser(self.uri))

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "uri": env.get("MEDIA_SEARCH_MILVUS_URI") or str(data_home() / "index.db"),
            "token": env.get("MEDIA_SEARCH_MILVUS_TOKEN") or None,
            "prefix": env.get("MEDIA_SEARCH_PREFIX", "media_search_"),
            "device": env.get("MEDIA_SEARCH_DEVICE", "auto"),
            "engine": engine_from_env(),
            "image_model": env.get("MEDIA_SEARCH_IMAGE_MODEL", "").strip() or "resnet50",
            "image_weights": env.get("MEDIA_SEARCH_IMAGE_WEIGHTS", "pretrained"),
            "audio_weights": env.get("MEDIA_SEARCH_AUDIO_WEIGHTS", "pretrained"),
            "stream_seconds": _seconds(env, "MEDIA_SEARCH_STREAM_SECONDS", 300.0),
            "max_query_seconds": _seconds(env, "MEDIA_SEARCH_MAX_QUERY_SECONDS", 14400.0),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def validate(self) -> None:
        if self.device not in _DEVICES:
            raise ConfigError(
                f"MEDIA_SEARCH_DEVICE is {self.device!r}; use one of {', '.join(_DEVICES)}."
            )
        check_engine(self.engine)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.prefix):
            raise ConfigError(
                f"The collection prefix {self.prefix!r} may hold only letters, digits and '_'."
            )
        from .embed.registry import image_model

        image_model(self.image_model)
        if self.is_lite and not self.uri.endswith(".db"):
            raise ConfigError(
                f"MEDIA_SEARCH_MILVUS_URI is {self.uri!r}: give a path ending in .db for "
                "Milvus Lite, or http://host:19530 for a Milvus server."
            )

    @property
    def is_lite(self) -> bool:
        return is_lite_uri(self.uri)

    @property
    def store_prefix(self) -> str:
        """The prefix of this image model's collections (``embed.registry.collection_prefix``)."""
        from .embed.registry import collection_prefix

        return collection_prefix(self.prefix, self.image_model)


def is_lite_uri(uri: str) -> bool:
    """A Milvus Lite file (any path) rather than a server (``http://``, ``https://``, ``tcp://``, ``grpc://``, ``unix://``)."""
    return not re.match(r"^(https?|tcp|grpc|unix)://", uri)
