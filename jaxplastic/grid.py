"""Experiment grid: models x methods x seeds, each cell an ordinary `experiment.run` in its own workdir.

  python -m jaxplastic.grid --config=configs/grid_demo.py --workdir=runs/grid_demo
  python -m jaxplastic.grid --config=configs/grid_demo.py:sweep --workdir=runs/grid_demo   # Fig. 5 sweep

Cells live in `<workdir>/<model>/<method>/seed<k>/`. A cell's stages come from the model's config for that method
(e.g. configs/demo_dropin.py's "baseline", "dropin", "dropin_unfrozen"), selected by name (`METHODS`), with every
trained stage given the grid's epoch budget. Every method other than the baseline starts from the SAME seed's
baseline cell (its first stage loads that cell's exported model instead of training), so the relative EER change
against that baseline compares two models that share their start exactly. A finished cell (results.json, same
config) is reused; an unfinished one resumes where it stopped, so re-running the grid continues it. At the end the
grid writes table.md / table.csv (`jaxplastic.tables`), DET curves per model and, for sweep cells, the EER-vs-layer
plot (`jaxplastic.plots`). The methods `baseline_2x` / `baseline_3x` continue the baseline for one / two more stage
budgets, so that the tables can also compare each method with a baseline that trained as long.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import logging
import os
from typing import Mapping

import ml_collections

from jaxplastic import checkpoints as ckpt_lib

BASELINE = "baseline"
SWEEP = "sweep"


@dataclasses.dataclass(frozen=True)
class Method:
  """How a method's cell is made from one of the model's configs.

  Attributes:
    source: which entry of the model's `configs` provides the stages ("baseline", "dropin", "plasticity", ...).
    stages: names of that config's stages the cell runs, in order; the first is the baseline.
    from_baseline: the first stage loads the same seed's baseline cell instead of training.
    continued: after its stages, the cell trains this many more stages of the same widths and per-stage budget
      ("continued1", ...), each starting from the previous one's best with fresh optimizer moments as a method's
      stages do: the baseline trained as long as a method, to separate the method from its extra epochs.
  """
  source: str
  stages: tuple[str, ...]
  from_baseline: bool = True
  continued: int = 0


# Adding a method: one line here (and, if it needs a new kind of config, an entry in the models' `configs`).
METHODS = {
    "baseline": Method("baseline", ("baseline",), from_baseline=False),
    "dropin_frozen": Method("dropin", ("baseline", "dropin")),
    "dropin_unfrozen": Method("dropin", ("baseline", "dropin_unfrozen")),
    "plasticity": Method("plasticity", ("baseline", "grown", "pruned")),
    "lora": Method("lora", ("baseline", "lora")),
    # The baseline trained for 2 and 3 stage budgets: as long as dropin (or the sweep) and plasticity train.
    "baseline_2x": Method("baseline", ("baseline",), continued=1),
    "baseline_3x": Method("baseline", ("baseline",), continued=2),
}
# The per-layer sweep (paper Fig. 5): the "dropin" config's baseline + dropin stages, the dropin stage's widths
# replaced by the sweep point's; one method `sweep_k<k>` per layer index k.
SWEEP_METHOD = Method("dropin", ("baseline", "dropin"))

# Config keys that do not change what a cell computes; a finished cell is reused when only these differ.
HOST_ONLY_KEYS = ("train.progress", "train.log_every_steps", "train.checkpoint_every_steps", "data.num_threads",
                  "data.prefetch_batches", "data.cache_audio", "data.num_workers", "distributed.")


class GridError(ValueError):
  """A grid config that cannot be expanded into cells, or a cell folder from another config."""


# ----------------------------------------------------------------------------------------------------------------
# Configs.


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'configs.demo_dropin:resnet18' (or 'configs/demo_dropin.py:resnet18') -> that module's get_config(arg)."""
  module, _, arg = spec.partition(":")
  if module.endswith(".py"):
    module = module[:-3].replace("/", ".").replace(os.sep, ".")
  try:
    mod = importlib.import_module(module)
  except ImportError as e:
    raise GridError(f"cannot import config module {module!r} (from {spec!r}): {e}") from e
  return mod.get_config(arg) if arg else mod.get_config()


