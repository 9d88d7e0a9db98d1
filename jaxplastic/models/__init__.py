"""Model registry and the config -> module factory.

`build_model(config)` looks up `config.name` in MODELS and passes every other key as a
dataclass field, so a misspelt key fails loudly (TypeError) instead of being ignored.
"""
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxplastic.models.grnn import GRNN
from jaxplastic.models.resnet import ResNet18
from jaxplastic.models.wav2vec2 import Wav2Vec2Classifier

# NAME -> module class. Other architectures (e.g. "wav2vec2") register here.
MODELS: dict[str, type[nn.Module]] = {
    "resnet18": ResNet18,
    "grnn": GRNN,
    "wav2vec2": Wav2Vec2Classifier,
}


def _to_field(key: str, value: Any) -> Any:
  """Config values -> hashable dataclass values (lists become tuples, dtype names dtypes)."""
  if isinstance(value, (list, tuple)):
    return tuple(_to_field(key, v) for v in value)
  if key == "dtype" and isinstance(value, str):
    return jnp.dtype(value)
  return value


def build_model(model_config: Mapping[str, Any]) -> nn.Module:
  """Builds the model named by `model_config.name` with the remaining keys as fields.

  Args:
    model_config: a mapping (dict or ml_collections.ConfigDict) with a "name" key.

  Returns:
    An unbound Flax module.

  Raises:
    KeyError: if the name is missing or unknown.
    TypeError: if a key is not a field of the model.
  """
  fields = dict(model_config.items())
  if "name" not in fields:
    raise KeyError(f"model config has no 'name' (known models: {sorted(MODELS)})")
  name = fields.pop("name")
  if name not in MODELS:
    raise KeyError(f"unknown model name {name!r}; known models: {sorted(MODELS)}")
  return MODELS[name](**{k: _to_field(k, v) for k, v in fields.items()})


__all__ = ["MODELS", "GRNN", "ResNet18", "Wav2Vec2Classifier", "build_model"]
