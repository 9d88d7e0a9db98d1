"""Gated recurrent network (GRNN): stacked GRUs on linear cepstra (or LFCC), final state -> linear head.

Two GRU cells share one parametrisation, with one affine map (kernel and bias) per gate and side
so that surgery can see (and grow) each gate matrix on its own. `cell="pytorch"` is nn.GRU:

  r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
  z  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
  n  = tanh(x W_in + b_in + r * (h W_hn + b_hn))
  h' = (1 - z) * n + z * h,        h_0 = 0.

`cell="authors"` is the authors' GRU, whose maps are nn.Linear layers (so each has a bias); the
reset gate scales h *before* the hidden matrix, and z gates the new state:

  r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
  z  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
  n  = tanh(x W_in + b_in + (r * h) W_hn + b_hn)
  h' = (1 - z) * h + z * n,        h_0 = 0.

In both, unit j of h' reads unit i of h only through row i of the hidden kernels, so zeroing the
rows of new units in the columns of old units (`GRNN.SURGERY_RECURRENT`) keeps old units blind to
new ones.

Parameter paths: gru{k}/{input,hidden}_{r,z,n}/{kernel,bias} (k 1-based; kernels [in, H]) and
head/{kernel,bias}. The time loop is one `jax.lax.scan` per layer over time-major activations;
the input projections of all time steps are one matmul before the scan, and each step is a
single [B, H] x [H, 3H] matmul (PyTorch cell) or [B, H] x [H, 2H] plus [B, H] x [H, H] (the
authors' cell, whose candidate reads r * h).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxplastic import frontends

Array = jax.Array

GATES = ("r", "z", "n")
CELLS = ("pytorch", "authors")
POOLINGS = ("last", "mean")


class GateWeights(nn.Module):
  """An affine map's parameters (kernel [in_features, features], bias [features]).

  Returns the arrays instead of applying them, so the GRU can concatenate the three gates'
  kernels once, outside the time loop.
  """
  in_features: int
  features: int
  kernel_init: Any = nn.initializers.xavier_uniform()
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self) -> tuple[Array, Array]:
    kernel = self.param("kernel", self.kernel_init, (self.in_features, self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    return kernel, bias


def gru_scan(inputs: Array, input_kernel: Array, input_bias: Array, hidden_kernel: Array,
             hidden_bias: Array, unroll: int = 1, cell: str = "pytorch") -> Array:
  """Runs a GRU over time with the gates concatenated in (r, z, n) order.

  Args:
    inputs: time-major [T, B, D].
    input_kernel: [D, 3H]; input_bias: [3H].
    hidden_kernel: [H, 3H]; hidden_bias: [3H].
    unroll: time steps per scan iteration.
    cell: "pytorch" (nn.GRU) or "authors" (see the module docstring).

  Returns:
    Hidden states of every step, time-major [T, B, H].
  """
  if cell not in CELLS:
    raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
  hidden = hidden_kernel.shape[0]
  # One matmul for the input side of all time steps.
  x_proj = inputs @ input_kernel + input_bias

  # Rematerialised: the backward pass recomputes a step's gates from the carried state instead
  # of storing ~10 [T, B, H] residuals per layer; on CPU this cut a GRNN gradient by ~35 %.
  @jax.checkpoint
  def pytorch_step(h, xg):
    hg = h @ hidden_kernel + hidden_bias
    xr, xz, xn = jnp.split(xg, 3, axis=-1)
    hr, hz, hn = jnp.split(hg, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    h = (1.0 - z) * n + z * h
    return h, h

  @jax.checkpoint
  def authors_step(h, xg):
    xr, xz, xn = jnp.split(xg, 3, axis=-1)
    hr, hz = jnp.split(h @ hidden_kernel[:, :2 * hidden] + hidden_bias[:2 * hidden], 2, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + (r * h) @ hidden_kernel[:, 2 * hidden:] + hidden_bias[2 * hidden:])
    h = (1.0 - z) * h + z * n
    return h, h

  step = pytorch_step if cell == "pytorch" else authors_step

  h0 = jnp.zeros((inputs.shape[1], hidden), x_proj.dtype)
  _, hs = jax.lax.scan(step, h0, x_proj, unroll=unroll)
  return hs


class GRULayer(nn.Module):
  """One GRU layer over a whole sequence.

  Attributes:
    in_features: input size per time step.
    hidden_size: number of units H.
    unroll: time steps per scan iteration (speed only).
    cell: "pytorch" or "authors" (see the module docstring).
    dtype: computation dtype.
  """
  in_features: int
  hidden_size: int
  unroll: int = 1
  cell: str = "pytorch"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Time-major [T, B, in_features] -> hidden states [T, B, hidden_size]."""
    weights = {}
    for side, fan_in in (("input", self.in_features), ("hidden", self.hidden_size)):
      for g in GATES:
        weights[side, g] = GateWeights(fan_in, self.hidden_size, name=f"{side}_{g}")()
    cat = lambda side, i: jnp.concatenate([weights[side, g][i] for g in GATES], axis=-1).astype(
        self.dtype)
    return gru_scan(x.astype(self.dtype), cat("input", 0), cat("input", 1), cat("hidden", 0),
                    cat("hidden", 1), unroll=self.unroll, cell=self.cell)


