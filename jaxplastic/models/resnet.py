"""ResNet-18 on log-Mel spectrograms, with every width a config field so surgery can grow it.

The network follows torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2]) on a one-channel
spectrogram image, as in the authors' scripts. Parameter paths never depend on widths:

  stem/conv, stem/bn,
  stage{i}/block{j}/{conv1, bn1, conv2, bn2, shortcut_conv, shortcut_bn}   (i, j 1-based),
  branch{i}/{conv1, bn1, conv2, bn2, shortcut_conv, shortcut_bn}   (only where branch_widths[i-1] > 0),
  head.

`block_widths` sets each block's inner width (conv1's output channels), so a single block can
be widened without touching its stage's output width. `branch_widths` adds the authors' dropin
layout: one parallel BasicBlock beside a stage, reading the stage's input, its channels appended
after the stage's output channels, so the next stage's input kernels grow along their input axis
with the original channels leading.
"""
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxplastic import frontends

Array = jax.Array

# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), untruncated.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
# torch.nn.Linear / nn.Conv2d default: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
dense_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
# `ResNet18.weight_init` -> conv kernel initialiser.
CONV_INITS = {"torchvision": conv_init, "pytorch": dense_init}


def torch_bias_init(fan_in: int):
  """torch.nn.Linear's default bias init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = fan_in ** -0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)

# PyTorch BatchNorm2d defaults: momentum 0.1 on the new statistic (= 0.9 on the old), eps 1e-5.
# One difference remains: Flax tracks the biased batch variance, PyTorch the unbiased one.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def match_channels(x: Array, width: int) -> Array:
  """Zero-pads or truncates the channel axis to `width` (parameter-free identity shortcut)."""
  c = x.shape[-1]
  if c < width:
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, width - c)])
  return x[..., :width]


def _window_views(x: Array, window: tuple[int, int], strides: tuple[int, int],
                  padding: tuple[tuple[int, int], tuple[int, int]]) -> list[Array]:
  """The window's taps as strided views of the -inf padded NHWC input, in row-major tap order."""
  n, h, w, c = x.shape
  (pt, pb), (pl, pr) = padding
  out_h = (h + pt + pb - window[0]) // strides[0] + 1
  out_w = (w + pl + pr - window[1]) // strides[1] + 1
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-jnp.inf)
  return [jax.lax.slice(xp, (0, i, j, 0),
                        (n, i + strides[0] * (out_h - 1) + 1, j + strides[1] * (out_w - 1) + 1, c),
                        (1, strides[0], strides[1], 1))
          for i in range(window[0]) for j in range(window[1])]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool(x: Array, window: tuple[int, int], strides: tuple[int, int],
             padding: tuple[tuple[int, int], tuple[int, int]]) -> Array:
  """Max-pool over H, W of NHWC `x` with -inf padding (nn.max_pool / torch MaxPool2d).

  The gradient goes to one input per window: the first maximum in row-major window order, as
  PyTorch's MaxPool2d and XLA's select_and_scatter route it. It is computed as masks over the
  window's strided views instead of XLA:CPU's select_and_scatter, which expands into
  iota/scatter loops and cost ~10 % of a ResNet-18 train step.
  """
  return functools.reduce(jnp.maximum, _window_views(x, window, strides, padding))


def _max_pool_fwd(x, window, strides, padding):
  y = max_pool(x, window, strides, padding)
  return y, (x, y)