def sweep_points(model_config: Mapping, sweep: Mapping) -> list[tuple[int, dict]]:
  """The per-layer sweep: [(k, widths)] where widths grows index k of every field in `sweep.fields`.

  `sweep.add[i]` units are added to `fields[i][k]`; -1 means as many as `sweep.reference[k]` holds (default: the
  field itself, i.e. doubling layer k). `sweep.layers` lists the k's ('()' = every index of the first field).
  """
  fields = tuple(sweep.get("fields") or ())
  if not fields:
    raise GridError("sweep.fields is empty: name the width field(s) whose entry k grows")
  adds = tuple(sweep.get("add") or (-1,) * len(fields))
  if len(adds) != len(fields):
    raise GridError(f"sweep.add has {len(adds)} entries for {len(fields)} fields {fields}")
  for f in fields + ((sweep["reference"],) if sweep.get("reference") else ()):
    if f not in model_config or not isinstance(model_config[f], (tuple, list)):
      raise GridError(f"sweep field {f!r} is not a per-layer (tuple) field of config.model; "
                      f"tuple fields: {sorted(k for k, v in model_config.items() if isinstance(v, (tuple, list)))}")
  n = len(model_config[fields[0]])
  layers = tuple(sweep.get("layers") or range(n))
  points = []
  for k in layers:
    if not 0 <= k < n:
      raise GridError(f"sweep layer {k} is out of range for {fields[0]} of length {n}")
    widths = {}
    for field, add in zip(fields, adds):
      values = list(model_config[field])
      ref = model_config[sweep.get("reference") or field]
      values[k] += ref[k] if add == -1 else add
      widths[field] = tuple(values)
    points.append((int(k), widths))
  return points


def expand(grid: ml_collections.ConfigDict) -> list[tuple[str, str, int]]:
  """The grid's cells as (model, method, seed): models in name order (only those of `model_names` when it is set),
  then seeds, then methods with the baseline first (every other cell of that seed starts from it)."""
  methods = tuple(grid.methods)
  unknown = [m for m in methods if m not in METHODS and m != SWEEP]
  if unknown:
    raise GridError(f"unknown methods {unknown}; known: {sorted(METHODS) + [SWEEP]}")
  if not grid.seeds:
    raise GridError("grid.seeds is empty")
  only = tuple(grid.get("model_names") or ())
  missing = [m for m in only if m not in grid.models]
  if missing:
    raise GridError(f"model_names {missing} are not in the grid's models {sorted(grid.models)}")
  cells = []
  for model, spec in grid.models.items():
    if only and model not in only:
      continue
    names = []
    for m in methods:
      if m == SWEEP:
        if not spec.get("sweep") or not spec.sweep.get("fields"):
          logging.info("grid: model %s has no sweep; skipping it", model)
          continue
        base = load_config(_source(spec, SWEEP_METHOD.source, model))
        names += [f"sweep_k{k}" for k, _ in sweep_points(base.model, spec.sweep)]
      elif not spec.configs.get(METHODS[m].source):
        logging.info("grid: model %s has no %r config; skipping method %s", model, METHODS[m].source, m)
      else:
        names.append(m)
    if any(n != BASELINE for n in names) and BASELINE not in names:
      names.insert(0, BASELINE)  # every other method starts from it
    names.sort(key=lambda n: n != BASELINE)
    for seed in grid.seeds:
      cells += [(model, n, int(seed)) for n in names]
  return cells


def _source(spec, source: str, model: str) -> str:
  src = spec.configs.get(source)
  if not src:
    raise GridError(f"model {model} has no configs.{source}")
  return src


def cell_dir(workdir: str, model: str, method: str, seed: int) -> str:
  return os.path.join(workdir, model, method, f"seed{seed}")


def cell_config(grid: ml_collections.ConfigDict, workdir: str, model: str, method: str, seed: int
                ) -> ml_collections.ConfigDict:
  """The `experiment.run` config of one cell."""
  spec = grid.models[model]
  sweep_k = None
  if method.startswith("sweep_k"):
    recipe, sweep_k = SWEEP_METHOD, int(method[len("sweep_k"):])
  else:
    recipe = METHODS[method]
  config = load_config(_source(spec, recipe.source, model))
  epochs = spec.get("epochs_per_stage", -1)
  epochs = grid.epochs_per_stage if epochs is None or epochs < 0 else epochs
  original = list(config.stages)
  by_name = {st.name: st for st in original}
  missing = [n for n in recipe.stages if n not in by_name]
  if missing:
    raise GridError(f"{spec.configs[recipe.source]} has no stages {missing} (it has {list(by_name)}) for "
                    f"method {method}")
  # An empty start_from means "the previous stage" in the ORIGINAL list; make it explicit before selecting.
  for i, st in enumerate(original[1:], start=1):
    if not st.start_from:
      st.start_from = original[i - 1].name
  stages = [copy.deepcopy(by_name[n]) for n in recipe.stages]
  kept = [st.name for st in stages]
  for i, st in enumerate(stages):
    if i == 0:
      st.start_from = ""
    elif st.start_from not in kept[:i]:
      raise GridError(f"method {method}: stage {st.name} starts from {st.start_from!r}, which the cell does not "
                      f"run (it runs {kept})")
    if epochs >= 0:  # -1 keeps the config's own epochs
      st.num_epochs = epochs
    st.checkpoint = ""
  for i in range(1, recipe.continued + 1):
    more = copy.deepcopy(stages[-1])
    more.name, more.start_from, more.start_point = f"continued{i}", stages[-1].name, "best"
    stages.append(more)
  if recipe.from_baseline:
    stages[0].num_epochs = 0
    stages[0].checkpoint = cell_dir(os.path.abspath(workdir), model, BASELINE, seed)
  if sweep_k is not None:
    widths = dict(sweep_points(config.model, spec.sweep))[sweep_k]
    stages[1].widths = widths
    for key, value in (spec.sweep.get("dropin") or {}).items():
      config.dropin[key] = _format(value, k=sweep_k, layer=sweep_k + 1)
  with config.unlocked():
    config.stages = stages
    config.export_stage = stages[-1].name
    config.seed = int(seed)
    for section in ("data", "train"):
      for key, value in (grid.get(section) or {}).items():
        if value is not None and value != "":
          config[section][key] = value
  return config