class GRNN(nn.Module):
  """Stacked-GRU spoofing classifier on raw 16 kHz audio (linear-cepstrum front-end included).

  Attributes:
    num_classes: number of output logits (2: index 1 = bona fide, 0 = spoof).
    hidden_sizes: units of each GRU layer, bottom to top.
    features: "lc" (the authors' linear cepstra: log power spectrum -> DCT, an envelope) or "lfcc" (the
      ASVspoof 2019 baseline's LFCC with deltas and delta-deltas, 3 * num_coeffs per frame).
    n_fft, hop_length, num_coeffs: front-end settings; win_length (lfcc only; 0 = n_fft), num_filters
      (lfcc only) and deltas (lfcc only: append deltas and delta-deltas) as in `frontends.lfcc`.
    unroll: time steps per scan iteration (speed only; results are unchanged).
    cell: "pytorch" (nn.GRU's equations) or "authors" (the authors' GRU: reset before the hidden
      matrix, h' = (1 - z) h + z n); same parameters either way.
    pooling: what the head reads: "last" (the authors': the top layer's final state) or "mean" (its
      states averaged over time, so every frame reaches the loss directly); same parameters either way.
    dtype: computation dtype (parameters stay float32).
  """
  # Kernels mapping a layer's hidden state to itself (regexes over full '/'-joined variable paths,
  # collection included, as SURGERY_OUTPUT_AXES): surgery keeps their [new rows, old columns]
  # block at zero when old units must never read new ones.
  SURGERY_RECURRENT = (r"params/gru\d+/hidden_[rzn]/kernel",)

  num_classes: int = 2
  hidden_sizes: tuple[int, ...] = (64, 64, 32, 32)
  features: str = "lc"
  n_fft: int = 1024
  hop_length: int = 512
  win_length: int = 0
  num_filters: int = 20
  num_coeffs: int = 20
  deltas: bool = True
  unroll: int = 1
  cell: str = "pytorch"  # "pytorch": nn.GRU equations; "authors": the authors' GRU cell
  pooling: str = "last"  # "last": final state (the authors'); "mean": mean over time
  dtype: Any = jnp.float32

  def frontend(self, audio: Array) -> Array:
    """Raw audio [B, num_samples] -> features [B, frames, num_coeffs (lc; lfcc without deltas) or 3 * num_coeffs]."""
    if audio.ndim != 2:
      raise ValueError(f"GRNN expects audio of shape [batch, samples], got {audio.shape}")
    if self.features == "lfcc":
      return frontends.lfcc(audio, n_fft=self.n_fft, hop_length=self.hop_length,
                            win_length=self.win_length or self.n_fft, num_filters=self.num_filters,
                            num_coeffs=self.num_coeffs, with_deltas=self.deltas)
    if self.features != "lc":
      raise ValueError(f"GRNN.features must be 'lc' or 'lfcc', got {self.features!r}")
    return frontends.linear_cepstrum(audio, n_fft=self.n_fft, hop_length=self.hop_length,
                                     num_coeffs=self.num_coeffs)

  def __call__(self, audio: Array, *, train: bool, return_embedding: bool = False):
    """Raw audio [B, num_samples] -> logits [B, num_classes] (float32).

    With return_embedding, returns (logits, pooled top-layer state [B, hidden_sizes[-1]]).
    `train` is accepted for a uniform model interface; the GRNN has no train-only behaviour.
    """
    logits, final = self.from_features(self.frontend(audio), train=train)
    return (logits, final) if return_embedding else logits

  @nn.compact
  def from_features(self, x: Array, *, train: bool) -> tuple[Array, Array]:
    """Features [B, T, F] -> (logits [B, num_classes], pooled top-layer state (see `pooling`))."""
    del train
    if not self.hidden_sizes:
      raise ValueError("GRNN needs at least one GRU layer (hidden_sizes is empty)")
    if self.cell not in CELLS:
      raise ValueError(f"GRNN.cell must be one of {CELLS}, got {self.cell!r}")
    if self.pooling not in POOLINGS:
      raise ValueError(f"GRNN.pooling must be one of {POOLINGS}, got {self.pooling!r}")
    # Only the first layer reads its input size from the data; the rest come from the config.
    in_sizes = (x.shape[-1],) + tuple(self.hidden_sizes[:-1])
    x = jnp.swapaxes(x, 0, 1)  # Time-major once for the whole stack.
    for k, (fan_in, hidden) in enumerate(zip(in_sizes, self.hidden_sizes)):
      x = GRULayer(fan_in, hidden, unroll=self.unroll, cell=self.cell, dtype=self.dtype,
                   name=f"gru{k + 1}")(x)
    final = (x[-1] if self.pooling == "last" else jnp.mean(x, axis=0)).astype(jnp.float32)
    logits = nn.Dense(self.num_classes, kernel_init=nn.initializers.xavier_uniform(),
                      name="head")(final)
    return logits, final
