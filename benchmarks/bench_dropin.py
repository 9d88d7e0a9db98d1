"""Dropin cost per layout, side by side in one process: the frozen (dropin) train step against the unfrozen one.

  python benchmarks/bench_dropin.py                  # the authors' shapes (batch 32, 64,000 samples); idle machine
  python benchmarks/bench_dropin.py --tiny           # widths / 8, batch 4, 1 s: checks that the script runs
  python benchmarks/bench_dropin.py --setups grnn_isolated --rounds 30 --json /tmp/dropin.json

Setups (each the paper config's baseline -> dropin -> dropin_unfrozen stages, partitioned as the driver does):
  resnet18_widen           configs/la_resnet_dropin.py:widen           stages 2-3 widened in place
  resnet18_parallel        configs/la_resnet_dropin.py:parallel        the authors' branches; new input slices frozen
  resnet18_parallel_train  configs/la_resnet_dropin.py:parallel_train  the same branches; new input slices trained
  grnn_isolated            configs/la_grnn_dropin.py                   GRU layer 2 64 -> 128, new->old blocks zero

For every distinct train step (baseline, frozen, unfrozen of each setup) the script compiles the jitted step once
and reports: parameters and trainable parameters; the compiled step's peak memory (`reporting.compiled_memory`:
arguments + outputs + temporaries - aliased, a property of that step alone) and XLA's FLOP count
(`compiled.cost_analysis()["flops"]`); the median wall time of the step. All steps are timed round-robin
(`--rounds` rounds, one call of each step per round after one warm-up round), so they share whatever load the
machine has. Ratios are against the same grown model's unfrozen step: `step/unfrozen` is measured, `flops/unfrozen`
is what the compiled programs' FLOP counts predict (the limit a layout can reach if time follows FLOPs), and
`vs limit` = step ratio / FLOP ratio (1.0 = the layout saves all the work it removes). Goals (issue 10): the
authors' parallel ResNet layout's frozen step <= 0.5 x the unfrozen one; every layout within 1.1 x its FLOP limit.

Load: the 1-minute load average before and after the run, the process's CPU seconds against wall seconds, and per
step the other processes' CPU use while it was timed (cores busy outside this process, from /proc/stat and
os.times()). A row is marked LOADED when that exceeded `--loaded-cores` (0.5) (without /proc/stat: the load
average before the run): its times are not an idle machine's. FLOPs, memory and parameter counts do not depend on load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402  pylint: disable=g-import-not-at-top
import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import la_grnn_dropin  # noqa: E402
from configs import la_resnet_dropin  # noqa: E402
from jaxplastic import evaluation  # noqa: E402
from jaxplastic import experiment  # noqa: E402
from jaxplastic import models  # noqa: E402
from jaxplastic import reporting  # noqa: E402
from jaxplastic import surgery  # noqa: E402
from jaxplastic import train as train_lib  # noqa: E402

# setup -> (model family, the paper config it reads).
SETUPS = {
    "resnet18_widen": ("resnet18", lambda: la_resnet_dropin.get_config("widen")),
    "resnet18_parallel": ("resnet18", lambda: la_resnet_dropin.get_config("parallel")),
    "resnet18_parallel_train": ("resnet18", lambda: la_resnet_dropin.get_config("parallel_train")),
    "grnn_isolated": ("grnn", la_grnn_dropin.get_config),
}
WIDTH_FIELDS = ("stage_widths", "branch_widths", "stem_width", "hidden_sizes")


# ----------------------------------------------------------------------------------------------------------------
# Configs and partitions.


def shrink(config, factor: int = 8):
  """--tiny: every width field of the model and of the stages divided by `factor` (at least 1 where nonzero),
  batch 4, 1 s of audio, 16 mel bands / frames."""
  div = lambda v: tuple(div(x) for x in v) if isinstance(v, (tuple, list)) else (v and max(1, v // factor))
  for key in WIDTH_FIELDS:
    if key in config.model:
      config.model[key] = div(config.model[key])
  for st in config.stages:
    st.widths = {k: div(v) if k in WIDTH_FIELDS else v for k, v in st.widths.items()}
  if "n_mels" in config.model:
    config.model.n_mels, config.model.num_frames = 16, 32
  config.data.num_samples, config.data.batch_size = 16000, 4
  return config


def stage_partition(config, index: int, variables: dict, plans: dict) -> tuple[surgery.Partition, surgery.Plan]:
  """The partition `experiment._build` gives stage `index` (dropin rules from `config.dropin`; the unfrozen grown
  stage isolated like the dropin one when old_reads_new is False), and the grow plan it uses (None if none)."""
  st = config.stages[index]
  spec = models.spec_of(experiment.model_fields(config.model, st.widths))
  plan = plans.get(st.name)
  if st.trainable == "new":
    d = config.dropin
    return surgery.Partition.new_slices(plan, train_patterns=d.train_patterns, recurrent=spec.recurrent,
                                        old_reads_new=d.old_reads_new, grown_slices=d.grown_slices,
                                        batch_stats=d.batch_stats), plan
  if st.kind == "grow" and not config.dropin.old_reads_new:
    return surgery.Partition.new_slices(plan, recurrent=spec.recurrent, old_reads_new=False,
                                        originals="train"), None
  patterns = spec.frozen_patterns(experiment.build(experiment.model_fields(config.model, st.widths)))
  if patterns:
    return surgery.Partition.fixed(variables["params"], patterns), None
  return surgery.Partition.everything(), None


# ----------------------------------------------------------------------------------------------------------------
# Load.


class Clock:
  """Wall seconds of a call, and the CPU seconds other processes used meanwhile."""

  def __init__(self):
    self.wall, self.foreign = [], 0.0
    self.foreign_known = _bench.busy_seconds() is not None

  def __call__(self, fn):
    busy, own, t0 = _bench.busy_seconds(), _bench.own_seconds(), time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    wall = time.perf_counter() - t0
    if self.foreign_known:
      self.foreign += max(0.0, (_bench.busy_seconds() - busy) - (_bench.own_seconds() - own))
    self.wall.append(wall)
    return out

  def foreign_cores(self) -> float | None:
    return self.foreign / sum(self.wall) if self.foreign_known and self.wall else None


# ----------------------------------------------------------------------------------------------------------------
# Steps.


class _Compiled:
  """An already compiled step in the shape `reporting.compiled_memory` expects (`.lower(...).compile()`), so the
  memory it reports is that of the executable we time, without compiling it again."""

  def __init__(self, compiled):
    self.compiled = compiled

  def lower(self, *args):
    del args
    return self

  def compile(self):
    return self.compiled


class Step:
  """One compiled train step with its own state (the step donates it), measured and timed."""

  def __init__(self, key: str, model, variables: dict, partition: surgery.Partition, plan, config, batch):
    self.key = key
    trainable, frozen = partition.split(variables["params"])
    tx = train_lib.make_optimizer(config.optim)
    self.state = train_lib.create_state(trainable, frozen, {k: v for k, v in variables.items() if k != "params"}, tx)
    train_fn, _ = train_lib.jit_steps(model=model, tx=tx, partition=partition, plan=plan,
                                      loss_name=config.optim.loss, class_weights=None,
                                      base_rng=jax.random.PRNGKey(0),
                                      xla_cpu_options=models.spec_of(config.model.name).xla_cpu_options)
    self.batch = batch
    self.params = surgery.count(variables["params"])
    self.trainable = surgery.count(trainable)
    self.opt_bytes = surgery.nbytes(self.state.opt_state)
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), (self.state, batch))
    self.compiled = train_fn.lower(*abstract).compile()  # the one compilation: measured, counted and timed
    self.memory = reporting.compiled_memory(_Compiled(self.compiled), self.state, batch)
    cost = self.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # older jax: one dict per computation
    self.flops = float(cost["flops"]) if cost and "flops" in cost else None
    self.clock = Clock()

  def call(self):
    self.state, metrics = self.compiled(self.state, self.batch)
    return metrics


def build_steps(name: str, config) -> tuple[dict[str, Step], dict[str, str]]:
  """The setup's distinct steps keyed by what they compute, and variant -> key for its rows."""
  family, _ = SETUPS[name]
  n = config.data.num_samples
  stages = list(config.stages)
  fields = {st.name: experiment.model_fields(config.model, st.widths) for st in stages}
  base = stages[0].name
  small = experiment.build(fields[base])
  v_small = experiment.init_variables(small, jax.random.PRNGKey(0), n)
  batch = reporting.synthetic_batch(config.data.batch_size, n, np.random.default_rng(0))
  steps, rows = {}, {}
  for index, st in enumerate(stages):
    variant = {0: "baseline"}.get(index, "frozen" if st.trainable == "new" else "unfrozen")
    model = experiment.build(fields[st.name])
    if index == 0:
      variables, plans = v_small, {}
    else:
      fresh = experiment.init_variables(model, jax.random.PRNGKey(index), n)
      plan = surgery.make_plan(v_small, fresh)
      variables = surgery.grow(v_small, fresh, plan, init=st.init,
                               output_axes=models.spec_of(fields[st.name]).output_axes)
      plans = {st.name: plan}
    partition, plan = stage_partition(config, index, variables, plans)
    # Steps that compute the same thing are compiled and timed once (e.g. the two parallel layouts' unfrozen).
    key = f"{family}|{json.dumps(fields[st.name], sort_keys=True, default=str)}|{partition}"
    if key not in STEP_CACHE:
      print(f"  compiling {name} {variant} ...", flush=True)
      STEP_CACHE[key] = Step(key, model, variables, partition, plan, config, batch)
    steps[key] = STEP_CACHE[key]
    rows[variant] = key
  return steps, rows


