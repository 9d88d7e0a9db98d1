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

`from_hf_config` / `to_hf_config` translate between a Hugging Face `config.json` dict and the
module fields.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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
}

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # exact erf GELU, as torch's default
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}

# Conv-norm eps is torch's default: transformers does not pass config.layer_norm_eps there.
_TORCH_NORM_EPS = 1e-5
# HF Wav2Vec2FeatureExtractor(do_normalize=True) adds this to the variance.
_NORMALIZE_EPS = 1e-7


class Wav2Vec2ConfigError(ValueError):
  """Raised for inconsistent Wav2Vec2 module fields or HF configs we cannot represent."""


# PyTorch nn.Linear default kernel init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
_TORCH_LINEAR_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _uniform_bias(fan_in: int):
  """PyTorch nn.Linear default bias init."""
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


# transformers' _init_weights for Linear layers: N(0, initializer_range=0.02), zero bias.
_DENSE_INIT = nn.initializers.normal(0.02)


class FeatureEncoder(nn.Module):
  """Strided 1-D conv stack: audio [batch, samples] -> [batch, frames, conv_dims[-1]]."""

  conv_dims: tuple[int, ...]
  conv_kernels: tuple[int, ...]
  conv_strides: tuple[int, ...]
  conv_bias: bool
  feat_extract_norm: str
  activation: str
  dtype: Any

  @nn.compact
  def __call__(self, audio: Array) -> Array:
    act = ACTIVATIONS[self.activation]
    x = audio[..., None].astype(self.dtype)
    for i, (dim, kernel,
            stride) in enumerate(zip(self.conv_dims, self.conv_kernels, self.conv_strides)):
      x = nn.Conv(dim, (kernel,),
                  strides=(stride,),
                  padding="VALID",
                  use_bias=self.conv_bias,
                  kernel_init=nn.initializers.he_normal(),
                  dtype=self.dtype,
                  name=f"conv{i}")(x)
      if self.feat_extract_norm == "layer":
        x = nn.LayerNorm(epsilon=_TORCH_NORM_EPS,
                         use_fast_variance=False,
                         dtype=self.dtype,
                         name=f"norm{i}")(x)
      elif self.feat_extract_norm == "group" and i == 0:
        # One group per channel: per-channel normalisation over time, as HF's GroupNorm(C, C).
        x = nn.GroupNorm(num_groups=dim,
                         epsilon=_TORCH_NORM_EPS,
                         use_fast_variance=False,
                         dtype=self.dtype,
                         name=f"norm{i}")(x)
      x = act(x)
    return x