def _format(value, **kw):
  if isinstance(value, str):
    return value.format(**kw)
  if isinstance(value, (tuple, list)):
    return type(value)(_format(v, **kw) for v in value)
  return value


def _flat(d: Mapping, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(_flat(v, f"{prefix}{k}."))
    elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
      for i, x in enumerate(v):
        out.update(_flat(x, f"{prefix}{k}[{i}]."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_differences(stored: Mapping, wanted: Mapping) -> list[str]:
  """Keys whose values differ between two config JSONs, ignoring `HOST_ONLY_KEYS`."""
  a, b = _flat(stored), _flat(wanted)
  # The baseline a cell loads is named by an absolute path; a moved grid folder is still the same grid.
  same = lambda k: (k in HOST_ONLY_KEYS or any(k.startswith(p) for p in HOST_ONLY_KEYS if p.endswith("."))
                    or (k.startswith("stages[") and k.endswith("].checkpoint")))
  return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and not same(k))


# ----------------------------------------------------------------------------------------------------------------
# Running.


def _as_json(config) -> dict:
  return json.loads(config.to_json_best_effort())


def run_cell(config: ml_collections.ConfigDict, workdir: str) -> tuple[dict, bool]:
  """Runs (or reuses, or resumes) one cell -> (results, ran)."""
  from jaxplastic import experiment  # pylint: disable=g-import-not-at-top  (heavy; tables/plots do not need it)
  results_path = os.path.join(workdir, "results.json")
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      stored = json.load(f)
    diff = config_differences(stored, _as_json(config))
    if diff:
      raise GridError(f"{workdir} was run with a different config ({', '.join(diff[:8])}); delete that cell "
                      "folder to rerun it, or use another --workdir")
    if os.path.exists(results_path):
      with open(results_path) as f:
        return json.load(f), False
  return experiment.run(config, workdir), True


def run(grid: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes) every cell of `grid` in `workdir`, then writes the tables and plots.

  Returns:
    {'cells': [{'model', 'method', 'seed', 'workdir', 'ran'}], 'rows': the table rows (`tables.build_rows`),
     'plots': [paths]}.
  """
  from jaxplastic import plots  # pylint: disable=g-import-not-at-top
  from jaxplastic import tables  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  cells = expand(grid)
  configs = [cell_config(grid, workdir, *c) for c in cells]  # every cell config is checked before any training
  ckpt_lib.write_json_atomic(os.path.join(workdir, "grid.json"), {
      "config": _as_json(grid), "cells": [{"model": m, "method": me, "seed": s} for m, me, s in cells]})
  done = []
  for (model, method, seed), config in zip(cells, configs):
    path = cell_dir(workdir, model, method, seed)
    logging.info("grid cell %s / %s / seed %d -> %s", model, method, seed, path)
    _, ran = run_cell(config, path)
    done.append({"model": model, "method": method, "seed": seed, "workdir": path, "ran": ran})
  rows = tables.write_tables(workdir, bootstrap_samples=grid.bootstrap_samples,
                             bootstrap_seed=grid.bootstrap_seed)
  written = plots.grid_plots(workdir)
  with open(os.path.join(workdir, "table.md")) as f:
    print(f.read())
  return {"cells": done, "rows": rows, "plots": written}


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {argv[1:]}")
  flags_ = flags.FLAGS
  run(flags_.config, flags_.workdir)


if __name__ == "__main__":
  import logging as pylogging  # pylint: disable=g-import-not-at-top

  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file("config", None, "Grid config (configs/grid_*.py).", lock_config=True)
  flags.DEFINE_string("workdir", None, "Grid folder: cells, table.md/csv and plots go here.")
  flags.mark_flags_as_required(["config", "workdir"])

  class _QuietLibraries:

    def filter(self, record):
      return record.levelno >= pylogging.WARNING or "orbax" not in record.pathname

  def _main(argv):
    absl_logging.get_absl_handler().python_handler.addFilter(_QuietLibraries())
    main(argv)

  app.run(_main)
