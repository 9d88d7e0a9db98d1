"""Shared helpers for the benchmark scripts: honest timing on a possibly shared machine.

Every script records the load average before and after its timings and the process CPU time of
each side, and marks its rows LOADED when other processes kept more than `IDLE_LOAD` cores busy
while it timed: under load, multi-threaded PyTorch spin-waits and degrades far more than XLA, so
ratios from a loaded run are not comparable with idle ones. For each train step the
scripts print XLA's FLOP count (`cost_analysis()`) and the achieved GFLOP/s of both sides next to
the machine's measured float32 matmul peak (JAX and PyTorch, same run).

`XLA_CPU_OPTIONS` are the XLA:CPU compiler options the library's ResNet-18 steps and the benchmarks' "ours" rows use
(`jax.jit(..., compiler_options=compiler_options())`); each one was measured (benchmarks/README.md).
"""
from __future__ import annotations

import collections
import contextlib
import glob
import gzip
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplastic import models  # the scripts put the repository root on sys.path first
from jaxplastic import train as train_lib

# 1-min load average above which a run counts as LOADED.
IDLE_LOAD = 0.5

# The XLA:CPU options the library compiles ResNet-18's steps with (`ModelSpec.xla_cpu_options`); the benchmarks'
# "ours" rows use them for every model, and the "XLA default options" rows show each model without them.
XLA_CPU_OPTIONS = models.CONV_XLA_CPU_OPTIONS


def compiler_options(backend: str | None = None) -> dict[str, Any]:
  """`XLA_CPU_OPTIONS` on the CPU backend, nothing elsewhere, as `jaxplastic.train.jit_steps` compiles them."""
  return train_lib.compiler_options(XLA_CPU_OPTIONS, backend)


def busy_seconds() -> float | None:
  """CPU seconds all processes have spent busy since boot (Linux /proc/stat), or None elsewhere."""
  try:
    with open("/proc/stat") as f:
      fields = [int(v) for v in f.readline().split()[1:]]
  except (OSError, ValueError):
    return None
  idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
  return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


# The load average when the benchmark process started: later load averages count its own earlier sections.
START_LOAD = os.getloadavg()


class LoadWatch:
  """Was the machine idle apart from us? The cores other processes kept busy during this section (/proc/stat minus
  this process's CPU time; where there is no /proc/stat, the 1-min load average when the process started): a load
  average counts our own threads (even the imports before the first timing), so it cannot tell. `label` is
  'LOADED' when that exceeded `IDLE_LOAD`."""

  def __init__(self):
    self.before = os.getloadavg()
    self.after: tuple[float, float, float] | None = None
    self._start = (time.perf_counter(), busy_seconds(), own_seconds())
    self.other_cores: float | None = None

  def close(self) -> str:
    self.after = os.getloadavg()
    wall0, busy0, own0 = self._start
    busy1 = busy_seconds()
    if busy0 is not None and busy1 is not None:
      wall = max(time.perf_counter() - wall0, 1e-9)
      self.other_cores = max(0.0, ((busy1 - busy0) - (own_seconds() - own0)) / wall)
    return self.label

  @property
  def idle(self) -> bool:
    if self.other_cores is not None:  # what competed with the timed work
      return self.other_cores <= IDLE_LOAD
    return START_LOAD[0] <= IDLE_LOAD  # no /proc/stat: the load average before our own work

  @property
  def label(self) -> str:
    return "" if self.idle else "LOADED"

  def report(self) -> str:
    fmt = lambda l: "/".join(f"{v:.2f}" for v in l) if l else "-"
    others = "-" if self.other_cores is None else f"{self.other_cores:.2f}"
    line = (f"load average (1/5/15 min): at process start {fmt(START_LOAD)}, before {fmt(self.before)}, after "
            f"{fmt(self.after)} (these two count this process's own threads); cores other processes kept busy "
            f"during it: {others}")
    if not self.idle:
      line += (f"\n!!! LOADED: other processes' CPU use exceeded "
               f"{IDLE_LOAD}. Absolute times and ours/PyTorch ratios from this run are NOT idle "
               "numbers; rows are marked LOADED. Re-run on an idle machine.")
    return line


@contextlib.contextmanager
def patched(patches: dict):
  """Temporarily replaces module attributes ({(module, name): value}): a variant row that undoes one choice."""
  saved = {key: getattr(*key) for key in patches}
  for (module, name), value in patches.items():
    setattr(module, name, value)
  try:
    yield
  finally:
    for (module, name), value in saved.items():
      setattr(module, name, value)


