"""Wav2Vec 2.0 building blocks in Flax linen, numerically matching transformers' modules.

The conv feature encoder, the weight-normalised positional convolution, attention and FFN
projections (with optional LoRA), the post-LN / pre-LN encoder layer, the encoder stack (with the
authors' parallel-layer and projected-layer layouts), the feature projection and the classifier
head. `jaxplastic.models.wav2vec2.Wav2Vec2Classifier` assembles them; see its docstring for the
parameter paths.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

Array = jax.Array

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


# Taps per matmul in `grouped_conv1d`'s kernel gradient.
_TAPS_PER_CHUNK = 16


def _grouped_conv(x: Array, w: Array, padding: tuple[int, int], groups: int) -> Array:
  return jax.lax.conv_general_dilated(x, w, window_strides=(1,), padding=[padding],
                                      dimension_numbers=("NWC", "WIO", "NWC"),
                                      feature_group_count=groups)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def grouped_conv1d(x: Array, w: Array, padding: tuple[int, int], groups: int) -> Array:
  """Grouped 1-D convolution, NWC input and WIO kernel (lax.conv_general_dilated with
  feature_group_count=groups) whose kernel gradient is computed as tap-chunked matmuls.

  XLA:CPU lowers the kernel gradient of wav2vec2's positional conv (128 taps, 16 groups of 48
  channels) into a dilated convolution ~10x slower than the forward pass (~20 % of a
  wav2vec2-base train step); as matmuls over an unfolded input it costs about 2 forward passes.
  The forward pass and the input gradient stay XLA's convolutions.
  """
  return _grouped_conv(x, w, padding, groups)


def _grouped_conv1d_fwd(x, w, padding, groups):
  return grouped_conv1d(x, w, padding, groups), (x, w)


def _grouped_conv1d_bwd(padding, groups, res, dy):
  x, w = res
  k_size, ci, c_out = w.shape
  batch, out_len, _ = dy.shape
  co = c_out // groups
  dx = jax.vjp(lambda x: _grouped_conv(x, w, padding, groups), x)[1](dy)[0]
  # dw[k, i, g, j] = sum_{b, t} xpad[b, t + k, g, i] dy[b, t, g, j], as one [Co, B*T] x
  # [B*T, taps*Ci] matmul per group for each chunk of taps (bounding the unfolded copy of x).
  xp = jnp.pad(x, ((0, 0), padding, (0, 0)))
  xg = jnp.transpose(xp.reshape(batch, -1, groups, ci), (2, 0, 1, 3))  # [G, B, Tp, Ci]
  dyg = jnp.transpose(dy.reshape(batch * out_len, groups, co), (1, 2, 0))  # [G, Co, B*T]
  parts = []
  for start in range(0, k_size, _TAPS_PER_CHUNK):
    taps = range(start, min(start + _TAPS_PER_CHUNK, k_size))
    unfolded = jnp.stack([xg[:, :, k:k + out_len] for k in taps], axis=3)
    unfolded = unfolded.reshape(groups, batch * out_len, len(taps) * ci)
    parts.append(jnp.matmul(dyg, unfolded).reshape(groups, co, len(taps), ci))
  dw = jnp.transpose(jnp.concatenate(parts, axis=2), (2, 3, 0, 1)).reshape(k_size, ci, c_out)
  return dx.astype(x.dtype), dw.astype(w.dtype)


grouped_conv1d.defvjp(_grouped_conv1d_fwd, _grouped_conv1d_bwd)


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
    y = grouped_conv1d(x.astype(self.dtype), kernel, (k // 2, k // 2), self.groups)
    y = y + bias.astype(self.dtype)
    if k % 2 == 0:
      y = y[:, :-1]  # SamePad: symmetric padding of an even kernel yields one extra frame
    return ACTIVATIONS[self.activation](y)


# Projections that may carry a LoRA update (`lora_targets`): attention q/k/v/out, the FFN denses.
LORA_TARGETS = ("q", "k", "v", "out", "intermediate", "output")


@dataclasses.dataclass(frozen=True)
class LoRASpec:
  """LoRA settings of one encoder layer (hashable, so modules holding it stay static under jit)."""

  rank: int = 0
  alpha: float = 16.0
  dropout: float = 0.0
  targets: tuple[str, ...] = ()

  def fields_for(self, name: str) -> dict[str, Any]:
    """Projection fields for the projection `name`: LoRA ones if it is a target, else none."""
    if self.rank > 0 and name in self.targets:
      return dict(lora_rank=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout)
    return {}


class Projection(nn.Module):
  """Dense map over the `num_in` trailing axes of x to `features`, with an optional LoRA update.

  Parameters: `kernel` [*in, *features], `bias` [*features] (initialised as `nn.DenseGeneral`
  does, so values and numerics are those of a plain dense layer), and when `lora_rank` > 0 also
  `lora_a` [*in, r] (PEFT's kaiming-uniform, U(+-1/sqrt(fan_in))) and `lora_b` [r, *features]
  (zeros): y = x W + b + (alpha / r) * dropout(x) A B. Because the LoRA leaves exist only at
  rank > 0, growing `lora_rank` from 0 adds exactly them, and B = 0 leaves the function unchanged.
  """

  features: tuple[int, ...]
  num_in: int = 1
  kernel_init: Callable = _DENSE_INIT
  bias_init: Callable = nn.initializers.zeros
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    in_shape = tuple(x.shape[-self.num_in:])
    n_in, n_out = math.prod(in_shape), math.prod(self.features)
    flat_init = lambda init, flat: (  # noqa: E731
        lambda key, shape, dtype=jnp.float32: jnp.reshape(init(key, flat, dtype), shape))
    kernel = self.param("kernel", flat_init(self.kernel_init, (n_in, n_out)),
                        in_shape + self.features)
    bias = self.param("bias", flat_init(self.bias_init, (n_out,)), self.features)
    contract = lambda a, w, n: jax.lax.dot_general(  # noqa: E731
        a, w, ((tuple(range(a.ndim - n, a.ndim)), tuple(range(n))), ((), ())))
    xc, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = contract(xc, kernel, self.num_in) + bias
    if self.lora_rank > 0:
      r = self.lora_rank
      lora_a = self.param("lora_a", flat_init(_TORCH_LINEAR_INIT, (n_in, r)), in_shape + (r,))
      lora_b = self.param("lora_b", nn.initializers.zeros, (r,) + self.features)
      h = nn.Dropout(self.lora_dropout)(x, deterministic=not train)
      h, lora_a, lora_b = promote_dtype(h, lora_a, lora_b, dtype=self.dtype)
      delta = contract(contract(h, lora_a, self.num_in), lora_b, 1)
      y = y + delta * jnp.asarray(self.lora_alpha / r, y.dtype)
    return y


class Attention(nn.Module):
  """Multi-head self-attention with per-layer `num_heads` and `head_dim` (and optional LoRA)."""

  hidden_size: int
  num_heads: int
  head_dim: int
  dropout: float
  dtype: Any
  lora: LoRASpec = LoRASpec()

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    proj = functools.partial(_projection, self.lora, dtype=self.dtype)
    q, k, v = (proj(name, (self.num_heads, self.head_dim))(x, train) for name in ("q", "k", "v"))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * (self.head_dim**-0.5)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
    weights = nn.Dropout(self.dropout)(weights, deterministic=not train)
    y = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
    return proj("out", (self.hidden_size,), num_in=2)(y, train)


def _projection(lora: LoRASpec,
                name: str,
                features: tuple[int, ...],
                *,
                num_in: int = 1,
                dtype: Any) -> Projection:
  """A named Projection, with LoRA when `name` is one of `lora.targets`."""
  return Projection(features, num_in=num_in, dtype=dtype, name=name, **lora.fields_for(name))


class FeedForward(nn.Module):
  """Position-wise FFN: Dense(ffn_dim) -> act -> dropout -> Dense(hidden) -> dropout."""

  hidden_size: int
  ffn_dim: int
  activation: str
  activation_dropout: float
  hidden_dropout: float
  dtype: Any
  lora: LoRASpec = LoRASpec()

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    proj = functools.partial(_projection, self.lora, dtype=self.dtype)
    y = proj("intermediate", (self.ffn_dim,))(x, train)
    y = ACTIVATIONS[self.activation](y)
    y = nn.Dropout(self.activation_dropout)(y, deterministic=not train)
    y = proj("output", (self.hidden_size,))(y, train)
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
  lora: LoRASpec = LoRASpec()

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
                          self.lora,
                          name="attention")
    ffn = FeedForward(self.hidden_size,
                      self.ffn_dim,
                      self.activation,
                      self.activation_dropout,
                      self.hidden_dropout,
                      self.dtype,
                      self.lora,
                      name="ffn")
    drop = nn.Dropout(self.hidden_dropout)
    if self.layout == "base":
      x = x + drop(attention(x, train), deterministic=not train)
      x = norm("attn_norm")(x)
      x = x + ffn(x, train)
      return norm("final_norm")(x)
    x = x + drop(attention(norm("attn_norm")(x), train), deterministic=not train)
    return x + ffn(norm("final_norm")(x), train)


def _torch_dense(features: int, fan_in: int, dtype: Any, name: str) -> nn.Dense:
  """A Dense layer initialised as torch.nn.Linear (the authors' added projectors)."""
  return nn.Dense(features,
                  kernel_init=_TORCH_LINEAR_INIT,
                  bias_init=_uniform_bias(fan_in),
                  dtype=dtype,
                  name=name)


class Encoder(nn.Module):
  """Positional conv + transformer stack; returns (all hidden states, last hidden state).

  Layer i runs at width `layer_widths[i]`; where that differs from `hidden_size`, Dense
  projectors `proj_in{i}` (hidden -> width) and `proj_out{i}` (width -> hidden) surround it. Where
  `parallel[i]` is 1, a second layer `parallel{i}` of the same widths reads the same input, and
  `merge{i}` maps the concatenated outputs [layer, parallel] (2 x width) back to width.
  """

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
  lora: LoRASpec = LoRASpec()
  layer_widths: tuple[int, ...] | None = None  # None: hidden_size everywhere
  parallel: tuple[int, ...] | None = None  # None: no parallel layers

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
    widths = self.layer_widths or (self.hidden_size,) * self.num_layers
    parallel = self.parallel or (0,) * self.num_layers
    hidden_states = [x]
    for i in range(self.num_layers):
      width = widths[i]
      make_layer = functools.partial(layer_cls, width, self.num_heads[i], self.head_dim[i],
                                     self.ffn_dims[i], self.layout, self.activation,
                                     self.layer_norm_eps, self.attention_dropout,
                                     self.activation_dropout, self.hidden_dropout, self.dtype)
      h = x
      if width != self.hidden_size:
        h = _torch_dense(width, self.hidden_size, self.dtype, f"proj_in{i}")(x)
      y = make_layer(self.lora, name=f"layer{i}")(h, train)
      if parallel[i]:
        # New layers carry no LoRA: they train whole.
        side = make_layer(LoRASpec(), name=f"parallel{i}")(h, train)
        both = jnp.concatenate([y, side], axis=-1)  # [layer, parallel]: originals lead
        y = _torch_dense(width, 2 * width, self.dtype, f"merge{i}")(both)
      if width != self.hidden_size:
        y = _torch_dense(self.hidden_size, width, self.dtype, f"proj_out{i}")(y)
      if train and self.layerdrop > 0.0:
        # LayerDrop as in HF: skip the whole layer with probability `layerdrop` (per batch);
        # a parallel layer, its merge and its projectors are skipped with it.
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
