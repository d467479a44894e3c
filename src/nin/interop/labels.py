"""Class names of the published NIN weights, in their output order."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from nin.data.sources import CIFAR10_CLASSES  # batches.meta order, which the Caffe NIN-CIFAR10 outputs follow
from nin.errors import ConfigError


def imagenet_classes() -> list[str]:
    """The 1000 ILSVRC-2012 class names (``synset_words.txt`` order), e.g. index 0 = "tench, Tinca tinca"."""
    text = resources.files("nin.interop.assets").joinpath("imagenet_labels.json").read_text(encoding="utf-8")
    return list(json.loads(text))


def default_classes(model_name: str) -> list[str]:
    return imagenet_classes() if model_name == "nin_imagenet" else list(CIFAR10_CLASSES)


def read_classes(path: str | Path, expected: int) -> list[str]:
    """Class names from a file: a JSON list, a JSON object ``{"0": name, ...}``, or one name per line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"labels file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        try:
            data = [data[str(i)] for i in range(len(data))]
        except KeyError:
            raise ConfigError(f"labels file {path}: keys must be 0..N-1") from None
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else type(data).__name__
        raise ConfigError(f"labels file {path} holds {got} names; the model has {expected} classes")
    return [str(x) for x in data]
