"""Metrics streams (JSON lines + TensorBoard), efficiency measurements and end-of-run tables."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxplastic import evaluation
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


# What `peak_memory_bytes` in a stage record measures.
PEAK_MEMORY_KIND = "compiled step: arguments + outputs + temporaries - aliased (max of train and eval step)"


def compiled_memory(jitted: Callable, *args) -> dict | None:
  """Device bytes XLA assigns to one call of `jitted` on arguments shaped like `args` (compiled, never run).

  `peak_bytes` = arguments + outputs + temporaries - aliased: the arguments (state and batch) are live for the whole
  call, outputs get their own buffers except those aliased to donated arguments (the new state reuses the old
  state's buffers, so they are subtracted once), and temporaries are XLA's scratch allocation (already shared
  between values whose lifetimes do not overlap). Every buffer counted at once, so it is an upper bound on the
  call's live bytes; it depends only on the program and the shapes, so it is the same on every run and belongs to
  this step alone, unlike a process-wide peak. `xla_peak_bytes` is XLA's own heap-simulation peak where the
  backend reports one (it may be lower: it frees arguments after their last use). Generated code is not counted.
  None when the backend gives no analysis.
  """
  abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), args)
  stats = jitted.lower(*abstract).compile().memory_analysis()
  if stats is None:
    return None
  out = {"argument_bytes": int(stats.argument_size_in_bytes), "output_bytes": int(stats.output_size_in_bytes),
         "temp_bytes": int(stats.temp_size_in_bytes), "alias_bytes": int(stats.alias_size_in_bytes)}
  out["peak_bytes"] = out["argument_bytes"] + out["output_bytes"] + out["temp_bytes"] - out["alias_bytes"]
  xla_peak = getattr(stats, "peak_memory_in_bytes", None)
  out["xla_peak_bytes"] = int(xla_peak) if xla_peak else None
  return out


def device_memory() -> dict | None:
  """The first local device's allocator statistics where the backend keeps them (GPU/TPU; None on CPU).

  `peak_bytes_in_use` is the process's peak since start (JAX cannot reset it), so it is not a per-stage figure.
  """
  try:
    stats = jax.local_devices()[0].memory_stats()
  except Exception:  # pylint: disable=broad-except  (backends without allocator stats raise or return None)
    return None
  if not stats:
    return None
  keys = ("bytes_in_use", "peak_bytes_in_use", "bytes_limit")
  return {k: int(stats[k]) for k in keys if k in stats} or None


def efficiency(state, *, total_params: int) -> dict:
  """Parameter and optimizer-state sizes of a train state."""
  trainable = surgery.count(state.params)
  return {"params_total": total_params, "params_trainable": trainable, "params_frozen": total_params - trainable,
          "opt_state_bytes": surgery.nbytes(state.opt_state)}


def synthetic_batch(batch_size: int, num_samples: int, rng: np.random.Generator | None = None) -> dict:
  """A batch of the real shapes and dtypes (noise, or zeros without `rng`), every row counted."""
  audio = (np.zeros((batch_size, num_samples), np.float32) if rng is None
           else rng.standard_normal((batch_size, num_samples)).astype(np.float32) * 0.1)
  return {"audio": jnp.asarray(audio), "label": jnp.asarray(np.arange(batch_size) % 2, jnp.int32),
          "mask": jnp.ones((batch_size,), jnp.float32)}


def step_times(train_fn, eval_fn, state, *, batch_size: int, eval_batch_size: int, num_samples: int,
               repeats: int = 5) -> dict:
  """Step time (forward + backward + update) and eval time per batch on fixed synthetic batches of the real shapes,
  blocking on each call, so the numbers are compute only (no input pipeline). `state` is not donated."""
  batch = synthetic_batch(batch_size, num_samples, np.random.default_rng(0))
  scratch = jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), state)
  step_s = time_calls(train_fn, lambda: (scratch, batch), repeats, carry=True)
  ebatch = synthetic_batch(eval_batch_size, num_samples)
  eval_s = time_calls(eval_fn, lambda: (state, ebatch), repeats)
  return {"step_seconds": step_s, "eval_batch_seconds": eval_s}


def stage_memory(state, *, eval_fn, eval_batch_size: int, num_samples: int, train_fn=None,
                 batch_size: int | None = None) -> dict:
  """A stage's own peak memory: the larger of its compiled eval step and (if it trains) train step, by
  `compiled_memory`; plus the device allocator's statistics where the backend keeps them (`device_memory`).

  Returns the record keys `peak_memory_bytes`, `peak_memory_kind` (PEAK_MEMORY_KIND), `memory` (each step's
  breakdown) and `device_memory`.
  """
  steps = {"eval_step": compiled_memory(eval_fn, state, synthetic_batch(eval_batch_size, num_samples))}
  if train_fn is not None:
    steps["train_step"] = compiled_memory(train_fn, state, synthetic_batch(batch_size, num_samples))
  peaks = [m["peak_bytes"] for m in steps.values() if m is not None]
  return {"peak_memory_bytes": max(peaks) if peaks else None,
          "peak_memory_kind": PEAK_MEMORY_KIND if peaks else None,
          "memory": steps, "device_memory": device_memory()}


def results_table(records) -> str:
  """The end-of-run table: one row per stage record, EERs and efficiency columns."""
  rows = []
  for r in records:
    rows.append({"stage": r["stage"], "kind": r["kind"], "trainable": r["trainable"],
                 "dev EER %": r.get("dev", {}).get("eer"), "eval EER %": r.get("eval", {}).get("eer"),
                 "eval min t-DCF": r.get("eval", {}).get("min_tdcf"), "params": r["params_total"],
                 "trainable params": r["params_trainable"], "opt bytes": r["opt_state_bytes"],
                 "step ms": None if r.get("step_seconds") is None else 1e3 * r["step_seconds"],
                 "epoch s": r.get("epoch_seconds"), "eval ms/batch": None if r.get("eval_seconds_per_batch") is None
                 else 1e3 * r["eval_seconds_per_batch"],
                 "peak MiB": r["peak_memory_bytes"] / 2 ** 20 if r.get("peak_memory_bytes") else None,
                 "stage s": r.get("stage_seconds")})
  return evaluation.format_table(rows, list(rows[0].keys())) if rows else ""
