"""Grid tables: per (model, method) EER mean ± std over seeds, relative change vs the same seed's baseline, and a
paired bootstrap that says whether a method's difference from the baseline is larger than the seed spread.

Everything here is a pure function of the files runs write (`results.json` and `scores/<i>_<stage>_<split>.txt`
in each cell `<grid>/<model>/<method>/seed<k>/`), so the tables can be rebuilt at any time:

  python -m jaxplastic.tables runs/grid_demo            # writes table.md, table.csv and cells.csv there

A cell's result is its exported stage (results.json `exported_stage`: the method's final model). EERs and
per-attack EERs are the run's own records (`evaluation.evaluate`, the official DET computation); the bootstrap
resamples the score files. Where the grid also ran the baseline for longer (`baseline_2x`, `baseline_3x`), each
method is compared, in a second table, with the baseline cell whose model had as many epochs behind it
(`lineage_epochs`, from the cells' config.json), and in a third with the baseline cell that dev EER picks among those
with at most as many epochs (the reference where training longer over-fits).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import sys
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from jaxplastic import evaluation

BASELINE = "baseline"
# Row order of the methods the grid knows; anything else (sweep points) follows in name order.
METHOD_ORDER = ("baseline", "baseline_2x", "baseline_3x", "dropin_frozen", "dropin_unfrozen", "plasticity", "lora")
_SEED_DIR = re.compile(r"seed(\d+)$")


class TableError(ValueError):
  """A grid folder or cell that cannot be tabulated (missing files, mismatched utterances)."""


@dataclasses.dataclass
class Cell:
  """One finished run of the grid: `results` is its results.json."""
  model: str
  method: str
  seed: int
  workdir: str
  results: dict

  @property
  def record(self) -> dict:
    """The record of the exported stage (the method's final model)."""
    name = self.results.get("exported_stage") or self.results["stages"][-1]["stage"]
    for rec in self.results["stages"]:
      if rec["stage"] == name:
        return rec
    raise TableError(f"{self.workdir}/results.json: exported stage {name!r} has no record")

  def score_path(self, split: str) -> str:
    rec = self.record
    return os.path.join(self.workdir, "scores", f"{rec['stage_index']}_{rec['stage']}_{split}.txt")

  def trained_records(self) -> list[dict]:
    """Records of the stages this cell trained (a loaded baseline has no epoch time)."""
    return [r for r in self.results["stages"] if r.get("epoch_seconds") is not None]

  def config(self) -> dict | None:
    """The cell's config.json (None where the folder has none)."""
    path = os.path.join(self.workdir, "config.json")
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)


def is_baseline_family(method: str) -> bool:
  """The baseline and the baseline trained longer (`baseline_2x`, ...): the references of the tables."""
  return method == BASELINE or method.startswith(BASELINE + "_")


def lineage_epochs(config: Mapping | None, loaded_epochs: int | None) -> int | None:
  """Epochs of training behind a cell's exported model, as configured: the exported stage's epochs plus those of
  the stages it starts from, back to a fresh start ("init" or a first stage). A first stage that loads a checkpoint
  counts `loaded_epochs` (the loaded model's own lineage; None: unknown, and so is the result)."""
  if not config or not config.get("stages"):
    return None
  stages = config["stages"]
  index = {st["name"]: i for i, st in enumerate(stages)}
  i = index.get(config.get("export_stage") or stages[-1]["name"], len(stages) - 1)
  total = 0
  while True:
    st = stages[i]
    total += int(st.get("num_epochs") or 0)
    if i == 0:
      if st.get("checkpoint"):
        return None if loaded_epochs is None else total + loaded_epochs
      return total
    if st.get("start_point") == "init":
      return total
    i = index[st["start_from"]] if st.get("start_from") else i - 1


