"""Metrics streams (JSON lines + TensorBoard), efficiency measurements and end-of-run tables."""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np

from jaxplastic import surgery


class MetricWriter:
  """Appends `{"step": ..., "stage": ..., key: value}` lines to `workdir/metrics.jsonl` and mirrors scalars to
  TensorBoard event files in `workdir/tensorboard/` when tensorboardX is installed."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    try:
      from tensorboardX import SummaryWriter  # optional extra
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
    except ImportError:
      pass

  def write(self, step: int, stage: str, prefix: str, values: Mapping[str, Any]) -> None:
    clean = {f"{prefix}/{k}": _to_py(v) for k, v in values.items()}
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), "stage": stage, **clean}, default=_to_py) + "\n")
    if self._tb is not None:
      for k, v in clean.items():
        if isinstance(v, (int, float)) and np.isfinite(v):
          self._tb.add_scalar(k, v, int(step))

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _to_py(v):
  if isinstance(v, (np.generic,)):
    return v.item()
  if hasattr(v, "shape") and np.ndim(v) == 0:
    return np.asarray(v).item()
  if isinstance(v, dict):
    return {k: _to_py(x) for k, x in v.items()}
  return v


def time_calls(fn: Callable, args_fn: Callable[[], tuple], repeats: int, carry: bool = False) -> float:
  """Median seconds of `fn(*args)` after one warm-up call, blocking on the result each time.

  With `carry=True` the first output replaces the first argument (train steps donate and return the state).
  """
  args = args_fn()
  out = fn(*args)
  jax.block_until_ready(out)
  times = []
  for _ in range(repeats):
    if carry:
      args = (out[0],) + tuple(args[1:])
    t0 = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def peak_memory_bytes() -> tuple[int, str]:
  """Peak device memory where the backend reports it (GPU/TPU), else the process's peak resident set size."""
  stats = None
  try:
    stats = jax.local_devices()[0].memory_stats()
  except Exception:
    pass
  if stats and "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"]), "device peak"
  rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(rss_kib) * 1024, "process peak RSS"


def efficiency(state, *, total_params: int) -> dict:
  """Parameter and optimizer-state sizes of a train state."""
  trainable = surgery.count(state.params)
  return {"params_total": total_params, "params_trainable": trainable, "params_frozen": total_params - trainable,
          "opt_state_bytes": surgery.nbytes(state.opt_state)}