class PositionalConv(nn.Module):
  """Weight-normalised grouped conv positional embedding (HF `Wav2Vec2PositionalConvEmbedding`).

  `weight_v` is stored [kernel, hidden / groups, hidden] (flax layout) and `weight_g`
  [kernel, 1, 1]; the effective kernel is g * v / ||v||, the norm taken over all axes but the
  kernel-tap axis (torch weight_norm dim=2). Separate g and v params make HF export exact.
  """

  hidden_size: int
  kernel_size: int
  groups: int
  activation: str
  dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if self.hidden_size % self.groups:
      raise Wav2Vec2ConfigError(f"hidden_size {self.hidden_size} is not divisible by "
                                f"num_conv_pos_embedding_groups {self.groups}")
    k = self.kernel_size
    std = 2.0 * math.sqrt(1.0 / (k * self.hidden_size))
    weight_v = self.param("weight_v", nn.initializers.normal(std),
                          (k, self.hidden_size // self.groups, self.hidden_size))
    weight_g = self.param(
        "weight_g", lambda _: jnp.sqrt(jnp.sum(jnp.square(weight_v), axis=(1, 2), keepdims=True)))
    bias = self.param("bias", nn.initializers.zeros, (self.hidden_size,))
    norm = jnp.sqrt(jnp.sum(jnp.square(weight_v), axis=(1, 2), keepdims=True))
    kernel = (weight_v * (weight_g / norm)).astype(self.dtype)
    y = jax.lax.conv_general_dilated(x.astype(self.dtype),
                                     kernel,
                                     window_strides=(1,),
                                     padding=[(k // 2, k // 2)],
                                     dimension_numbers=("NWC", "WIO", "NWC"),
                                     feature_group_count=self.groups)
    y = y + bias.astype(self.dtype)
    if k % 2 == 0:
      y = y[:, :-1]  # SamePad: symmetric padding of an even kernel yields one extra frame
    return ACTIVATIONS[self.activation](y)


class Attention(nn.Module):
  """Multi-head self-attention with per-layer `num_heads` and `head_dim`."""

  hidden_size: int
  num_heads: int
  head_dim: int
  dropout: float
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    dense = lambda name: nn.DenseGeneral(  # noqa: E731
        (self.num_heads, self.head_dim),
        axis=-1,
        kernel_init=_DENSE_INIT,
        dtype=self.dtype,
        name=name)
    q, k, v = dense("q")(x), dense("k")(x), dense("v")(x)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (self.head_dim**-0.5)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
    weights = nn.Dropout(self.dropout)(weights, deterministic=not train)
    y = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
    return nn.DenseGeneral(self.hidden_size,
                           axis=(-2, -1),
                           kernel_init=_DENSE_INIT,
                           dtype=self.dtype,
                           name="out")(y)


class FeedForward(nn.Module):
  """Position-wise FFN: Dense(ffn_dim) -> act -> dropout -> Dense(hidden) -> dropout."""

  hidden_size: int
  ffn_dim: int
  activation: str
  activation_dropout: float
  hidden_dropout: float
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    y = nn.Dense(self.ffn_dim, kernel_init=_DENSE_INIT, dtype=self.dtype, name="intermediate")(x)
    y = ACTIVATIONS[self.activation](y)
    y = nn.Dropout(self.activation_dropout)(y, deterministic=not train)
    y = nn.Dense(self.hidden_size, kernel_init=_DENSE_INIT, dtype=self.dtype, name="output")(y)
    return nn.Dropout(self.hidden_dropout)(y, deterministic=not train)


class EncoderLayer(nn.Module):
  """One transformer layer, post-LN ("base") or pre-LN ("stable")."""

  hidden_size: int
  num_heads: int
  head_dim: int
  ffn_dim: int
  layout: str
  activation: str
  layer_norm_eps: float
  attention_dropout: float
  activation_dropout: float
  hidden_dropout: float
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    norm = lambda name: nn.LayerNorm(  # noqa: E731
        epsilon=self.layer_norm_eps,
        use_fast_variance=False,
        dtype=self.dtype,
        name=name)
    attention = Attention(self.hidden_size,
                          self.num_heads,
                          self.head_dim,
                          self.attention_dropout,
                          self.dtype,
                          name="attention")
    ffn = FeedForward(self.hidden_size,
                      self.ffn_dim,
                      self.activation,
                      self.activation_dropout,
                      self.hidden_dropout,
                      self.dtype,
                      name="ffn")
    drop = nn.Dropout(self.hidden_dropout)
    if self.layout == "base":
      x = x + drop(attention(x, train), deterministic=not train)
      x = norm("attn_norm")(x)
      x = x + ffn(x, train)
      return norm("final_norm")(x)
    x = x + drop(attention(norm("attn_norm")(x), train), deterministic=not train)
    return x + ffn(norm("final_norm")(x), train)


class Encoder(nn.Module):
  """Positional conv + transformer stack; returns (all hidden states, last hidden state)."""

  hidden_size: int
  num_layers: int
  num_heads: tuple[int, ...]
  head_dim: tuple[int, ...]
  ffn_dims: tuple[int, ...]
  layout: str
  activation: str
  pos_conv_activation: str  # HF uses feat_extract_activation here, not hidden_act
  layer_norm_eps: float
  num_conv_pos_embeddings: int
  num_conv_pos_embedding_groups: int
  attention_dropout: float
  activation_dropout: float
  hidden_dropout: float
  layerdrop: float
  remat: bool
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, train: bool) -> tuple[tuple[Array, ...], Array]:
    x = x + PositionalConv(self.hidden_size,
                           self.num_conv_pos_embeddings,
                           self.num_conv_pos_embedding_groups,
                           self.pos_conv_activation,
                           self.dtype,
                           name="pos_conv")(x)
    final_norm = nn.LayerNorm(epsilon=self.layer_norm_eps,
                              use_fast_variance=False,
                              dtype=self.dtype,
                              name="layer_norm")
    if self.layout == "base":
      x = final_norm(x)
    x = nn.Dropout(self.hidden_dropout)(x, deterministic=not train)
    layer_cls = nn.remat(EncoderLayer, static_argnums=(2,)) if self.remat else EncoderLayer
    hidden_states = [x]
    for i in range(self.num_layers):
      layer = layer_cls(self.hidden_size,
                        self.num_heads[i],
                        self.head_dim[i],
                        self.ffn_dims[i],
                        self.layout,
                        self.activation,
                        self.layer_norm_eps,
                        self.attention_dropout,
                        self.activation_dropout,
                        self.hidden_dropout,
                        self.dtype,
                        name=f"layer{i}")
      y = layer(x, train)
      if train and self.layerdrop > 0.0:
        # LayerDrop as in HF: skip the whole layer with probability `layerdrop` (per batch).
        skip = jax.random.bernoulli(self.make_rng("dropout"), self.layerdrop)
        y = jnp.where(skip, x, y)
      x = y
      hidden_states.append(x)
    last = final_norm(x) if self.layout == "stable" else x
    return tuple(hidden_states), last


class FeatureProjection(nn.Module):
  """LayerNorm + Dense(hidden) + dropout; also returns the normalised features (HF's
  extract_features)."""

  hidden_size: int
  layer_norm_eps: float
  dropout: float
  dtype: Any

  @nn.compact
  def __call__(self, x: Array, train: bool) -> tuple[Array, Array]:
    normed = nn.LayerNorm(epsilon=self.layer_norm_eps,
                          use_fast_variance=False,
                          dtype=self.dtype,
                          name="layer_norm")(x)
    fan_in = x.shape[-1]
    y = nn.Dense(self.hidden_size,
                 kernel_init=_TORCH_LINEAR_INIT,
                 bias_init=_uniform_bias(fan_in),
                 dtype=self.dtype,
                 name="dense")(normed)
    return nn.Dropout(self.dropout)(y, deterministic=not train), normed


class ClassifierHead(nn.Module):
  """The authors' head on pooled features: Dense(256) -> ReLU -> Dropout -> Dense(num_classes)."""

  hidden_dim: int
  num_classes: int
  dropout: float

  @nn.compact
  def __call__(self, pooled: Array, train: bool) -> Array:
    fan_in = pooled.shape[-1]
    y = nn.Dense(self.hidden_dim,
                 kernel_init=_TORCH_LINEAR_INIT,
                 bias_init=_uniform_bias(fan_in),
                 name="dense1")(pooled)
    y = nn.relu(y)
    y = nn.Dropout(self.dropout)(y, deterministic=not train)
    return nn.Dense(self.num_classes,
                    kernel_init=_TORCH_LINEAR_INIT,
                    bias_init=_uniform_bias(self.hidden_dim),
                    name="dense2")(y)


_TUPLE_FIELDS = ("num_heads", "head_dim", "ffn_dims", "conv_dims", "conv_kernels", "conv_strides")


class Wav2Vec2Classifier(nn.Module):
  """Wav2Vec 2.0 backbone + mean pooling + two-layer head; `__call__(audio, train=...)` -> logits.

  Attributes mirror HF's Wav2Vec2Config, but every transformer width is a per-layer tuple so that a
  grown model is just another set of field values. Dropout needs the "dropout" rng when
  `train=True`.
  """

  # q/k/v kernels are [hidden, heads, head_dim]: two trailing output axes (jaxplastic.surgery reads this).
  SURGERY_OUTPUT_AXES = ((r".*/attention/(q|k|v)/kernel", 2),)

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

  def __post_init__(self):
    # Configs often carry lists (JSON, ConfigDict); modules need hashable tuples.
    for name in _TUPLE_FIELDS:
      value = getattr(self, name)
      if value is not None and not isinstance(value, tuple):
        object.__setattr__(self, name, tuple(int(v) for v in value))
    if isinstance(self.dtype, str):
      object.__setattr__(self, "dtype", jnp.dtype(self.dtype))
    super().__post_init__()

  def head_dims(self) -> tuple[int, ...]:
    """Per-layer head width: `head_dim`, or hidden_size // num_heads[i] when unset."""
    if self.head_dim is not None:
      return self.head_dim
    return tuple(self.hidden_size // h for h in self.num_heads)

  def _validate(self) -> None:
    for name in ("num_heads", "ffn_dims"):
      if len(getattr(self, name)) != self.num_layers:
        raise Wav2Vec2ConfigError(
            f"{name} has {len(getattr(self, name))} entries but num_layers={self.num_layers}")
    if self.head_dim is None:
      bad = [h for h in self.num_heads if self.hidden_size % h]
      if bad:
        raise Wav2Vec2ConfigError(
            f"hidden_size {self.hidden_size} not divisible by num_heads {bad}; "
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
                           self.layerdrop, self.remat, self.dtype)
    self.head = ClassifierHead(self.head_hidden, self.num_classes, self.head_dropout)

  def encode(self, audio: Array, *, train: bool = False) -> dict[str, Any]:
    """Runs the backbone; returns HF-comparable outputs.

    Args:
      audio: [batch, samples] float waveform.
      train: enables dropout / LayerDrop.

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
    hidden_states, last = self.encoder(x, train)
    return {
        "extract_features": extract_features,
        "hidden_states": hidden_states,
        "last_hidden_state": last
    }

  def __call__(self, audio: Array, *, train: bool) -> Array:
    """audio [batch, samples] -> logits [batch, num_classes] (float32)."""
    last = self.encode(audio, train=train)["last_hidden_state"]
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
      which a stock HF Wav2Vec2 cannot express (e.g. a model mid-dropin).
  """
  unknown = set(fields) - _FIELD_NAMES
  if unknown:
    raise Wav2Vec2ConfigError(f"unknown Wav2Vec2Classifier field(s): {sorted(unknown)}")
  m = Wav2Vec2Classifier(**fields)
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