STEP_CACHE: dict[str, Step] = {}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, from {sorted(SETUPS)}")
  parser.add_argument("--rounds", type=int, default=10, help="timed calls of every step, round-robin")
  parser.add_argument("--batch-size", type=int, default=None, help="default: the config's (32)")
  parser.add_argument("--tiny", action="store_true", help="widths / 8, batch 4, 1 s audio: a quick check")
  parser.add_argument("--loaded-cores", type=float, default=0.5,
                      help="mark a row LOADED above this many cores of other processes' CPU use (or load average)")
  parser.add_argument("--json", default="", help="also write the rows here")
  args = parser.parse_args()
  names = [s for s in args.setups.split(",") if s]
  unknown = sorted(set(names) - set(SETUPS))
  if unknown:
    parser.error(f"unknown setups {unknown}; known: {sorted(SETUPS)}")

  load_before = os.getloadavg()
  wall0, cpu0 = time.perf_counter(), time.process_time()
  print(f"devices: {jax.devices()}; load average before: {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}", flush=True)
  setups = {}
  for name in names:
    config = SETUPS[name][1]()
    if args.tiny:
      shrink(config)
    if args.batch_size:
      config.data.batch_size = args.batch_size
    setups[name] = build_steps(name, config)
  distinct = {k: s for steps, _ in setups.values() for k, s in steps.items()}
  print(f"timing {len(distinct)} distinct steps x {args.rounds} rounds, round-robin ...", flush=True)
  for step in distinct.values():  # warm-up round (first-call overheads, allocator)
    step.call()
    jax.block_until_ready(step.state)
  for _ in range(args.rounds):
    for step in distinct.values():
      step.clock(step.call)
  load_after = os.getloadavg()
  wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

  rows = []
  for name, (_, variants) in setups.items():
    unfrozen = distinct[variants["unfrozen"]]
    for variant, key in variants.items():
      s = distinct[key]
      ms = 1e3 * statistics.median(s.clock.wall)
      foreign = s.clock.foreign_cores()
      # Other processes' CPU while this step was timed; the load average counts our own threads (and imports).
      loaded = (foreign if foreign is not None else load_before[0]) > args.loaded_cores
      grown = variant != "baseline"
      step_ratio = ms / (1e3 * statistics.median(unfrozen.clock.wall)) if grown else None
      flop_ratio = s.flops / unfrozen.flops if grown and s.flops and unfrozen.flops else None
      rows.append({
          "setup": name, "step": variant, "params": s.params, "trainable": s.trainable,
          "step ms": ms, "step/unfrozen": step_ratio, "flops/unfrozen": flop_ratio,
          "vs limit": step_ratio / flop_ratio if step_ratio and flop_ratio else None,
          "GFLOP": s.flops / 1e9 if s.flops else None,
          "peak MiB": s.memory["peak_bytes"] / 2 ** 20 if s.memory else None,
          "opt MiB": s.opt_bytes / 2 ** 20,
          "other cores": foreign, "load": "LOADED" if loaded else "idle"})
  print(evaluation.format_table(rows, list(rows[0])))
  print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; process CPU "
        f"{cpu:.1f} s over {wall:.1f} s wall ({cpu / wall:.2f} cores); peak = {reporting.PEAK_MEMORY_KIND}")
  if any(r["load"] == "LOADED" for r in rows):
    print("LOADED rows ran while other processes used the CPU: their times (and ratios) are not an idle "
          "machine's. FLOPs, peak memory and counts hold regardless.")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"rows": rows, "load_before": load_before, "load_after": load_after, "process_cpu_s": cpu,
                 "wall_s": wall, "tiny": args.tiny, "rounds": args.rounds, "devices": str(jax.devices())}, f,
                indent=1)


if __name__ == "__main__":
  main()
