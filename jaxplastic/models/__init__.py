"""Model registry: one declared `ModelSpec` per architecture, and the config -> module factory.

The experiment driver knows models only through their spec: how to build one from `config.model`, which keys of
`config.model` configure initialisation rather than the module (`pretrained`), how to load pretrained weights,
which parameters stay fixed in every stage, and the surgery rules the module class declares. `build_model(config)`
passes every other key as a dataclass field, so a misspelt key fails loudly (TypeError) instead of being ignored.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from jaxplastic.models.grnn import GRNN
from jaxplastic.models.resnet import ResNet18
from jaxplastic.models.wav2vec2 import Wav2Vec2Classifier


def _no_frozen(module: nn.Module) -> tuple[str, ...]:
  del module
  return ()


def _load_wav2vec2(checkpoint: str, module_fields: Mapping[str, Any], variables: Mapping) -> dict:
  from jaxplastic import hf_checkpoint  # reads safetensors; only needed when a checkpoint is named
  return hf_checkpoint.init_from_pretrained(checkpoint, module_fields, variables)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """What the experiment driver needs to know about one architecture.

  Attributes:
    module: the linen class; its fields are the keys of `config.model` other than `name` and `init_fields`.
    init_fields: keys of `config.model` that configure initialisation, not the module (exports leave them out).
    pretrained_field: the init field naming a checkpoint (None: the model only trains from scratch). Its value
      None means from scratch, '' means the config needs a checkpoint and the user has not named one.
    load_pretrained: (checkpoint, module fields, fresh variables) -> variables holding the checkpoint's weights.
    pretrained_hint: how to get a checkpoint, for the error when one is required and missing.
    frozen_patterns: module -> regexes ('/'-joined `params` paths) of tensors fixed in every stage, kept out of the
      optimizer (e.g. wav2vec2's feature encoder under `freeze_feature_encoder`).
    output_axes: surgery rules (regex, trailing output axes) for kernels with several output axes
      (the class's `SURGERY_OUTPUT_AXES`).
    recurrent: the recurrent kernels the class declares for surgery (`SURGERY_RECURRENT`): grown units of these
      must not feed old ones when dropin keeps the old computation unchanged.
    xla_cpu_options: XLA compiler options for the model's train and eval steps on CPU (ignored elsewhere), each
      measured in benchmarks/README.md.
  """

  module: type[nn.Module]
  init_fields: tuple[str, ...] = ()
  pretrained_field: str | None = None
  load_pretrained: Callable[[str, Mapping[str, Any], Mapping], dict] | None = None
  pretrained_hint: str = ""
  frozen_patterns: Callable[[nn.Module], tuple[str, ...]] = _no_frozen
  output_axes: tuple = ()
  recurrent: tuple = ()
  xla_cpu_options: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def module_fields(self, fields: Mapping[str, Any]) -> dict:
    """`fields` without the initialisation-only keys (what a module takes and an export records)."""
    return {k: v for k, v in fields.items() if k not in self.init_fields}

  def checkpoint(self, fields: Mapping[str, Any]) -> str | None:
    """The pretrained checkpoint `fields` name, or None (from scratch).

    Raises:
      ValueError: the config requires a checkpoint ('') and none was given.
    """
    if self.pretrained_field is None:
      return None
    value = fields.get(self.pretrained_field)
    if value is not None and not value:
      raise ValueError(f"config.model.{self.pretrained_field} is empty, but this config starts from a pretrained "
                       f"checkpoint. {self.pretrained_hint}")
    return value or None


# NAME -> spec. A new architecture registers here and nowhere else.
# XLA:CPU (jax 0.10) sends convolutions to YNNPACK by default; its weight-gradient convolutions are 2-4x slower than
# XLA's own kernels at ResNet-18's shapes. YNNPACK for dots and reductions only (its default list without
# INDIVIDUAL_CONVOLUTION) makes a ResNet-18 train step 1.44x faster on 2 idle cores; the GRNN and Wav2Vec 2.0 steps
# were ~9 % slower with it, so they keep XLA's defaults (benchmarks/README.md).
CONV_XLA_CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}

SPECS: dict[str, ModelSpec] = {
    "resnet18": ModelSpec(ResNet18, xla_cpu_options=CONV_XLA_CPU_OPTIONS),
    "grnn": ModelSpec(GRNN, recurrent=tuple(getattr(GRNN, "SURGERY_RECURRENT", ()))),
    "wav2vec2": ModelSpec(
        Wav2Vec2Classifier,
        init_fields=("pretrained",),
        pretrained_field="pretrained",
        load_pretrained=_load_wav2vec2,
        pretrained_hint=("Download one (e.g. facebook/wav2vec2-base: config.json + model.safetensors) on a machine "
                         "with internet access and pass --config.model.pretrained=/path/to/wav2vec2-base (or a hub "
                         "id when this machine is online); see docs/wav2vec2.md."),
        frozen_patterns=lambda module: module.frozen_param_patterns(),
        output_axes=Wav2Vec2Classifier.SURGERY_OUTPUT_AXES),
}

# NAME -> module class (kept for callers that only need the class).
MODELS: dict[str, type[nn.Module]] = {name: spec.module for name, spec in SPECS.items()}


def spec_of(model_config: Mapping[str, Any] | str) -> ModelSpec:
  """The spec of the model `model_config['name']` (or of the name itself).

  Raises:
    KeyError: if the name is missing or unknown.
  """
  if isinstance(model_config, str):
    name = model_config
  else:
    if "name" not in model_config:
      raise KeyError(f"model config has no 'name' (known models: {sorted(SPECS)})")
    name = model_config["name"]
  if name not in SPECS:
    raise KeyError(f"unknown model name {name!r}; known models: {sorted(SPECS)}")
  return SPECS[name]


def module_fields(model_config: Mapping[str, Any]) -> dict:
  """The model fields without its initialisation-only keys. Without a "name", every registered model's
  initialisation-only keys are left out (no module field may reuse one)."""
  fields = dict(model_config.items())
  if "name" in fields:
    return spec_of(fields).module_fields(fields)
  reserved = {k for spec in SPECS.values() for k in spec.init_fields}
  return {k: v for k, v in fields.items() if k not in reserved}


def _to_field(key: str, value: Any) -> Any:
  """Config values -> hashable dataclass values (lists become tuples, dtype names dtypes)."""
  if isinstance(value, (list, tuple)):
    return tuple(_to_field(key, v) for v in value)
  if key == "dtype" and isinstance(value, str):
    return jnp.dtype(value)
  return value


def build_model(model_config: Mapping[str, Any]) -> nn.Module:
  """Builds the model named by `model_config.name` with the remaining keys (less init-only ones) as fields.

  Args:
    model_config: a mapping (dict or ml_collections.ConfigDict) with a "name" key.

  Returns:
    An unbound Flax module.

  Raises:
    KeyError: if the name is missing or unknown.
    TypeError: if a key is not a field of the model.
  """
  spec = spec_of(model_config)
  fields = spec.module_fields(dict(model_config.items()))
  fields.pop("name")
  return spec.module(**{k: _to_field(k, v) for k, v in fields.items()})


__all__ = ["MODELS", "SPECS", "GRNN", "ModelSpec", "ResNet18", "Wav2Vec2Classifier", "build_model",
           "module_fields", "spec_of"]
