"""Wav2Vec 2.0 in Flax linen, numerically matching transformers' `Wav2Vec2Model`, plus a spoof head.

Both published layouts are covered:
  * "base"   (wav2vec2-base, `do_stable_layer_norm=False`): post-LN transformer, LayerNorm after
    the positional convolution; usually with `feat_extract_norm="group"` (GroupNorm on conv0 only).
  * "stable" (large-lv60, XLS-R, `do_stable_layer_norm=True`): pre-LN transformer with a final
    encoder LayerNorm; usually with `feat_extract_norm="layer"` (LayerNorm after every conv).

Every width that parameter surgery may change is a per-layer field (`num_heads`, `head_dim`,
`ffn_dims`, `conv_dims`), and attention projections are `DenseGeneral` kernels shaped
[hidden, heads, head_dim] (q/k/v) and [heads, head_dim, hidden] (out), so adding heads grows exactly
one axis. Parameter paths are explicit and identical across widths:

  feature_encoder/conv{i}/{kernel,bias}, feature_encoder/norm{i}/{scale,bias}
  feature_projection/{layer_norm,dense}
  encoder/pos_conv/{weight_v,weight_g,bias}, encoder/layer_norm
  encoder/layer{i}/attention/{q,k,v,out}, encoder/layer{i}/ffn/{intermediate,output}
  encoder/layer{i}/{attn_norm,final_norm}
  head/{dense1,dense2}

and, only where the layout fields ask for them: encoder/parallel{i}/... (a second layer, same
structure) and encoder/merge{i} (`parallel_layers`), encoder/proj_in{i} and encoder/proj_out{i}
(`layer_hidden`), masked_spec_embed (`mask_time_prob` > 0).

With `lora_rank` > 0 the projections named in `lora_targets` also hold `lora_a` and `lora_b` (e.g.
encoder/layer{i}/attention/q/lora_a); `merge_lora` folds them back into the kernels.

`from_hf_config` / `to_hf_config` translate between a Hugging Face `config.json` dict and the
module fields.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxplastic.models import spec_augment
# Re-exported: the building blocks live in wav2vec2_layers.
from jaxplastic.models.wav2vec2_layers import (ACTIVATIONS, LORA_TARGETS, Attention,  # noqa: F401
                                               ClassifierHead, Encoder, EncoderLayer,
                                               FeatureEncoder, FeatureProjection, FeedForward,
                                               LoRASpec, PositionalConv, Projection,
                                               Wav2Vec2ConfigError)

Array = jax.Array

# transformers' Wav2Vec2Config defaults (= facebook/wav2vec2-base) for the fields we use.
HF_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout": 0.1,
    "activation_dropout": 0.1,
    "attention_dropout": 0.1,
    "feat_proj_dropout": 0.0,
    "layerdrop": 0.1,
    "layer_norm_eps": 1e-5,
    "feat_extract_norm": "group",
    "feat_extract_activation": "gelu",
    "conv_dim": (512, 512, 512, 512, 512, 512, 512),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_bias": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "do_stable_layer_norm": False,
    "add_adapter": False,
    "adapter_attn_dim": None,
    "use_weighted_layer_sum": False,
    "apply_spec_augment": True,
    "mask_time_prob": 0.05,
    "mask_time_length": 10,
    "mask_time_min_masks": 2,
}

# HF Wav2Vec2FeatureExtractor(do_normalize=True) adds this to the variance.
_NORMALIZE_EPS = 1e-7


_TUPLE_FIELDS = ("num_heads", "head_dim", "ffn_dims", "conv_dims", "conv_kernels", "conv_strides",
                 "layer_hidden", "parallel_layers")


class Wav2Vec2Classifier(nn.Module):
  """Wav2Vec 2.0 backbone + mean pooling + two-layer head; `__call__(audio, train=...)` -> logits.

  Attributes mirror HF's Wav2Vec2Config, but every transformer width is a per-layer tuple so that a
  grown model is just another set of field values. Dropout, LayerDrop and SpecAugment masking
  need the "dropout" rng when `train=True`.

  Two layouts of the authors' grow the encoder by adding tensors rather than widening them:
  `parallel_layers` (a parallel layer beside layer i, merged by `encoder/merge{i}`) and
  `layer_hidden` (layer i at its own width between `encoder/proj_in{i}` and `encoder/proj_out{i}`).
  Growing `layer_hidden[i]` together with `num_heads[i]` and `ffn_dims[i]` widens layer i's own
  tensors along their hidden, head and FFN axes and adds its two projectors.
  """

  # Trailing output axes per leaf, for jaxplastic.surgery: q/k/v kernels are
  # [hidden, heads, head_dim]; LoRA A is [*in, r] (output r) and B is [r, *features] (input r).
  # The layouts' new tensors (parallel layers, merge and proj_in/proj_out Dense kernels) are
  # covered by these rules and the default (a 2-D kernel's last axis is its output).
  SURGERY_OUTPUT_AXES = ((r".*/attention/(q|k|v)/(kernel|lora_b)", 2), (r".*/lora_b", 1),
                         (r".*/lora_a", 1))

  num_classes: int = 2
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: tuple[int, ...] = (12,) * 12
  head_dim: tuple[int, ...] | None = None  # None: hidden_size // num_heads[i] per layer
  ffn_dims: tuple[int, ...] = (3072,) * 12
  conv_dims: tuple[int, ...] = (512,) * 7
  conv_kernels: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
  conv_strides: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
  conv_bias: bool = False
  feat_extract_norm: str = "group"  # "group": GroupNorm on conv0 only; "layer": LN after each
  layout: str = "base"  # "base": post-LN; "stable": pre-LN + final encoder LayerNorm
  num_conv_pos_embeddings: int = 128
  num_conv_pos_embedding_groups: int = 16
  layer_norm_eps: float = 1e-5
  hidden_act: str = "gelu"
  feat_extract_activation: str = "gelu"
  hidden_dropout: float = 0.1
  attention_dropout: float = 0.1
  activation_dropout: float = 0.1
  feat_proj_dropout: float = 0.0
  layerdrop: float = 0.0
  head_hidden: int = 256
  head_dropout: float = 0.1
  do_normalize: bool = False  # per-utterance zero-mean unit-variance input (HF feature extractor)
  freeze_feature_encoder: bool = False  # stop_gradient on conv features
  remat: bool = False  # rematerialise each encoder layer in the backward pass
  dtype: Any = jnp.float32  # compute dtype; params stay float32
  # LoRA on the encoder projections named in `lora_targets` (see `Projection`); rank 0 = none.
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_targets: tuple[str, ...] = ("q", "v")
  lora_dropout: float = 0.0
  # Per-layer encoder width (empty: hidden_size everywhere); a layer of another width sits between
  # Dense projectors hidden -> width (`proj_in{i}`) and width -> hidden (`proj_out{i}`).
  layer_hidden: tuple[int, ...] = ()
  # Per-layer 0/1 (empty: all 0); 1 adds a parallel encoder layer of layer i's widths reading the
  # same input, its output concatenated after layer i's and projected back by Dense `merge{i}`.
  parallel_layers: tuple[int, ...] = ()
  # SpecAugment time masking in training (transformers' Wav2Vec2Model): probability, span length
  # (frames) and fewest spans; mask_time_prob > 0 adds the learned `masked_spec_embed` [hidden].
  mask_time_prob: float = 0.0
  mask_time_length: int = 10
  mask_time_min_masks: int = 2

  def __post_init__(self):
    # Configs often carry lists (JSON, ConfigDict); modules need hashable tuples.
    for name in _TUPLE_FIELDS:
      value = getattr(self, name)
      if value is not None and not isinstance(value, tuple):
        object.__setattr__(self, name, tuple(int(v) for v in value))
    if isinstance(self.dtype, str):
      object.__setattr__(self, "dtype", jnp.dtype(self.dtype))
    if isinstance(self.lora_targets, str):
      object.__setattr__(self, "lora_targets", (self.lora_targets,))
    elif not isinstance(self.lora_targets, tuple):
      object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
    super().__post_init__()

  def head_dims(self) -> tuple[int, ...]:
    """Per-layer head width: `head_dim`, or layer_widths()[i] // num_heads[i] when unset."""
    if self.head_dim is not None:
      return self.head_dim
    return tuple(w // h for w, h in zip(self.layer_widths(), self.num_heads))

  def layer_widths(self) -> tuple[int, ...]:
    """Per-layer encoder width: `layer_hidden`, or hidden_size everywhere when empty."""
    return self.layer_hidden or (self.hidden_size,) * self.num_layers

  def frozen_param_patterns(self) -> tuple[str, ...]:
    """Parameters (regex over '/'-joined paths) that must stay fixed in every training stage.

    The conv feature encoder when `freeze_feature_encoder` is set, so that a runner can keep it out
    of the optimizer (no weight decay, no moments), as transformers' `freeze_feature_encoder()`.
    """
    return (r"feature_encoder/.*",) if self.freeze_feature_encoder else ()

  def lora_spec(self) -> LoRASpec:
    return LoRASpec(self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_targets)

  def _validate(self) -> None:
    for name in ("num_heads", "ffn_dims"):
      if len(getattr(self, name)) != self.num_layers:
        raise Wav2Vec2ConfigError(
            f"{name} has {len(getattr(self, name))} entries but num_layers={self.num_layers}")
    for name in ("layer_hidden", "parallel_layers"):
      value = getattr(self, name)
      if value and len(value) != self.num_layers:
        raise Wav2Vec2ConfigError(f"{name} has {len(value)} entries but num_layers="
                                  f"{self.num_layers} (or leave it empty)")
    if any(w < 1 for w in self.layer_hidden):
      raise Wav2Vec2ConfigError(f"layer_hidden entries must be >= 1, got {self.layer_hidden}")
    if any(p not in (0, 1) for p in self.parallel_layers):
      raise Wav2Vec2ConfigError(f"parallel_layers entries must be 0 or 1, got "
                                f"{self.parallel_layers}")
    if not 0.0 <= self.mask_time_prob <= 1.0 or self.mask_time_length < 1:
      raise Wav2Vec2ConfigError(f"mask_time_prob must be in [0, 1] and mask_time_length >= 1, "
                                f"got {self.mask_time_prob}, {self.mask_time_length}")
    if self.head_dim is None:
      bad = [(w, h) for w, h in zip(self.layer_widths(), self.num_heads) if w % h]
      if bad:
        raise Wav2Vec2ConfigError(
            f"layer width not divisible by num_heads: (width, heads) {bad}; "
            "set head_dim explicitly")
    elif len(self.head_dim) != self.num_layers:
      raise Wav2Vec2ConfigError(
          f"head_dim has {len(self.head_dim)} entries but num_layers={self.num_layers}")
    if not len(self.conv_dims) == len(self.conv_kernels) == len(self.conv_strides):
      raise Wav2Vec2ConfigError(
          f"conv_dims/conv_kernels/conv_strides lengths differ: {len(self.conv_dims)}, "
          f"{len(self.conv_kernels)}, {len(self.conv_strides)}")
    if self.layout not in ("base", "stable"):
      raise Wav2Vec2ConfigError(f"layout must be 'base' or 'stable', got {self.layout!r}")
    if self.feat_extract_norm not in ("group", "layer"):
      raise Wav2Vec2ConfigError(
          f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}")
    for act in (self.hidden_act, self.feat_extract_activation):
      if act not in ACTIVATIONS:
        raise Wav2Vec2ConfigError(f"unsupported activation {act!r}; known: {sorted(ACTIVATIONS)}")
    if self.lora_rank < 0:
      raise Wav2Vec2ConfigError(f"lora_rank must be >= 0, got {self.lora_rank}")
    unknown = sorted(set(self.lora_targets) - set(LORA_TARGETS))
    if unknown or (self.lora_rank > 0 and not self.lora_targets):
      raise Wav2Vec2ConfigError(f"lora_targets {self.lora_targets!r}: each must be one of "
                                f"{LORA_TARGETS}, and at least one is needed when lora_rank > 0")

  def setup(self):
    self._validate()
    self.feature_encoder = FeatureEncoder(self.conv_dims, self.conv_kernels, self.conv_strides,
                                          self.conv_bias, self.feat_extract_norm,
                                          self.feat_extract_activation, self.dtype)
    self.feature_projection = FeatureProjection(self.hidden_size, self.layer_norm_eps,
                                                self.feat_proj_dropout, self.dtype)
    self.encoder = Encoder(self.hidden_size, self.num_layers, self.num_heads, self.head_dims(),
                           self.ffn_dims, self.layout, self.hidden_act,
                           self.feat_extract_activation, self.layer_norm_eps,
                           self.num_conv_pos_embeddings, self.num_conv_pos_embedding_groups,
                           self.attention_dropout, self.activation_dropout, self.hidden_dropout,
                           self.layerdrop, self.remat, self.dtype, self.lora_spec(),
                           self.layer_widths(), self.parallel_layers or None)
    self.head = ClassifierHead(self.head_hidden, self.num_classes, self.head_dropout)
    if self.mask_time_prob > 0.0:
      # torch.Tensor(hidden).uniform_(): U[0, 1), as transformers.
      self.masked_spec_embed = self.param("masked_spec_embed", nn.initializers.uniform(1.0),
                                          (self.hidden_size,))

  def mask_time(self, x: Array, train: bool, mask_time_indices: Array | None = None) -> Array:
    """SpecAugment time masking of the projected features x [batch, frames, hidden].

    A given boolean `mask_time_indices` [batch, frames] is applied in any mode (as transformers'
    `mask_time_indices` argument); otherwise spans are drawn with the "dropout" rng in training
    when mask_time_prob > 0, and nothing is masked in evaluation.
    """
    if mask_time_indices is None and not (train and self.mask_time_prob > 0.0):
      return x
    if self.mask_time_prob <= 0.0:
      raise Wav2Vec2ConfigError("mask_time_indices needs the masked_spec_embed parameter, which "
                                "exists only with mask_time_prob > 0")
    if mask_time_indices is None:
      mask = spec_augment.compute_mask_indices(self.make_rng("dropout"), x.shape[:2],
                                               self.mask_time_prob, self.mask_time_length,
                                               self.mask_time_min_masks)
    else:
      mask = jnp.asarray(mask_time_indices, bool)
      if mask.shape != x.shape[:2]:
        raise ValueError(f"mask_time_indices has shape {mask.shape}, expected {x.shape[:2]}")
    return jnp.where(mask[..., None], self.masked_spec_embed.astype(x.dtype), x)

  def encode(self,
             audio: Array,
             *,
             train: bool = False,
             mask_time_indices: Array | None = None) -> dict[str, Any]:
    """Runs the backbone; returns HF-comparable outputs.

    Args:
      audio: [batch, samples] float waveform.
      train: enables dropout / LayerDrop / SpecAugment time masking.
      mask_time_indices: optional boolean [batch, frames] time mask to apply instead of sampling
        one (see `mask_time`).

    Returns:
      dict with "extract_features" [batch, frames, conv_dims[-1]] (LayerNormed conv features, as
      HF), "hidden_states" (num_layers + 1 arrays [batch, frames, hidden]: the encoder input, then
      each layer's output, as HF's `output_hidden_states`) and "last_hidden_state"
      [batch, frames, hidden].
    """
    if audio.ndim != 2:
      raise ValueError(f"audio must be [batch, samples], got shape {audio.shape}")
    audio = audio.astype(jnp.float32)
    if self.do_normalize:
      mean = jnp.mean(audio, axis=-1, keepdims=True)
      var = jnp.var(audio, axis=-1, keepdims=True)
      audio = (audio - mean) / jnp.sqrt(var + _NORMALIZE_EPS)
    features = self.feature_encoder(audio)
    if self.freeze_feature_encoder:
      features = jax.lax.stop_gradient(features)
    x, extract_features = self.feature_projection(features, train)
    x = self.mask_time(x, train, mask_time_indices)
    hidden_states, last = self.encoder(x, train)
    return {
        "extract_features": extract_features,
        "hidden_states": hidden_states,
        "last_hidden_state": last
    }

  def __call__(self,
               audio: Array,
               *,
               train: bool,
               mask_time_indices: Array | None = None) -> Array:
    """audio [batch, samples] -> logits [batch, num_classes] (float32)."""
    last = self.encode(audio, train=train, mask_time_indices=mask_time_indices)["last_hidden_state"]
    pooled = jnp.mean(last.astype(jnp.float32), axis=1)
    return self.head(pooled, train)

  def num_frames(self, num_samples: int) -> int:
    """Frames the feature encoder yields for `num_samples` input samples."""
    n = num_samples
    for kernel, stride in zip(self.conv_kernels, self.conv_strides):
      n = (n - kernel) // stride + 1
    return n


_FIELD_NAMES = frozenset(
    f.name for f in dataclasses.fields(Wav2Vec2Classifier) if f.name not in ("parent", "name"))


def from_hf_config(hf_config: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
  """Translates a Hugging Face Wav2Vec2 `config.json` dict into `Wav2Vec2Classifier` fields.

  Missing keys take transformers' defaults (so `from_hf_config({})` is wav2vec2-base). Per-layer
  widths are written out explicitly. `overrides` replace fields afterwards (e.g. `num_classes`,
  `dtype`, `remat`).

  Raises:
    Wav2Vec2ConfigError: for HF features we do not implement (adapters) or an unknown override.
  """
  c = {**HF_DEFAULTS, **hf_config}
  if c.get("add_adapter"):
    raise Wav2Vec2ConfigError("add_adapter=True is not supported by Wav2Vec2Classifier")
  if c.get("adapter_attn_dim") is not None:
    raise Wav2Vec2ConfigError("adapter_attn_dim (MMS attention adapters) is not supported")
  if c["hidden_size"] % c["num_attention_heads"]:
    raise Wav2Vec2ConfigError(f"hidden_size {c['hidden_size']} not divisible by "
                              f"num_attention_heads {c['num_attention_heads']}")
  n = int(c["num_hidden_layers"])
  fields = {
      "hidden_size": int(c["hidden_size"]),
      "num_layers": n,
      "num_heads": (int(c["num_attention_heads"]),) * n,
      "head_dim": (int(c["hidden_size"]) // int(c["num_attention_heads"]),) * n,
      "ffn_dims": (int(c["intermediate_size"]),) * n,
      "conv_dims": tuple(int(v) for v in c["conv_dim"]),
      "conv_kernels": tuple(int(v) for v in c["conv_kernel"]),
      "conv_strides": tuple(int(v) for v in c["conv_stride"]),
      "conv_bias": bool(c["conv_bias"]),
      "feat_extract_norm": c["feat_extract_norm"],
      "layout": "stable" if c["do_stable_layer_norm"] else "base",
      "num_conv_pos_embeddings": int(c["num_conv_pos_embeddings"]),
      "num_conv_pos_embedding_groups": int(c["num_conv_pos_embedding_groups"]),
      "layer_norm_eps": float(c["layer_norm_eps"]),
      "hidden_act": c["hidden_act"],
      "feat_extract_activation": c["feat_extract_activation"],
      "hidden_dropout": float(c["hidden_dropout"]),
      "attention_dropout": float(c["attention_dropout"]),
      "activation_dropout": float(c["activation_dropout"]),
      "feat_proj_dropout": float(c["feat_proj_dropout"]),
      "layerdrop": float(c["layerdrop"]),
      # SpecAugment time masking as transformers applies it in training (feature masking,
      # mask_feature_prob, is not implemented).
      "mask_time_prob": float(c["mask_time_prob"]) if c["apply_spec_augment"] else 0.0,
      "mask_time_length": int(c["mask_time_length"]),
      "mask_time_min_masks": int(c["mask_time_min_masks"]),
  }
  unknown = set(overrides) - _FIELD_NAMES
  if unknown:
    raise Wav2Vec2ConfigError(
        f"unknown Wav2Vec2Classifier field(s) in overrides: {sorted(unknown)}")
  fields.update(overrides)
  return fields


def to_hf_config(fields: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
  """Translates module fields into a stock HF Wav2Vec2Config dict (`extra` keys copied verbatim).

  Raises:
    Wav2Vec2ConfigError: when per-layer widths are not uniform or heads * head_dim != hidden_size,
      or the model has parallel layers or projected layers, which a stock HF Wav2Vec2 cannot
      express (e.g. a model mid-dropin).
  """
  unknown = set(fields) - _FIELD_NAMES
  if unknown:
    raise Wav2Vec2ConfigError(f"unknown Wav2Vec2Classifier field(s): {sorted(unknown)}")
  m = Wav2Vec2Classifier(**fields)
  if any(m.parallel_layers) or set(m.layer_widths()) != {m.hidden_size}:
    raise Wav2Vec2ConfigError(
        "cannot export to a stock HF Wav2Vec2Config: the model has parallel layers "
        f"(parallel_layers={m.parallel_layers}) or layers of another width "
        f"(layer_hidden={m.layer_hidden})")
  heads, ffn = set(m.num_heads), set(m.ffn_dims)
  head_dims = set(m.head_dims())
  if len(heads) != 1 or len(ffn) != 1 or len(head_dims) != 1:
    raise Wav2Vec2ConfigError(
        "cannot export to a stock HF Wav2Vec2Config: per-layer widths differ "
        f"(num_heads={m.num_heads}, head_dim={m.head_dims()}, ffn_dims={m.ffn_dims})")
  (h,), (d,), (f,) = heads, head_dims, ffn
  if h * d != m.hidden_size:
    raise Wav2Vec2ConfigError(
        f"cannot export: num_heads*head_dim = {h}*{d} != hidden_size {m.hidden_size} "
        "(HF ties them)")
  config = {
      "model_type": "wav2vec2",
      "architectures": ["Wav2Vec2Model"],
      "hidden_size": m.hidden_size,
      "num_hidden_layers": m.num_layers,
      "num_attention_heads": h,
      "intermediate_size": f,
      "hidden_act": m.hidden_act,
      "hidden_dropout": m.hidden_dropout,
      "activation_dropout": m.activation_dropout,
      "attention_dropout": m.attention_dropout,
      "feat_proj_dropout": m.feat_proj_dropout,
      "layerdrop": m.layerdrop,
      "layer_norm_eps": m.layer_norm_eps,
      "feat_extract_norm": m.feat_extract_norm,
      "feat_extract_activation": m.feat_extract_activation,
      "conv_dim": list(m.conv_dims),
      "conv_kernel": list(m.conv_kernels),
      "conv_stride": list(m.conv_strides),
      "conv_bias": m.conv_bias,
      "num_feat_extract_layers": len(m.conv_dims),
      "num_conv_pos_embeddings": m.num_conv_pos_embeddings,
      "num_conv_pos_embedding_groups": m.num_conv_pos_embedding_groups,
      "do_stable_layer_norm": m.layout == "stable",
      "mask_time_prob": m.mask_time_prob,
      "mask_time_length": m.mask_time_length,
      "mask_time_min_masks": m.mask_time_min_masks,
  }
  config.update(extra)
  return config


def per_layer(value: int | Sequence[int], num_layers: int) -> tuple[int, ...]:
  """Broadcasts a scalar width to a per-layer tuple (convenience for configs)."""
  if isinstance(value, int):
    return (value,) * num_layers
  value = tuple(int(v) for v in value)
  if len(value) != num_layers:
    raise Wav2Vec2ConfigError(f"expected {num_layers} per-layer values, got {len(value)}: {value}")
  return value


def merge_lora(fields: Mapping[str, Any],
               params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
  """Folds every LoRA update into its projection's kernel: W + (alpha / r) A B.

  The result is a plain model (`lora_rank` = 0, no LoRA leaves) computing the same function in eval
  mode, e.g. for export to Hugging Face. `fields` without LoRA are returned as they are.

  Args:
    fields: `Wav2Vec2Classifier` fields (a `name` key, as in configs, is kept).
    params: the `params` collection of that model.

  Returns:
    (fields, params) of the merged model; the inputs are not modified.

  Raises:
    Wav2Vec2ConfigError: a LoRA leaf is missing or has a shape that does not fit its kernel.
  """
  fields = dict(fields)
  rank = int(fields.get("lora_rank", 0))
  params = jax.tree_util.tree_map(lambda x: x, dict(params))  # new containers, shared leaves
  if rank == 0:
    return fields, params
  scale = float(fields.get("lora_alpha", 16.0)) / rank
  merged = 0

  def walk(tree, path):
    nonlocal merged
    out = {}
    for key, value in tree.items():
      if isinstance(value, Mapping) and "lora_a" in value:
        a, b, kernel = value["lora_a"], value["lora_b"], value["kernel"]
        if a.shape[-1] != rank or b.shape[0] != rank or a.shape[:-1] + b.shape[1:] != kernel.shape:
          raise Wav2Vec2ConfigError(
              f"{'/'.join(path + (key,))}: LoRA shapes A {a.shape}, B {b.shape} do not fit the "
              f"kernel {kernel.shape} at lora_rank={rank}")
        delta = jnp.tensordot(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), axes=1)
        out[key] = {k: v for k, v in value.items() if k not in ("lora_a", "lora_b")}
        out[key]["kernel"] = (jnp.asarray(kernel, jnp.float32) + scale * delta).astype(kernel.dtype)
        merged += 1
      elif isinstance(value, Mapping):
        out[key] = walk(value, path + (key,))
      else:
        out[key] = value
    return out

  params = walk(params, ())
  targets = fields.get("lora_targets", ("q", "v"))
  targets = (targets,) if isinstance(targets, str) else tuple(targets)
  expected = int(fields.get("num_layers", 12)) * len(targets)
  if merged != expected:
    raise Wav2Vec2ConfigError(
        f"lora_rank={rank}, {len(targets)} targets x {fields.get('num_layers', 12)} "
        f"layers: expected {expected} LoRA projections, params hold {merged}")
  fields["lora_rank"] = 0
  return fields, params