def _max_pool_bwd(window, strides, padding, res, g):
  x, y = res
  n, h, w, c = x.shape
  (pt, pb), (pl, pr) = padding
  taken = jnp.zeros(y.shape, bool)
  dx = jnp.zeros((n, h + pt + pb, w + pl + pr, c), g.dtype)
  for k, view in enumerate(_window_views(x, window, strides, padding)):
    hit = (view == y) & ~taken  # first maximum in tap order wins ties
    taken = taken | hit
    i, j = divmod(k, window[1])
    # Scatter the tap's gradient back onto the strided grid it was read from (interior padding).
    part = jnp.where(hit, g, jnp.zeros((), g.dtype))
    dx = dx + jax.lax.pad(part, jnp.zeros((), g.dtype), (
        (0, 0, 0),
        (i, dx.shape[1] - i - strides[0] * (y.shape[1] - 1) - 1, strides[0] - 1),
        (j, dx.shape[2] - j - strides[1] * (y.shape[2] - 1) - 1, strides[1] - 1),
        (0, 0, 0)))
  return (dx[:, pt:pt + h, pl:pl + w],)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection.

  The shortcut is a 1x1 projection (conv + BN) exactly when the block is strided (or `project`
  says so). An unstrided block whose input width differs from its output width (only after
  surgery widens a stage or the stem) uses the parameter-free identity, zero-padded or truncated
  on channels: so the set of parameter paths depends only on `blocks_per_stage`, and growing a
  width leaves the old channels' computation unchanged. At torchvision's widths this is exactly
  torchvision's rule.

  Attributes:
    inner_width: output channels of conv1.
    out_width: output channels of conv2 and of the block.
    stride: stride of conv1 and of the projection shortcut.
    project: True/False forces a projection / identity shortcut; None: projection iff strided.
    kernel_init: conv kernel initialiser.
    dtype: computation dtype.
  """
  inner_width: int
  out_width: int
  stride: int = 1
  project: bool | None = None
  kernel_init: Any = conv_init
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    conv = lambda w, k, s, p, name: nn.Conv(
        w, (k, k), strides=(s, s), padding=((p, p), (p, p)), use_bias=False,
        kernel_init=self.kernel_init, dtype=self.dtype, name=name)
    norm = lambda name: nn.BatchNorm(
        use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
        dtype=self.dtype, name=name)
    y = conv(self.inner_width, 3, self.stride, 1, "conv1")(x)
    y = nn.relu(norm("bn1")(y))
    y = conv(self.out_width, 3, 1, 1, "conv2")(y)
    y = norm("bn2")(y)
    project = self.stride != 1 if self.project is None else self.project
    if project:
      x = conv(self.out_width, 1, self.stride, 0, "shortcut_conv")(x)
      x = norm("shortcut_bn")(x)
    else:
      x = match_channels(x, self.out_width)
    return nn.relu(x + y)


class Stem(nn.Module):
  """7x7/2 convolution, BN, ReLU and 3x3/2 max-pool.

  Attributes:
    width: output channels.
    kernel_init: conv kernel initialiser.
    dtype: computation dtype.
  """
  width: int
  kernel_init: Any = conv_init
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    x = nn.Conv(self.width, (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)), use_bias=False,
                kernel_init=self.kernel_init, dtype=self.dtype, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                     dtype=self.dtype, name="bn")(x)
    x = nn.relu(x)
    # -inf padded windows, as PyTorch's MaxPool2d.
    return max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))


class ResNetStage(nn.Module):
  """A stage of BasicBlocks; only the first block may change stride and width.

  Attributes:
    width: output channels of every block in the stage.
    inner_widths: conv1 width of each block (its length is the number of blocks).
    stride: stride of the first block.
    kernel_init: conv kernel initialiser.
    dtype: computation dtype.
  """
  width: int
  inner_widths: tuple[int, ...]
  stride: int
  kernel_init: Any = conv_init
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    for j, inner in enumerate(self.inner_widths):
      x = BasicBlock(inner, self.width, stride=self.stride if j == 0 else 1,
                     kernel_init=self.kernel_init, dtype=self.dtype,
                     name=f"block{j + 1}")(x, train=train)
    return x


class ResNet18(nn.Module):
  """ResNet-18 spoofing classifier on raw 16 kHz audio (log-Mel front-end included).

  Attributes:
    num_classes: number of output logits (2: index 1 = bona fide, 0 = spoof).
    stage_widths: output channels of the four stages.
    block_widths: conv1 width of every block, flattened over stages (length
      sum(blocks_per_stage)); None means each block's stage width.
    blocks_per_stage: BasicBlocks per stage.
    branch_widths: channels of one parallel BasicBlock beside each stage (0 = none). The branch
      reads the stage's input with the stage's stride and always has a 1x1 projection shortcut;
      its output is concatenated after the stage's output channels, and the next stage (or the
      head) reads the concatenation. The authors' dropin is (0, 128, 256, 0).
    stem_width: channels of the 7x7 stem convolution.
    sample_rate, n_fft, hop_length, n_mels, num_frames: log-Mel front-end settings.
    mel_htk: HTK mel scale (torchaudio's MelSpectrogram default, the authors') instead of
      Slaney's (librosa's default).
    mel_norm: filterbank area normalisation, "slaney" (librosa's default) or None (torchaudio's
      default, the authors').
    weight_init: "torchvision": conv kernels kaiming_normal(fan_out), zero head bias;
      "pytorch": nn.Conv2d / nn.Linear defaults, i.e. kaiming_uniform(a=sqrt(5)) kernels and a
      U(+-1/sqrt(fan_in)) head bias (the authors' ResNet).
    dtype: computation dtype (parameters and batch statistics stay float32).
  """
  num_classes: int = 2
  stage_widths: tuple[int, ...] = (64, 128, 256, 512)
  block_widths: tuple[int, ...] | None = None
  blocks_per_stage: tuple[int, ...] = (2, 2, 2, 2)
  branch_widths: tuple[int, ...] = (0, 0, 0, 0)  # parallel BasicBlock channels per stage, 0 = none
  stem_width: int = 64
  sample_rate: int = 16000
  n_fft: int = 1024
  hop_length: int = 512
  n_mels: int = 64
  num_frames: int = 224
  mel_htk: bool = False  # True: HTK mel scale (torchaudio default); False: Slaney (librosa)
  mel_norm: str | None = "slaney"  # filterbank area normalisation; None = torchaudio default
  weight_init: str = "torchvision"  # "torchvision" or "pytorch" (torch layer defaults)
  dtype: Any = jnp.float32

  def inner_widths(self) -> tuple[tuple[int, ...], ...]:
    """Returns the conv1 widths of each stage's blocks, validating the width fields."""
    if len(self.stage_widths) != len(self.blocks_per_stage):
      raise ValueError(f"stage_widths {self.stage_widths} and blocks_per_stage "
                       f"{self.blocks_per_stage} must have the same length")
    if len(self.branch_widths) != len(self.stage_widths) or min(self.branch_widths) < 0:
      raise ValueError(f"branch_widths {self.branch_widths} needs one entry >= 0 per stage "
                       f"({len(self.stage_widths)} stages)")
    if self.weight_init not in CONV_INITS:
      raise ValueError(f"weight_init must be one of {sorted(CONV_INITS)}, got {self.weight_init!r}")
    if self.block_widths is None:
      return tuple((w,) * n for w, n in zip(self.stage_widths, self.blocks_per_stage))
    if len(self.block_widths) != sum(self.blocks_per_stage):
      raise ValueError(f"block_widths has {len(self.block_widths)} entries, expected "
                       f"sum(blocks_per_stage) = {sum(self.blocks_per_stage)}")
    out, start = [], 0
    for n in self.blocks_per_stage:
      out.append(tuple(self.block_widths[start:start + n]))
      start += n
    return tuple(out)

  def frontend(self, audio: Array) -> Array:
    """Raw audio [B, num_samples] -> log-Mel image [B, n_mels, num_frames, 1] (NHWC)."""
    if audio.ndim != 2:
      raise ValueError(f"ResNet18 expects audio of shape [batch, samples], got {audio.shape}")
    mel = frontends.log_mel(audio, sample_rate=self.sample_rate, n_fft=self.n_fft,
                            hop_length=self.hop_length, n_mels=self.n_mels,
                            num_frames=self.num_frames, htk=self.mel_htk, mel_norm=self.mel_norm)
    return mel[..., None]

  def __call__(self, audio: Array, *, train: bool, return_embedding: bool = False):
    """Raw audio [B, num_samples] -> logits [B, num_classes] (float32).

    With return_embedding, returns (logits, pooled [B, stage_widths[-1] + branch_widths[-1]]).
    """
    logits, pooled, _ = self.from_features(self.frontend(audio), train=train)
    return (logits, pooled) if return_embedding else logits

  @nn.compact
  def from_features(self, x: Array, *, train: bool) -> tuple[Array, Array, Array]:
    """Spectrogram image [B, H, W, 1] -> (logits, pooled embedding, last feature map).

    The last feature map [B, h, w, stage_widths[-1] + branch_widths[-1]] feeds GradCAM: since
    the head is linear after global average pooling, d logit_c / d fmap[..., k] =
    head.kernel[k, c] / (h * w).
    """
    inner_widths = self.inner_widths()
    kernel_init = CONV_INITS[self.weight_init]
    x = Stem(self.stem_width, kernel_init=kernel_init, dtype=self.dtype, name="stem")(
        x.astype(self.dtype), train=train)
    for i, (width, inner, branch) in enumerate(zip(self.stage_widths, inner_widths,
                                                   self.branch_widths)):
      stride = 1 if i == 0 else 2
      y = ResNetStage(width, inner, stride=stride, kernel_init=kernel_init, dtype=self.dtype,
                      name=f"stage{i + 1}")(x, train=train)
      if branch:
        # Always projected, so the branch's parameter paths do not depend on its input width.
        b = BasicBlock(branch, branch, stride=stride, project=True, kernel_init=kernel_init,
                       dtype=self.dtype, name=f"branch{i + 1}")(x, train=train)
        y = jnp.concatenate([y, b], axis=-1)  # new channels last: original slices lead
      x = y
    feature_map = x
    pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    fan_in = self.stage_widths[-1] + self.branch_widths[-1]
    bias_init = (torch_bias_init(fan_in) if self.weight_init == "pytorch"
                 else nn.initializers.zeros)
    logits = nn.Dense(self.num_classes, kernel_init=dense_init, bias_init=bias_init,
                      name="head")(pooled)
    return logits, pooled, feature_map
