"""The NIN model family: ``build_model(name, **overrides)``, ``list_models()``."""

from nin.models import ablations, family, fast  # noqa: F401  (registers the builders)
from nin.models.mlpconv import MLPConv
from nin.models.nin import NIN, BlockSpec, feature_size
from nin.models.registry import build_model, describe_model, list_models

__all__ = ["NIN", "BlockSpec", "MLPConv", "build_model", "describe_model", "feature_size", "list_models"]
