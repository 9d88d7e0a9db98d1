"""DET and sweep plots: the data of the drawn lines and markers, read back from the matplotlib objects."""

import os

import numpy as np
import pytest
from scipy.stats import norm

from jaxplastic import evaluation
from jaxplastic import plots
from jaxplastic import tables


def _lines(fig):
  return {line.get_gid(): line for line in fig.axes[0].lines}


def test_det_eer_point_is_where_evaluation_says():
  rng = np.random.default_rng(0)
  systems = [("good", rng.normal(3.0, 1.0, 400), rng.normal(0.0, 1.0, 900)),
             ("weak", rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.2, 700))]
  fig = plots.det_plot(systems)
  lines = _lines(fig)
  for label, bona, spoof in systems:
    eer, _ = evaluation.compute_eer(bona, spoof)
    marker = lines[f"eer:{label}"]
    np.testing.assert_allclose(marker.get_xdata(), [norm.ppf(eer)], rtol=1e-12)
    np.testing.assert_allclose(marker.get_ydata(), [norm.ppf(eer)], rtol=1e-12)
    # The curve is the official DET curve on normal-deviate axes (false alarm on x, miss on y).
    frr, far, _ = evaluation.compute_det_curve(bona, spoof)
    inside = (far > 0.0005) & (far < 0.6) & (frr > 0.0005) & (frr < 0.6)
    assert inside.sum() > 100
    curve = lines[f"det:{label}"]
    np.testing.assert_allclose(curve.get_xdata()[inside], norm.ppf(far[inside]), rtol=1e-9)
    np.testing.assert_allclose(curve.get_ydata()[inside], norm.ppf(frr[inside]), rtol=1e-9)
    assert f"EER {100 * eer:.2f} %" in curve.get_label()
  # Ticks in percent at normal-deviate positions, as in the ASVspoof evaluation plan.
  ax = fig.axes[0]
  np.testing.assert_allclose(ax.get_xticks(), norm.ppf(np.asarray(plots.DET_TICKS_PCT) / 100), rtol=1e-12)
  assert [t.get_text() for t in ax.get_xticklabels()] == [f"{t:g}" for t in plots.DET_TICKS_PCT]


def test_sweep_plot_draws_every_seed_and_the_mean_with_sample_std():
  points = {0: [30.0, 34.0, 32.0], 2: [20.0, 22.0, 24.0]}
  fig = plots.sweep_plot(points, baseline=[40.0, 44.0])
  lines = _lines(fig)
  for k, vals in points.items():
    np.testing.assert_allclose(lines[f"seeds:{k}"].get_ydata(), vals)
    np.testing.assert_allclose(np.round(lines[f"seeds:{k}"].get_xdata()), [k] * 3)
  np.testing.assert_allclose(np.asarray(lines["mean"].get_xdata(), float), [0, 2])
  np.testing.assert_allclose(np.asarray(lines["mean"].get_ydata(), float), [32.0, 22.0])
  # Error bars: mean ± sample std (2.0 for both).
  segments = [c for c in fig.axes[0].collections if len(getattr(c, "get_segments", lambda: [])()) == 2][0]
  np.testing.assert_allclose([s[:, 1] for s in segments.get_segments()], [[30.0, 34.0], [20.0, 24.0]])
  np.testing.assert_allclose(np.asarray(lines["baseline"].get_ydata(), float), [42.0, 42.0])


def test_sweep_baseline_band_covers_the_seeds_the_sweep_ran():
  def cell(method, seed, eer):
    return tables.Cell("m", method, seed, f"/g/m/{method}/seed{seed}",
                       {"stages": [{"stage": "s", "eval": {"eer": eer}}], "exported_stage": "s"})
  cells = [cell("baseline", 44, 10.0), cell("baseline", 42, 30.0), cell("baseline", 43, 20.0),
           cell("sweep_k1", 43, 18.0), cell("sweep_k0", 42, 25.0), cell("sweep_k1", 42, 28.0),
           cell("dropin_frozen", 42, 5.0)]
  points, base = plots.sweep_series(cells)
  assert points == {0: [25.0], 1: [28.0, 18.0]}  # seed order
  assert base == [30.0, 20.0]  # seeds 42 and 43 only: seed 44 has no sweep cell


def test_det_cli_on_score_files_and_runs(tmp_path):
  rng = np.random.default_rng(1)
  paths = []
  for name, shift in (("a", 2.0), ("b", 0.5)):
    scores = np.concatenate([rng.normal(shift, 1, 50), rng.normal(0, 1, 60)])
    labels = np.array([1] * 50 + [0] * 60)
    path = str(tmp_path / f"{name}.txt")
    evaluation.write_score_file(path, [f"U{i}" for i in range(110)], ["-"] * 50 + ["A07"] * 60, labels, scores)
    paths.append(path)
  out = str(tmp_path / "det.png")
  assert plots.main(["det", *paths, "--labels", "sys A", "sys B", "--out", out]) == 0
  assert os.path.getsize(out) > 0
  with pytest.raises(SystemExit):
    plots.main(["det", *paths, "--labels", "only one", "--out", out])
  with pytest.raises(FileNotFoundError, match="neither a score file"):
    plots.score_file_of(str(tmp_path))
