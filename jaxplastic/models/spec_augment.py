"""SpecAugment-style time-span masks, as transformers' `_compute_mask_indices`, in jnp under jit.

transformers draws its masks with numpy on the host (`Wav2Vec2Model._mask_hidden_states` during
fine-tuning). This is the same distribution with static shapes, for inputs without an attention
mask (every row has `length` valid frames, as in our fixed-length batches):

  eps ~ U[0, 1), one per call (shared by the batch, as transformers' `np.random.rand(1)`);
  n = max(int(mask_prob * length / mask_length + eps), min_masks), then clamped so that
      n * mask_length <= length and n <= length - mask_length + 1;
  per row, n distinct span starts drawn uniformly from [0, length - mask_length] (transformers'
      `np.random.choice(..., replace=False)`), each masking mask_length frames (spans may overlap).

n is random (it depends on eps), so the sampler draws the largest possible number of starts, a
random permutation prefix, and keeps the first n: a prefix of a uniformly random permutation is a
uniformly random subset.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def num_spans_bounds(length: int, mask_prob: float, mask_length: int,
                     min_masks: int) -> tuple[int, int]:
  """(fewest, most) spans `compute_mask_indices` can draw for a row of `length` frames."""

  def clamp(n: int) -> int:
    n = max(n, min_masks)
    if n * mask_length > length:
      n = length // mask_length
    return max(min(n, length - (mask_length - 1)), 0)

  base = mask_prob * length / mask_length
  return clamp(int(base)), clamp(int(math.floor(base + 1.0)))


def compute_mask_indices(key: Array, shape: tuple[int, int], mask_prob: float, mask_length: int,
                         min_masks: int = 0) -> Array:
  """Boolean time mask [batch, length]: True where a frame is replaced by the mask embedding.

  Args:
    key: PRNG key.
    shape: (batch, length), static.
    mask_prob: expected fraction of frames covered by span starts times mask_length (an upper
      bound on the masked fraction, since spans overlap).
    mask_length: frames per span.
    min_masks: fewest spans per row.

  Raises:
    ValueError: mask_length < 1 or longer than the sequence (transformers raises the same).
  """
  batch, length = shape
  if mask_length < 1:
    raise ValueError("mask_length has to be bigger than 0")
  if mask_length > length:
    raise ValueError(f"mask_length ({mask_length}) has to be at most the number of frames "
                     f"({length}); use longer inputs or a shorter mask_time_length")
  _, most = num_spans_bounds(length, mask_prob, mask_length, min_masks)
  if most == 0:
    return jnp.zeros(shape, bool)
  eps_key, start_key = jax.random.split(key)
  eps = jax.random.uniform(eps_key, (), jnp.float32)
  n = jnp.floor(mask_prob * length / mask_length + eps).astype(jnp.int32)
  n = jnp.maximum(n, min_masks)
  n = jnp.where(n * mask_length > length, length // mask_length, n)
  n = jnp.clip(n, 0, length - (mask_length - 1))
  num_starts = length - (mask_length - 1)
  # Uniform random subsets per row: the first `most` entries of a random permutation.
  order = jnp.argsort(jax.random.uniform(start_key, (batch, num_starts)), axis=-1)
  starts = order[:, :most]  # [batch, most]
  valid = jnp.arange(most) < n  # [most]
  t = jnp.arange(length)
  inside = (t[None, None, :] >= starts[:, :, None]) & (t[None, None, :] < starts[:, :, None] +
                                                       mask_length)
  return jnp.any(inside & valid[None, :, None], axis=1)