def find_cells(grid_dir: str) -> list[Cell]:
  """Every finished cell `<grid_dir>/<model>/<method>/seed<k>/results.json`, sorted (model, method, seed)."""
  cells = []
  if not os.path.isdir(grid_dir):
    raise TableError(f"{grid_dir} is not a folder")
  for model in sorted(os.listdir(grid_dir)):
    mdir = os.path.join(grid_dir, model)
    if not os.path.isdir(mdir):
      continue
    for method in sorted(os.listdir(mdir)):
      for seed_dir in sorted(os.listdir(os.path.join(mdir, method)) if os.path.isdir(os.path.join(mdir, method))
                             else []):
        match = _SEED_DIR.fullmatch(seed_dir)
        path = os.path.join(mdir, method, seed_dir, "results.json")
        if match and os.path.exists(path):
          with open(path) as f:
            cells.append(Cell(model, method, int(match.group(1)), os.path.dirname(path), json.load(f)))
  return cells


def method_key(method: str) -> tuple:
  return (METHOD_ORDER.index(method), method) if method in METHOD_ORDER else (len(METHOD_ORDER), method)


# ----------------------------------------------------------------------------------------------------------------
# Statistics.


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
  arr = np.asarray(values, np.float64)
  if arr.size == 0:
    raise TableError("mean_std of no values")
  return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def relative_change(method_eer: float, baseline_eer: float) -> float | None:
  """(EER_method - EER_baseline) / EER_baseline, as a fraction; None when the baseline EER is 0."""
  return None if baseline_eer == 0 else (method_eer - baseline_eer) / baseline_eer