def header(torch_threads: int | None = None) -> None:
  """Prints the exact command, versions, devices, threads and XLA flags."""
  print("command: " + " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv))
  dev = jax.devices()[0]
  line = (f"jax {jax.__version__} on {dev.platform} ({dev.device_kind}) x{jax.device_count()}, "
          f"{os.cpu_count()} CPUs visible")
  if torch_threads is not None:
    import torch  # pylint: disable=g-import-not-at-top
    line += f"; torch {torch.__version__}, torch.set_num_threads({torch_threads})"
  print(line)
  print(f"JAX threads: XLA's default (one per visible core); XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
  """(wall, process CPU) seconds of one blocking call (CPU time counts all of its threads)."""
  wall, cpu = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - wall, time.process_time() - cpu


def time_interleaved(fns: dict[str, Callable[[], object]], steps: int,
                     warmup: int) -> dict[str, dict[str, float]]:
  """Times the callables round-robin so that they see the same background load.

  Returns per name the median ("wall") and minimum ("min") wall seconds and the median process
  CPU seconds ("cpu") of a call.
  """
  for _ in range(warmup):
    for fn in fns.values():
      fn()
  samples = {name: [] for name in fns}
  for _ in range(steps):
    for name, fn in fns.items():
      samples[name].append(timed(fn))
  return {name: {"wall": statistics.median(w for w, _ in v), "min": min(w for w, _ in v),
                 "cpu": statistics.median(c for _, c in v)} for name, v in samples.items()}


def xla_flops(compiled) -> float | None:
  """FLOPs of one call of a compiled JAX function, from XLA's cost analysis (None if absent)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def matmul_peak(n: int = 2048, torch_threads: int | None = None, reps: int = 5) -> dict[str, float]:
  """Best GFLOP/s of an n x n float32 matmul: jnp.dot (jitted) and, if given threads, torch.mm."""
  out = {}
  a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  out["jax"] = 2 * n**3 / 1e9 / min(timed(lambda: dot(a, a).block_until_ready())[0]
                                    for _ in range(reps))
  if torch_threads is not None:
    import torch  # pylint: disable=g-import-not-at-top
    t = torch.from_numpy(np.array(a))
    torch.mm(t, t)
    out["torch"] = 2 * n**3 / 1e9 / min(timed(lambda: torch.mm(t, t))[0] for _ in range(reps))
  return out


def gflops(flops: float | None, seconds: float) -> str:
  return f"{flops / seconds / 1e9:.1f}" if flops else "-"


def _hlo_ops(hlo_text: str) -> dict[str, str]:
  """Instruction name -> 'shape [ops inside]' for every instruction of optimized HLO text."""
  comps, current = {}, None
  for line in hlo_text.splitlines():
    head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if head and not line.startswith(" "):
      current = comps.setdefault(head.group(1), [])
    elif current is not None and line.strip():
      current.append(line.strip())
  desc = {}
  for lines in comps.values():
    for line in lines:
      m = re.match(r"^(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\((.*)", line)
      if not m:
        continue
      name, shape, op, rest = m.groups()
      called = re.search(r"calls=%?([\w.\-]+)", rest)
      inner = [re.match(r"^(?:ROOT )?%?[\w.\-]+ = \S+ ([\w\-]+)", x)
               for x in comps.get(called.group(1), [])] if called else []
      inner = [i.group(1) for i in inner if i and i.group(1) not in (
          "parameter", "bitcast", "constant", "broadcast")]
      window = re.search(r"window=\{[^}]*\}", rest)
      desc[name] = (f"{shape} {op}" + (f" [{','.join(dict.fromkeys(inner))}]" if inner else "")
                    + (f" {window.group(0)}" if window else ""))
  return desc


def op_profile(compiled, args, reps: int = 3, top: int = 25) -> str:
  """Per-operation wall time of a compiled JAX function from a jax.profiler trace (XLA:CPU thunks;
  loop bodies' operations also count inside their `while`). Returns a printable table.

  XLA:CPU's Eigen convolutions run asynchronously and show up shorter than they are; the totals
  of everything else are reliable on an idle machine.
  """
  compiled(*args)
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder, create_perfetto_trace=True):
      for _ in range(reps):
        jax.block_until_ready(compiled(*args))
    path = glob.glob(f"{folder}/**/perfetto_trace.json.gz", recursive=True)[0]
    with gzip.open(path) as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  desc = _hlo_ops(compiled.as_text())
  total, calls = collections.Counter(), collections.Counter()
  for e in events:
    if e.get("ph") == "X" and (e["name"] in desc or e["name"].startswith("while")):
      total[e["name"]] += e.get("dur", 0) / reps
      calls[e["name"]] += 1
  kinds = collections.Counter()
  for name, us in total.items():
    if not name.startswith("while"):
      kinds[re.sub(r"\.\d+$", "", name)] += us
  lines = [f"per-op profile ({reps} calls): {sum(kinds.values()) / 1e3:.1f} ms of operations per "
           "call (loops counted by their bodies' operations)", "  by kind:"]
  lines += [f"    {us / 1e3:9.1f} ms  {kind}" for kind, us in kinds.most_common(12)]
  lines.append("  top operations:")
  for name, us in total.most_common(top):
    lines.append(f"    {us / 1e3:9.1f} ms  x{calls[name] // reps:<4d} {name:36s} "
                 f"{desc.get(name, '')[:110]}")
  return "\n".join(lines)
