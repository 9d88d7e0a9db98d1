"""Plots from score files and grids: DET curves on probit axes, the per-layer dropin sweep (paper Fig. 5).

  python -m jaxplastic.plots det runs/a runs/b scores.txt --out det.png     # runs, crosseval folders or score files
  python -m jaxplastic.plots grid runs/grid_demo                            # det_<model>.png, sweep_<model>.png

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global backend change), so the
module is safe to import from notebooks and servers. Every function returns the Figure it drew, so tests can
read the plotted data back from the Line2D objects.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.special import ndtri

from jaxplastic import evaluation
from jaxplastic import tables

# DET axes as in the ASVspoof evaluation plan: normal deviates, ticks in percent.
DET_TICKS_PCT = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 40)
DET_LIMITS_PCT = (0.05, 60.0)
# Rates of exactly 0 or 1 have infinite normal deviates; they are drawn at this distance from 0 / 1.
_RATE_FLOOR = 1e-6


def probit(p) -> np.ndarray:
  """The normal deviate of a rate (0..1), clipped away from 0 and 1 so it stays finite."""
  return ndtri(np.clip(np.asarray(p, np.float64), _RATE_FLOOR, 1.0 - _RATE_FLOOR))


def _new_figure(size=(6.0, 6.0)) -> Figure:
  fig = Figure(figsize=size, dpi=120)
  FigureCanvasAgg(fig)
  return fig


def save(fig: Figure, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, bbox_inches="tight")
  return path


def det_plot(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], *, title: str = "") -> Figure:
  """DET curves of several systems on one probit plot, each with its EER point marked.

  Args:
    curves: (label, bona fide scores, spoof scores) per system; higher score = more bona fide.
    title: axes title.

  Returns:
    The figure. Curve lines carry gid 'det:<label>', EER markers gid 'eer:<label>'; the marker sits at
    (probit(EER), probit(EER)) with EER from `evaluation.compute_eer` (the official computation).
  """
  if not curves:
    raise ValueError("det_plot needs at least one curve")
  fig = _new_figure()
  ax = fig.add_subplot(1, 1, 1)
  for label, bona, spoof in curves:
    frr, far, _ = evaluation.compute_det_curve(bona, spoof)
    eer, _ = evaluation.compute_eer(bona, spoof)
    # Rates beyond the axes (e.g. 0 %) are drawn on the frame, so every curve stays visible.
    edge = np.asarray(DET_LIMITS_PCT) / 100.0
    (line,) = ax.plot(probit(np.clip(far, *edge)), probit(np.clip(frr, *edge)), lw=1.5,
                      label=f"{label} (EER {100 * eer:.2f} %)", gid=f"det:{label}")
    ax.plot([probit(eer)], [probit(eer)], "o", ms=6, color=line.get_color(), mec="black", gid=f"eer:{label}")
  lo, hi = probit(np.asarray(DET_LIMITS_PCT) / 100.0)
  ax.plot([lo, hi], [lo, hi], ":", color="gray", lw=0.8, gid="diagonal")
  ticks = probit(np.asarray(DET_TICKS_PCT) / 100.0)
  labels = [f"{t:g}" for t in DET_TICKS_PCT]
  ax.set_xticks(ticks, labels)
  ax.set_yticks(ticks, labels)
  ax.set_xlim(lo, hi)
  ax.set_ylim(lo, hi)
  ax.set_xlabel("False alarm rate: spoofs accepted (%)")
  ax.set_ylabel("Miss rate: bona fide rejected (%)")
  ax.grid(True, ls="--", lw=0.5, alpha=0.6)
  ax.set_aspect("equal")
  ax.legend(loc="lower left", fontsize=8)  # curves of weak detectors crowd the upper right
  if title:
    ax.set_title(title)
  return fig


def sweep_plot(points: Mapping[int, Sequence[float]], *, baseline: Sequence[float] | None = None,
               xlabel: str = "layer k receiving the new neurons (0-based)", title: str = "") -> Figure:
  """EER vs the layer that received the new neurons: each seed as a point, mean ± std (sample) as an error bar,
  and the baseline's mean ± std as a band.

  Args:
    points: {k: [eval EER % per seed]}.
    baseline: eval EER % of the baseline per seed (the same seeds), or None.

  Returns:
    The figure; per-seed points have gid 'seeds:<k>', the error bar's line gid 'mean', the baseline 'baseline'.
  """
  if not points:
    raise ValueError("sweep_plot needs at least one layer")
  fig = _new_figure((6.5, 4.0))
  ax = fig.add_subplot(1, 1, 1)
  ks = sorted(points)
  for k in ks:
    vals = np.asarray(points[k], np.float64)
    ax.plot(np.full(vals.size, k) + np.linspace(-0.08, 0.08, vals.size) * (vals.size > 1), vals, "o", ms=4,
            color="tab:blue", alpha=0.5, gid=f"seeds:{k}")
  stats = [tables.mean_std(points[k]) for k in ks]
  bars = ax.errorbar(ks, [m for m, _ in stats], yerr=[s for _, s in stats], fmt="s-", color="tab:blue", capsize=4,
                     label="dropin at layer k: mean ± std over seeds")
  bars.lines[0].set_gid("mean")
  if baseline:
    m, s = tables.mean_std(baseline)
    ax.axhline(m, color="black", lw=1, label="baseline: mean ± std", gid="baseline")
    ax.axhspan(m - s, m + s, color="gray", alpha=0.2)
  ax.set_xticks(ks)
  ax.set_xlabel(xlabel)
  ax.set_ylabel("eval EER (%)")
  ax.grid(True, ls="--", lw=0.5, alpha=0.6)
  ax.legend(fontsize=8)
  if title:
    ax.set_title(title)
  return fig


# ----------------------------------------------------------------------------------------------------------------
# Score files of runs.


def score_file_of(path: str, split: str = "eval") -> tuple[str, str]:
  """(score file, label) for a score file, a run workdir (its exported stage) or a crosseval output folder."""
  if os.path.isfile(path):
    return path, os.path.splitext(os.path.basename(path))[0]
  results = os.path.join(path, "results.json")
  if not os.path.exists(results):
    raise FileNotFoundError(f"{path} is neither a score file nor a folder with results.json (a run workdir or "
                            "a crosseval output)")
  with open(results) as f:
    res = json.load(f)
  name = os.path.basename(os.path.normpath(path))
  if "score_files" in res:  # crosseval
    if split not in res["score_files"]:
      raise KeyError(f"{results} has score files for {sorted(res['score_files'])}, not {split!r}")
    return os.path.join(path, res["score_files"][split]), f"{name} ({split})"
  cell = tables.Cell("", "", 0, path, res)
  return cell.score_path(split), f"{name} ({cell.record['stage']})"


def curve_from_file(path: str) -> tuple[np.ndarray, np.ndarray]:
  s = evaluation.read_score_file(path)
  return s["scores"][s["labels"] == 1], s["scores"][s["labels"] == 0]


def grid_plots(grid_dir: str) -> list[str]:
  """Writes det_<model>.png (every method of the first seed on the eval split) and, where sweep cells exist,
  sweep_<model>.png into `grid_dir`; returns the paths written."""
  cells = tables.find_cells(grid_dir)
  written = []
  for model in sorted({c.model for c in cells}):
    mine = [c for c in cells if c.model == model]
    first = min(c.seed for c in mine)
    curves = []
    for c in sorted((c for c in mine if c.seed == first and not c.method.startswith("sweep_")),
                    key=lambda c: tables.method_key(c.method)):
      curves.append((c.method, *curve_from_file(c.score_path("eval"))))
    if curves:
      written.append(save(det_plot(curves, title=f"{model}, eval, seed {first}"),
                          os.path.join(grid_dir, f"det_{model}.png")))
    sweep, base = sweep_series(mine)
    if sweep:
      written.append(save(sweep_plot(sweep, baseline=base or None, title=f"{model}: dropin into layer k"),
                          os.path.join(grid_dir, f"sweep_{model}.png")))
  return written


def sweep_series(cells: Sequence[tables.Cell]) -> tuple[dict[int, list[float]], list[float]]:
  """One model's sweep cells -> ({k: eval EER % per seed}, the baseline's eval EER % of the seeds the sweep ran),
  so that the baseline band and the points cover the same seeds."""
  cells = sorted(cells, key=lambda c: c.seed)
  sweep, seeds = {}, set()
  for c in cells:
    if c.method.startswith("sweep_k"):
      sweep.setdefault(int(c.method[len("sweep_k"):]), []).append(c.record["eval"]["eer"])
      seeds.add(c.seed)
  base = [c.record["eval"]["eer"] for c in cells if c.method == tables.BASELINE and c.seed in seeds]
  return sweep, base


def main(argv: Sequence[str]) -> int:
  p = argparse.ArgumentParser(prog="python -m jaxplastic.plots", description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True)
  d = sub.add_parser("det", help="DET curves of runs / score files on one plot")
  d.add_argument("inputs", nargs="+", help="score files, run workdirs or crosseval output folders")
  d.add_argument("--labels", nargs="*", default=None, help="one legend label per input")
  d.add_argument("--split", default="eval", help="split of a run's scores (dev, eval, or a crosseval split)")
  d.add_argument("--title", default="")
  d.add_argument("--out", required=True, help="PNG to write")
  g = sub.add_parser("grid", help="the grid's DET and sweep plots")
  g.add_argument("grid_dir")
  args = p.parse_args(argv)
  if args.command == "grid":
    for path in grid_plots(args.grid_dir):
      print(path)
    return 0
  if args.labels and len(args.labels) != len(args.inputs):
    p.error(f"{len(args.labels)} labels for {len(args.inputs)} inputs")
  curves = []
  for i, item in enumerate(args.inputs):
    path, label = score_file_of(item, args.split)
    curves.append((args.labels[i] if args.labels else label, *curve_from_file(path)))
  print(save(det_plot(curves, title=args.title), args.out))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