def paired_arrays(method: Mapping[str, Any], baseline: Mapping[str, Any], where: str = ""
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Aligns two score files (`evaluation.read_score_file` dicts) of the same utterances by utterance id ->
  (bona fide method, bona fide baseline, spoof method, spoof baseline) scores, in the same utterance order."""
  index = {u: i for i, u in enumerate(baseline["utt_ids"])}
  if set(index) != set(method["utt_ids"]):
    only_m = sorted(set(method["utt_ids"]) - set(index))[:3]
    only_b = sorted(set(index) - set(method["utt_ids"]))[:3]
    raise TableError(f"{where}: method and baseline scored different utterances (only in method: {only_m}, "
                     f"only in baseline: {only_b}); a paired comparison needs the same ones")
  order = np.asarray([index[u] for u in method["utt_ids"]], np.int64)
  labels = np.asarray(method["labels"])
  if not np.array_equal(labels, np.asarray(baseline["labels"])[order]):
    raise TableError(f"{where}: an utterance has different keys in the two score files")
  m, b = np.asarray(method["scores"], np.float64), np.asarray(baseline["scores"], np.float64)[order]
  bona = labels == 1
  return m[bona], b[bona], m[~bona], b[~bona]


def _eer_pct(bona: np.ndarray, spoof: np.ndarray) -> float:
  return 100.0 * evaluation.compute_eer(bona, spoof)[0]


def paired_bootstrap(pairs: Sequence[tuple], *, samples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
  """Paired bootstrap over seeds AND utterances of the EER difference method - baseline.

  Each replicate draws S seeds with replacement; for each drawn seed it draws that seed's bona fide and spoof
  utterances with replacement (stratified, so both classes keep their counts) and recomputes both EERs on the SAME
  drawn utterances (method and baseline scored the same ones); the replicate's statistic is the mean over the
  drawn seeds of EER_m - EER_b (percentage points) and of (EER_m - EER_b) / EER_b. The interval is the percentile
  interval at `level`.

  Args:
    pairs: one (bona_m, bona_b, spoof_m, spoof_b) tuple per seed (`paired_arrays`).
    samples: bootstrap replicates.
    seed: RNG seed; the result is a deterministic function of the inputs and this seed.
    level: coverage of the interval.

  Returns:
    {'diff_pp', 'diff_low', 'diff_high', 'rel', 'rel_low', 'rel_high', 'excludes_zero', 'samples', 'seeds',
     'level'}: the point estimates are computed on the data as they are; rel* are fractions (None when a
    baseline EER is 0); excludes_zero refers to the EER difference's interval.
  """
  if not pairs:
    raise TableError("paired_bootstrap needs at least one seed")
  if samples < 1:
    raise ValueError(f"samples must be >= 1, got {samples}")
  point = [(_eer_pct(bm, sm), _eer_pct(bb, sb)) for bm, bb, sm, sb in pairs]
  diff = float(np.mean([m - b for m, b in point]))
  rel_ok = all(b > 0 for _, b in point)
  rel = float(np.mean([(m - b) / b for m, b in point])) if rel_ok else None
  rng = np.random.default_rng(seed)
  diffs = np.empty(samples)
  rels = np.full(samples, np.nan)
  n = len(pairs)
  for r in range(samples):
    d, q = [], []
    for s in rng.integers(0, n, size=n):
      bm, bb, sm, sb = pairs[s]
      ib = rng.integers(0, bm.size, size=bm.size)
      js = rng.integers(0, sm.size, size=sm.size)
      em, eb = _eer_pct(bm[ib], sm[js]), _eer_pct(bb[ib], sb[js])
      d.append(em - eb)
      q.append((em - eb) / eb if eb > 0 else np.nan)
    diffs[r] = np.mean(d)
    rels[r] = np.mean(q)
  tail = 100.0 * (1.0 - level) / 2.0
  low, high = np.percentile(diffs, [tail, 100.0 - tail])
  out = {"diff_pp": diff, "diff_low": float(low), "diff_high": float(high), "rel": rel, "rel_low": None,
         "rel_high": None, "excludes_zero": bool(low > 0 or high < 0), "samples": int(samples), "seeds": n,
         "level": level}
  if rel_ok and np.all(np.isfinite(rels)):
    out["rel_low"], out["rel_high"] = (float(x) for x in np.percentile(rels, [tail, 100.0 - tail]))
  return out


# ----------------------------------------------------------------------------------------------------------------
# Rows.


def _metric(rec: Mapping, split: str, key: str = "eer"):
  return (rec.get(split) or {}).get(key)


def _stat(values: Iterable) -> dict:
  vals = [v for v in values if v is not None]
  if not vals:
    return {"mean": None, "std": None, "values": []}
  m, s = mean_std(vals)
  return {"mean": m, "std": s, "values": vals}


def cell_row(cell: Cell, baseline: Cell | None) -> dict:
  """Per-cell numbers (one line of cells.csv)."""
  rec = cell.record
  row = {"model": cell.model, "method": cell.method, "seed": cell.seed, "stage": rec["stage"],
         "dev_eer": _metric(rec, "dev"), "eval_eer": _metric(rec, "eval"),
         "eval_min_tdcf": _metric(rec, "eval", "min_tdcf"),
         "dev_eer_trimmed": _metric(rec, "dev_trimmed"), "eval_eer_trimmed": _metric(rec, "eval_trimmed"),
         "params_total": rec.get("params_total"), "params_trainable": rec.get("params_trainable"),
         "train_seconds": sum(r.get("stage_seconds") or 0.0 for r in cell.trained_records()),
         "baseline_eval_eer": None, "rel_eval_change": None}
  for attack, m in sorted(((rec.get("eval") or {}).get("per_attack") or {}).items()):
    row[f"eval_eer_{attack}"] = m["eer"]
  for r in cell.trained_records():
    row[f"epoch_s_{r['stage']}"] = r.get("epoch_seconds")
    row[f"step_ms_{r['stage']}"] = None if r.get("step_seconds") is None else 1e3 * r["step_seconds"]
    if r.get("peak_memory_bytes"):
      row[f"peak_mib_{r['stage']}"] = r["peak_memory_bytes"] / 2 ** 20
      row["peak_memory_kind"] = r.get("peak_memory_kind")
  if baseline is not None and row["eval_eer"] is not None:
    base = _metric(baseline.record, "eval")
    row["baseline_eval_eer"] = base
    row["rel_eval_change"] = relative_change(row["eval_eer"], base)
  return row


def build_rows(cells: Sequence[Cell], *, bootstrap_samples: int = 1000, bootstrap_seed: int = 0
               ) -> tuple[list[dict], list[dict]]:
  """(summary rows per (model, method), cell rows) for `cells`; the baseline of a cell is the cell of the same
  model and seed whose method is 'baseline'."""
  baselines = {(c.model, c.seed): c for c in cells if c.method == BASELINE}
  epochs = _lineages(cells, baselines)
  cell_rows = []
  groups: dict[tuple, list[tuple[Cell, dict]]] = {}
  for c in sorted(cells, key=lambda c: (c.model, method_key(c.method), c.seed)):
    base = baselines.get((c.model, c.seed)) if c.method != BASELINE else None
    row = cell_row(c, base)
    row["epochs"] = epochs[id(c)]
    cell_rows.append(row)
    groups.setdefault((c.model, c.method), []).append((c, row))
  rows = []
  for (model, method), members in groups.items():
    crow = [r for _, r in members]
    out: dict[str, Any] = {"model": model, "method": method, "stage": crow[0]["stage"],
                           "seeds": [r["seed"] for r in crow]}
    for key in ("dev_eer", "eval_eer", "eval_min_tdcf", "dev_eer_trimmed", "eval_eer_trimmed", "train_seconds"):
      out[key] = _stat(r[key] for r in crow)
    out["rel_eval_change"] = _rel_stat(r["rel_eval_change"] for r in crow)
    prefixes = ("epoch_s_", "step_ms_", "peak_mib_", "eval_eer_")
    per_stage = sorted({k for r in crow for k in r if k.startswith(prefixes)} - {"eval_eer_trimmed"})
    for key in per_stage:
      out[key] = _stat(r.get(key) for r in crow)
    lineage = {r["epochs"] for r in crow}
    out["epochs"] = lineage.pop() if len(lineage) == 1 else None
    out["params_total"] = crow[0]["params_total"]
    out["params_trainable"] = crow[0]["params_trainable"]
    out["peak_memory_kind"] = sorted({r["peak_memory_kind"] for r in crow if r.get("peak_memory_kind")})
    out["paired"] = None
    if method != BASELINE:
      refs = [(c, baselines[c.model, c.seed]) for c, _ in members if (c.model, c.seed) in baselines]
      out["paired"] = _paired_against(refs, bootstrap_samples, bootstrap_seed)
    out.update(_against_as_long(members, cells, epochs, bootstrap_samples, bootstrap_seed))
    out.update(_against_dev_selected(members, cells, epochs, bootstrap_samples, bootstrap_seed))
    rows.append(out)
  return rows, cell_rows


def _rel_stat(values: Iterable) -> dict | None:
  """Mean, min, max and values of relative changes (None entries dropped; None when none is left)."""
  rels = [v for v in values if v is not None]
  return None if not rels else {"mean": float(np.mean(rels)), "min": float(np.min(rels)),
                                "max": float(np.max(rels)), "values": rels}


def _paired_against(refs: Sequence[tuple[Cell, Cell]], bootstrap_samples: int, bootstrap_seed: int) -> dict | None:
  """`paired_bootstrap` of each (cell, reference cell)'s eval scores; None without pairs or replicates."""
  pairs = [paired_arrays(evaluation.read_score_file(c.score_path("eval")),
                         evaluation.read_score_file(b.score_path("eval")), f"{c.workdir} vs {b.workdir}")
           for c, b in refs]
  return paired_bootstrap(pairs, samples=bootstrap_samples, seed=bootstrap_seed) if pairs and bootstrap_samples > 0 \
      else None


def _lineages(cells: Sequence[Cell], baselines: Mapping) -> dict[int, int | None]:
  """id(cell) -> `lineage_epochs`, a loaded first stage counting the same seed's baseline cell's."""
  configs = {id(c): c.config() for c in cells}
  own = {i: lineage_epochs(config, None) for i, config in configs.items()}
  out = {}
  for c in cells:
    base = baselines.get((c.model, c.seed))
    loaded = own[id(base)] if base is not None and base is not c else None
    out[id(c)] = lineage_epochs(configs[id(c)], loaded)
  return out


def _against_as_long(members, cells, epochs, bootstrap_samples, bootstrap_seed) -> dict:
  """The comparison of a method with the baseline-family cell of the same seed trained as many epochs
  ('as_long_*' keys; empty where that is the plain baseline, or where some seed has no such cell)."""
  method = members[0][0].method
  if is_baseline_family(method):
    return {}
  refs = []
  for c, _ in members:
    same = [b for b in cells if b.model == c.model and b.seed == c.seed and is_baseline_family(b.method)
            and epochs[id(c)] is not None and epochs[id(b)] == epochs[id(c)]]
    if len(same) != 1:
      return {}
    refs.append((c, same[0]))
  names = {b.method for _, b in refs}
  if len(names) != 1 or names == {BASELINE}:
    return {}
  return {"as_long_reference": names.pop(),
          **_against_refs("as_long", refs, bootstrap_samples, bootstrap_seed)}


def _against_refs(prefix: str, refs: Sequence[tuple[Cell, Cell]], bootstrap_samples: int, bootstrap_seed: int
                  ) -> dict:
  """'<prefix>_eval_eer', '_rel_eval_change' and '_paired' of (cell, reference cell) pairs, one per seed."""
  return {f"{prefix}_eval_eer": _stat(_metric(b.record, "eval") for _, b in refs),
          f"{prefix}_rel_eval_change": _rel_stat(relative_change(_metric(c.record, "eval"), _metric(b.record, "eval"))
                                                 for c, b in refs),
          f"{prefix}_paired": _paired_against(refs, bootstrap_samples, bootstrap_seed)}


def _against_dev_selected(members, cells, epochs, bootstrap_samples, bootstrap_seed) -> dict:
  """The comparison of a method with the baseline a practitioner with the same budget would keep: per seed, the
  baseline-family cell with at most the method's epochs and the lowest dev EER (ties: fewer epochs)
  ('dev_selected_*' keys; empty for the baseline family, where a seed has no epoch count, or where no seed has a
  candidate besides the plain baseline, i.e. the grid ran no control)."""
  if is_baseline_family(members[0][0].method):
    return {}
  refs, any_control = [], False
  for c, _ in members:
    if epochs[id(c)] is None:
      return {}
    pool = [b for b in cells if b.model == c.model and b.seed == c.seed and is_baseline_family(b.method)
            and epochs[id(b)] is not None and epochs[id(b)] <= epochs[id(c)]
            and _metric(b.record, "dev") is not None]
    if not pool:
      return {}
    any_control |= any(b.method != BASELINE for b in pool)
    refs.append((c, min(pool, key=lambda b: (_metric(b.record, "dev"), epochs[id(b)]))))
  if not any_control:
    return {}
  return {"dev_selected_references": [b.method for _, b in refs],
          **_against_refs("dev_selected", refs, bootstrap_samples, bootstrap_seed)}


# ----------------------------------------------------------------------------------------------------------------
# Formatting.


def _pm(stat: Mapping | None, digits: int = 2) -> str:
  if not stat or stat.get("mean") is None:
    return "–"
  if len(stat["values"]) == 1:
    return f"{stat['mean']:.{digits}f}"
  return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _per_seed(stat: Mapping | None) -> str:
  return " ".join(f"{v:.2f}" for v in (stat or {}).get("values", [])) or "–"


def _rel(rel: Mapping | None) -> str:
  if not rel:
    return "–"
  return f"{100 * rel['mean']:+.1f} % [{100 * rel['min']:+.1f}, {100 * rel['max']:+.1f}]"


def _paired(p: Mapping | None) -> str:
  if not p:
    return "–"
  verdict = "excludes 0" if p["excludes_zero"] else "includes 0"
  return f"{p['diff_pp']:+.2f} [{p['diff_low']:+.2f}, {p['diff_high']:+.2f}] ({verdict})"


def _count(n) -> str:
  if n is None:
    return "–"
  return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e4 else str(n)


def _by_stage(row: Mapping, prefix: str, digits: int = 0) -> str:
  parts = [f"{k[len(prefix):]} {row[k]['mean']:.{digits}f}" for k in sorted(row, key=_stage_order(row))
           if k.startswith(prefix) and row[k]["mean"] is not None]
  return " · ".join(parts) or "–"


def _stage_order(row):
  order = {"baseline": 0, "dropin": 1, "dropin_unfrozen": 2, "grown": 3, "pruned": 4}
  return lambda k: (order.get(k.split("_", 2)[-1], 9), k)


def _reference_table(rows: Sequence[Mapping], prefix: str, name_head: str, name, title: str) -> str:
  """A table of the rows that have a `<prefix>_*` comparison with another reference than the plain baseline."""
  rows = [r for r in rows if name(r)]
  if not rows:
    return ""
  head = ["model", "method", "epochs", name_head, "reference eval EER %", "method eval EER %",
          "rel. eval EER change, mean [range]", "paired Δ eval EER pp [95 % CI]"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    lines.append("| " + " | ".join([r["model"], r["method"], str(r["epochs"]), name(r), _pm(r[f"{prefix}_eval_eer"]),
                                     _pm(r["eval_eer"]), _rel(r[f"{prefix}_rel_eval_change"]),
                                     _paired(r[f"{prefix}_paired"])]) + " |")
  return f"\n\n{title}:\n\n" + "\n".join(lines)


def markdown(rows: Sequence[Mapping]) -> str:
  """table.md: the main table, then per-attack eval EERs, then notes."""
  has_trim = any(r["eval_eer_trimmed"]["mean"] is not None for r in rows)
  has_tdcf = any(r["eval_min_tdcf"]["mean"] is not None for r in rows)
  head = ["model", "method", "seeds", "dev EER %", "eval EER %", "eval EER per seed",
          "rel. eval EER change, mean [range]", "paired Δ eval EER pp [95 % CI]"]
  head += ["eval min t-DCF"] * has_tdcf + ["eval EER % trimmed", "dev EER % trimmed"] * has_trim
  head += ["trainable / total params", "epoch s", "step ms", "peak MiB", "train s"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = [r["model"], r["method"], str(len(r["seeds"])), _pm(r["dev_eer"]), _pm(r["eval_eer"]),
             _per_seed(r["eval_eer"]), _rel(r["rel_eval_change"]) if r["method"] != BASELINE else "(reference)",
             _paired(r["paired"]) if r["method"] != BASELINE else "–"]
    cells += [_pm(r["eval_min_tdcf"], 4)] * has_tdcf
    cells += [_pm(r["eval_eer_trimmed"]), _pm(r["dev_eer_trimmed"])] * has_trim
    cells += [f"{_count(r['params_trainable'])} / {_count(r['params_total'])}", _by_stage(r, "epoch_s_", 1),
              _by_stage(r, "step_ms_"), _by_stage(r, "peak_mib_"), _pm(r["train_seconds"], 0)]
    lines.append("| " + " | ".join(cells) + " |")
  attacks = sorted({k[len("eval_eer_"):] for r in rows for k in r
                    if k.startswith("eval_eer_") and k != "eval_eer_trimmed"})
  out = "\n".join(lines)
  if attacks:
    ahead = ["model", "method"] + attacks
    alines = ["| " + " | ".join(ahead) + " |", "|" + "---|" * len(ahead)]
    for r in rows:
      alines.append("| " + " | ".join([r["model"], r["method"]] + [_pm(r.get(f"eval_eer_{a}")) for a in attacks])
                    + " |")
    out += "\n\nPer-attack eval EER % (all eval bona fide vs that attack), mean ± std over seeds:\n\n"
    out += "\n".join(alines)
  out += _reference_table(
      rows, "as_long", "reference", lambda r: r.get("as_long_reference"),
      "Against the baseline trained as long: the same seed's baseline-family cell whose model has as many epochs "
      "behind it (the baseline continued in stages of the same budget, optimizer moments restarting at each, as a "
      "method's stages do), so the difference is the method's, not its extra epochs'")
  out += _reference_table(
      rows, "dev_selected", "reference per seed", lambda r: " ".join(r.get("dev_selected_references") or ()),
      "Against the baseline picked by dev EER: per seed, of the baseline-family cells with at most the method's "
      "epochs behind them, the one with the lowest dev EER (what the same budget buys with early stopping on dev; "
      "the reference when training longer over-fits)")
  kinds = sorted({k for r in rows for k in r["peak_memory_kind"]})
  samples = next((r["paired"]["samples"] for r in rows if r["paired"]), None)
  out += ("\n\nEach cell's result is its exported stage (the method's final model), best checkpoint by dev EER. "
          "Relative change = (EER_method − EER_baseline) / EER_baseline per seed, against the same seed's "
          "baseline cell. Paired Δ: mean over seeds of EER_method − EER_baseline (percentage points) with a "
          f"95 % paired bootstrap interval ({samples} replicates over seeds and, within each seed, stratified "
          "over eval utterances, both models scored on the same draws); 'excludes 0' means the difference is "
          "larger than the seed and utterance spread. Epoch s, step ms and peak MiB are per trained stage"
          + (f"; peak memory is {', '.join(kinds)}." if kinds else ".") + "\n")
  return out


def _flat(row: Mapping) -> dict:
  out = {}
  for k, v in row.items():
    if isinstance(v, dict) and "mean" in v:
      out[f"{k}_mean"] = v["mean"]
      if "std" in v:
        out[f"{k}_std"] = v["std"]
      if "min" in v:
        out[f"{k}_min"], out[f"{k}_max"] = v["min"], v["max"]
      out[f"{k}_per_seed"] = " ".join(f"{x:.6g}" for x in v["values"])
    elif k in ("paired", "as_long_paired", "dev_selected_paired"):
      for pk in ("diff_pp", "diff_low", "diff_high", "rel", "rel_low", "rel_high", "excludes_zero", "samples"):
        out[f"{k}_{pk}"] = None if v is None else v[pk]
    elif isinstance(v, (list, tuple)):
      out[k] = " ".join(str(x) for x in v)
    else:
      out[k] = v
  return out


def to_csv(rows: Sequence[Mapping]) -> str:
  flat = [_flat(r) for r in rows]
  keys = list(dict.fromkeys(k for r in flat for k in r))
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
  w.writeheader()
  for r in flat:
    w.writerow({k: "" if r.get(k) is None else r[k] for k in keys})
  return buf.getvalue()


def write_tables(grid_dir: str, *, bootstrap_samples: int = 1000, bootstrap_seed: int = 0) -> list[dict]:
  """Builds the tables of every finished cell of `grid_dir`: writes table.md, table.csv, cells.csv and
  table.json there; returns the summary rows."""
  cells = find_cells(grid_dir)
  if not cells:
    raise TableError(f"no finished cells (<model>/<method>/seed<k>/results.json) under {grid_dir}")
  rows, cell_rows = build_rows(cells, bootstrap_samples=bootstrap_samples, bootstrap_seed=bootstrap_seed)
  with open(os.path.join(grid_dir, "table.md"), "w") as f:
    f.write(markdown(rows))
  with open(os.path.join(grid_dir, "table.csv"), "w") as f:
    f.write(to_csv(rows))
  with open(os.path.join(grid_dir, "cells.csv"), "w") as f:
    f.write(to_csv(cell_rows))
  with open(os.path.join(grid_dir, "table.json"), "w") as f:
    json.dump(rows, f, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else o)
  return rows


def main(argv: Sequence[str]) -> int:
  import argparse  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(prog="python -m jaxplastic.tables", description=__doc__.split("\n\n")[0])
  p.add_argument("grid_dir")
  p.add_argument("--bootstrap_samples", type=int, default=1000)
  p.add_argument("--bootstrap_seed", type=int, default=0)
  args = p.parse_args(argv)
  write_tables(args.grid_dir, bootstrap_samples=args.bootstrap_samples, bootstrap_seed=args.bootstrap_seed)
  with open(os.path.join(args.grid_dir, "table.md")) as f:
    print(f.read())
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
