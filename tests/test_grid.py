"""The grid's table builder on synthetic score files (hand-computed EERs, means, stds, relative change, the paired
bootstrap interval), and the grid end to end on a tiny config: cells, reuse of finished cells, resume."""

import json
import os

import numpy as np
import pytest

try:
  from tests import fixtures_data as fx
except ImportError:
  import fixtures_data as fx

from jaxplastic import evaluation
from jaxplastic import tables

SPOOF = [1.0, 2.0, 3.0, 4.0]          # attacks A1, A1, A2, A2
ATTACKS = ["A1", "A1", "A2", "A2"]
# Bona fide scores against SPOOF and their EER by the official DET rule (sort all 8 scores; after rejecting the k
# lowest, frr = bona fide among them / 4, far = spoofs above them / 4; EER = (frr + far) / 2 at the first k
# minimising |frr - far|):
BONA = {
    0.0: [5.0, 6.0, 7.0, 8.0],     # all above every spoof: k = 4 gives frr = far = 0
    25.0: [2.5, 6.0, 7.0, 8.0],    # 1s 2s 2.5b 3s | ...: k = 4 gives frr = 1/4, far = 1/4
    50.0: [0.5, 1.5, 7.0, 8.0],    # .5b 1s 1.5b 2s | ...: k = 4 gives frr = 2/4, far = 2/4
    75.0: [0.5, 0.6, 0.7, 8.0],    # .5b .6b .7b 1s | ...: k = 4 gives frr = 3/4, far = 3/4
    100.0: [-4.0, -3.0, -2.0, -1.0],  # all below every spoof: k = 4 gives frr = 1, far = 1
}


def test_hand_computed_eers_match_the_official_computation():
  for eer, bona in BONA.items():
    assert 100 * evaluation.compute_eer(bona, SPOOF)[0] == eer


def _write_cell(grid, model, method, seed, eval_eer, dev_eer, *, stage="baseline", index=0, epoch_s=2.0,
                peak=2 ** 30, trainable=100, total=100):
  """A finished cell as the driver writes it: results.json and the exported stage's score files."""
  workdir = os.path.join(grid, model, method, f"seed{seed}")
  os.makedirs(os.path.join(workdir, "scores"), exist_ok=True)
  rec = {"stage": stage, "stage_index": index, "params_total": total, "params_trainable": trainable,
         "epoch_seconds": epoch_s, "step_seconds": 0.01, "peak_memory_bytes": peak,
         "peak_memory_kind": "process peak RSS", "stage_seconds": 10.0}
  for split, eer in (("dev", dev_eer), ("eval", eval_eer)):
    scores = np.asarray(BONA[eer] + SPOOF)
    labels = np.asarray([1] * 4 + [0] * 4)
    attacks = ["-"] * 4 + ATTACKS
    utts = [f"U{i}" for i in range(8)]
    rec[split] = evaluation.evaluate(scores, labels, attacks)
    evaluation.write_score_file(os.path.join(workdir, "scores", f"{index}_{stage}_{split}.txt"), utts, attacks,
                                labels, scores)
  stages = [rec] if index == 0 else [dict(rec, stage="baseline", stage_index=0, epoch_seconds=None), rec]
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"stages": stages, "exported_stage": stage}, f)
  return workdir


@pytest.fixture
def synthetic_grid(tmp_path):
  grid = str(tmp_path / "grid")
  for seed, base, drop in ((1, 50.0, 25.0), (2, 50.0, 0.0), (3, 25.0, 25.0)):
    _write_cell(grid, "m", "baseline", seed, base, dev_eer=base)
    _write_cell(grid, "m", "dropin_frozen", seed, drop, dev_eer=75.0, stage="dropin", index=1,
                epoch_s=1.0 + seed, peak=2 * 2 ** 30, trainable=40, total=140)
  return grid


def test_table_means_stds_and_relative_change(synthetic_grid):
  rows = tables.write_tables(synthetic_grid, bootstrap_samples=200, bootstrap_seed=0)
  base, drop = rows
  assert (base["method"], drop["method"]) == ("baseline", "dropin_frozen")
  # Baseline eval EERs 50, 50, 25: mean 125/3; deviations 25/3, 25/3, -50/3 -> sample variance
  # (625 + 625 + 2500) / 9 / 2 = 208.33, std 14.434.
  assert base["eval_eer"]["values"] == [50.0, 50.0, 25.0]
  assert base["eval_eer"]["mean"] == pytest.approx(125 / 3)
  assert base["eval_eer"]["std"] == pytest.approx((3750 / 18) ** 0.5)
  # Dropin 25, 0, 25: mean 50/3, the same spread.
  assert drop["eval_eer"]["mean"] == pytest.approx(50 / 3)
  assert drop["eval_eer"]["std"] == pytest.approx((3750 / 18) ** 0.5)
  assert drop["dev_eer"]["mean"] == 75.0 and drop["dev_eer"]["std"] == 0.0
  # Relative change per seed vs the same seed's baseline: (25-50)/50 = -0.5, (0-50)/50 = -1, (25-25)/25 = 0.
  assert drop["rel_eval_change"]["values"] == [-0.5, -1.0, 0.0]
  assert drop["rel_eval_change"]["mean"] == pytest.approx(-0.5)
  assert (drop["rel_eval_change"]["min"], drop["rel_eval_change"]["max"]) == (-1.0, 0.0)
  assert base["rel_eval_change"] is None and base["paired"] is None
  # Paired point estimate: mean of -25, -50, 0 percentage points.
  assert drop["paired"]["diff_pp"] == pytest.approx(-25.0)
  assert drop["paired"]["rel"] == pytest.approx(-0.5)
  # Efficiency columns come from the exported stage (and per trained stage).
  assert (drop["params_trainable"], drop["params_total"]) == (40, 140)
  assert drop["epoch_s_dropin"]["mean"] == pytest.approx(3.0)
  assert drop["peak_mib_dropin"]["mean"] == 2048.0
  assert "epoch_s_baseline" not in drop  # the loaded baseline stage trained nothing
  # Per attack: A1 = {1, 2} and A2 = {3, 4} against each seed's bona fide scores, as the records say.
  assert drop["eval_eer_A1"]["values"] == [0.0, 0.0, 0.0]
  md = open(os.path.join(synthetic_grid, "table.md")).read()
  assert "| m | dropin_frozen | 3 | 75.00 ± 0.00 | 16.67 ± 14.43 | 25.00 0.00 25.00 | -50.0 % [-100.0, +0.0]" in md
  with open(os.path.join(synthetic_grid, "table.csv")) as f:
    header = f.readline().strip().split(",")
    values = dict(zip(header, f.readlines()[1].strip().split(",")))
  assert float(values["eval_eer_mean"]) == pytest.approx(50 / 3)
  assert float(values["rel_eval_change_mean"]) == pytest.approx(-0.5)
  assert values["eval_eer_per_seed"] == "25 0 25"
  assert len(open(os.path.join(synthetic_grid, "cells.csv")).readlines()) == 1 + 6


def test_trimmed_eers_are_tabulated_next_to_untrimmed(synthetic_grid):
  path = os.path.join(synthetic_grid, "m", "baseline", "seed1", "results.json")
  res = json.load(open(path))
  res["stages"][0]["eval_trimmed"] = {"eer": 40.0}
  json.dump(res, open(path, "w"))
  rows = tables.write_tables(synthetic_grid, bootstrap_samples=10)
  assert rows[0]["eval_eer_trimmed"]["values"] == [40.0]
  assert "eval EER % trimmed" in open(os.path.join(synthetic_grid, "table.md")).read()


def _pair(eer_m, eer_b):
  bm, bb = np.asarray(BONA[eer_m]), np.asarray(BONA[eer_b])
  s = np.asarray(SPOOF)
  return bm, bb, s, s.copy()


def test_paired_bootstrap_interval_hand_computed():
  # Seed 1: method perfect (0 %), baseline inverted (100 %) under ANY stratified resample -> difference -100.
  # Seed 2: both perfect -> 0. Resampling the two seeds gives a mean of -100, -50 or 0 with probabilities
  # 1/4, 1/2, 1/4, so the 95 % percentile interval is [-100, 0]: it includes 0.
  out = tables.paired_bootstrap([_pair(0.0, 100.0), _pair(0.0, 0.0)], samples=1000, seed=0)
  assert out["diff_pp"] == -50.0
  assert (out["diff_low"], out["diff_high"]) == (-100.0, 0.0)
  assert not out["excludes_zero"]
  assert out["rel"] is None  # seed 2's baseline EER is 0: no relative change
  # Three seeds that all lose 100 points: the interval is that point and excludes 0.
  out = tables.paired_bootstrap([_pair(0.0, 100.0)] * 3, samples=200, seed=0)
  assert (out["diff_low"], out["diff_high"], out["excludes_zero"]) == (-100.0, -100.0, True)
  assert (out["rel"], out["rel_low"], out["rel_high"]) == (-1.0, -1.0, -1.0)


def test_paired_bootstrap_resamples_method_and_baseline_jointly():
  """Identical systems differ by exactly 0 on every joint draw; drawing their utterances independently would
  spread the difference. Deterministic given the seed."""
  rng = np.random.default_rng(5)
  bona, spoof = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 40)
  same = (bona, bona.copy(), spoof, spoof.copy())
  out = tables.paired_bootstrap([same, same], samples=300, seed=1)
  assert (out["diff_low"], out["diff_high"]) == (0.0, 0.0)
  noisy = (bona + rng.normal(0, 0.5, 40), bona, spoof + rng.normal(0, 0.5, 40), spoof)
  a = tables.paired_bootstrap([noisy], samples=300, seed=1)
  assert a == tables.paired_bootstrap([noisy], samples=300, seed=1)
  assert a["diff_low"] < a["diff_pp"] < a["diff_high"]
  assert a != tables.paired_bootstrap([noisy], samples=300, seed=2)


def test_paired_arrays_align_by_utterance_and_refuse_different_sets():
  base = {"utt_ids": ["a", "b", "c"], "labels": np.array([1, 0, 1]), "scores": np.array([1.0, 2.0, 3.0])}
  meth = {"utt_ids": ["c", "a", "b"], "labels": np.array([1, 1, 0]), "scores": np.array([30.0, 10.0, 20.0])}
  bm, bb, sm, sb = tables.paired_arrays(meth, base)
  np.testing.assert_array_equal(bm, [30.0, 10.0])
  np.testing.assert_array_equal(bb, [3.0, 1.0])
  np.testing.assert_array_equal(sm, [20.0])
  np.testing.assert_array_equal(sb, [2.0])
  with pytest.raises(tables.TableError, match="different utterances"):
    tables.paired_arrays(dict(meth, utt_ids=["c", "a", "x"]), base)


# ----------------------------------------------------------------------------------------------------------------
# Cells (no training).

from configs import grid_demo  # noqa: E402
from jaxplastic import experiment  # noqa: E402
from jaxplastic import grid  # noqa: E402


def test_every_demo_grid_cell_is_a_valid_experiment(tmp_path):
  for arg in ("main", "sweep", "wav2vec"):
    g = grid_demo.get_config(arg)
    cells = grid.expand(g)
    for model, method, seed in cells:
      config = grid.cell_config(g, str(tmp_path), model, method, seed)
      experiment.validate(config)
      assert config.seed == seed and config.export_stage == config.stages[-1].name
      assert all(st.num_epochs == g.models[model].epochs_per_stage for st in config.stages[1:])
      if method == "baseline":
        assert [st.name for st in config.stages] == ["baseline"] and not config.stages[0].checkpoint
      else:  # starts from the same seed's baseline cell, loaded, not retrained
        assert config.stages[0].num_epochs == 0
        assert config.stages[0].checkpoint == os.path.join(str(tmp_path), model, "baseline", f"seed{seed}")
    names = [(m, me) for m, me, s in cells if s == 42]
    if arg == "main":
      assert names == [(m, me) for m in ("grnn", "resnet18")  # name order
                       for me in ("baseline", "baseline_2x", "baseline_3x", "dropin_frozen", "dropin_unfrozen",
                                  "plasticity")]
    elif arg == "wav2vec":
      assert names == [("wav2vec", me) for me in ("baseline", "baseline_2x", "dropin_frozen", "dropin_unfrozen",
                                                  "sweep_k0", "sweep_k1", "sweep_k2", "sweep_k3")]
      sweep = grid.cell_config(g, str(tmp_path), "wav2vec", "sweep_k1", 42)
      assert dict(sweep.stages[1].widths) == {"num_heads": (4, 8, 4, 4), "ffn_dims": (128, 256, 128, 128)}
    else:
      assert names == [(m, me) for m in ("grnn", "resnet18") for me in ("baseline", "sweep_k0", "sweep_k1",
                                                                         "sweep_k2", "sweep_k3")]
  g = grid_demo.get_config()
  plast = grid.cell_config(g, str(tmp_path), "grnn", "plasticity", 43)
  assert [(st.name, st.start_from) for st in plast.stages] == [("baseline", ""), ("grown", "baseline"),
                                                               ("pruned", "grown")]
  unfrozen = grid.cell_config(g, str(tmp_path), "resnet18", "dropin_unfrozen", 43)
  assert [(st.name, st.trainable) for st in unfrozen.stages] == [("baseline", "all"), ("dropin_unfrozen", "all")]


@pytest.mark.parametrize("arg", ["la", "sweep", "pa", "for,sweep"])
def test_every_paper_grid_cell_is_a_valid_experiment(tmp_path, arg):
  from configs import grid_la  # pylint: disable=g-import-not-at-top
  g = grid_la.get_config(arg)
  cells = grid.expand(g)
  methods = {(m, me) for m, me, _ in cells}
  for model, method, seed in cells:
    config = grid.cell_config(g, str(tmp_path), model, method, seed)
    experiment.validate(config)
    assert config.data.corpus == grid_la.CORPORA[arg.split(",")[0] if arg != "sweep" else "la"]
    source = grid.load_config(g.models[model].configs[grid.METHODS.get(method, grid.SWEEP_METHOD).source])
    own = {st.name: st.num_epochs for st in source.stages}
    # The authors' epochs; a continued baseline stage repeats the baseline's.
    assert all(st.num_epochs == own[st.name if st.name in own else "baseline"] for st in config.stages[1:])
  if "sweep" in arg:
    assert {me for m, me in methods if m == "wav2vec_small"} == {"baseline"} | {f"sweep_k{k}" for k in range(12)}
  else:
    assert ("wav2vec_small", "lora") in methods and ("resnet18", "lora") not in methods
    lora = grid.cell_config(g, str(tmp_path), "wav2vec_small", "lora", 42)
    assert [st.name for st in lora.stages] == ["baseline", "lora"] and lora.stages[1].widths.lora_rank == 8


def test_sweep_points_grow_one_layer_each():
  model = {"stage_widths": (64, 128, 256, 512), "branch_widths": (0, 0, 0, 0), "num_heads": (4, 4, 4),
           "ffn_dims": (512, 512, 512)}
  assert grid.sweep_points(model, {"fields": ("stage_widths",)}) == [
      (0, {"stage_widths": (128, 128, 256, 512)}), (1, {"stage_widths": (64, 256, 256, 512)}),
      (2, {"stage_widths": (64, 128, 512, 512)}), (3, {"stage_widths": (64, 128, 256, 1024)})]
  # The parallel-branch layout: branch k as wide as stage k.
  assert grid.sweep_points(model, {"fields": ("branch_widths",), "reference": "stage_widths", "layers": (1, 2)}) \
      == [(1, {"branch_widths": (0, 128, 0, 0)}), (2, {"branch_widths": (0, 0, 256, 0)})]
  # Wav2Vec: heads and FFN of layer k together (4 -> 12 heads, 512 -> 2048 units).
  assert grid.sweep_points(model, {"fields": ("num_heads", "ffn_dims"), "add": (8, 1536), "layers": (1,)}) == [
      (1, {"num_heads": (4, 12, 4), "ffn_dims": (512, 2048, 512)})]
  with pytest.raises(grid.GridError, match="not a per-layer"):
    grid.sweep_points(model, {"fields": ("hidden_sizes",)})
  with pytest.raises(grid.GridError, match="out of range"):
    grid.sweep_points(model, {"fields": ("num_heads",), "layers": (3,)})


def test_sweep_cell_isolates_the_grown_gru_layer(tmp_path):
  g = grid_demo.get_config("sweep")
  config = grid.cell_config(g, str(tmp_path), "grnn", "sweep_k2", 42)
  assert dict(config.stages[1].widths) == {"hidden_sizes": (64, 64, 64, 32)}
  assert config.dropin.old_reads_new is False
  assert config.stages[1].trainable == "new"


def test_unknown_method_and_missing_stage_fail_before_training(tmp_path):
  g = grid_demo.get_config()
  with g.unlocked():
    g.methods = ("baseline", "dropout")
  with pytest.raises(grid.GridError, match="unknown methods"):
    grid.expand(g)
  g = grid_demo.get_config()
  g.models.grnn.configs.plasticity = "configs.demo:grnn"  # a baseline-only config has no grown/pruned stages
  with pytest.raises(grid.GridError, match="no stages"):
    grid.cell_config(g, str(tmp_path), "grnn", "plasticity", 42)


# ----------------------------------------------------------------------------------------------------------------
# End to end.


def _tiny_grid(root):
  g = grid_demo.get_config()
  g.models = {"grnn": grid_demo.model_spec("grnn", epochs=1, sweep_fields=("hidden_sizes",))}
  g.models.grnn.configs.baseline = "configs.smoke:grnn"
  g.models.grnn.configs.dropin = "configs.smoke:grnn,dropin"
  g.methods = ("baseline", "dropin_frozen")
  g.seeds = (1, 2)
  g.data.corpus, g.data.root = "asvspoof2019_la", root
  g.train.max_steps_per_epoch = 2
  g.bootstrap_samples = 50
  return g


def test_grid_end_to_end_resumes_and_reuses_finished_cells(tmp_path, monkeypatch):
  root = fx.make_separable_la(str(tmp_path / "toy"), n_train=8, n_dev=8, n_eval=8)
  workdir = str(tmp_path / "grid")
  calls = []
  interrupt = [True]
  real_run = experiment.run

  def counting_run(config, cell_workdir):
    calls.append(os.path.relpath(cell_workdir, workdir))
    if interrupt[0] and len(calls) == 3:
      raise KeyboardInterrupt("simulated interruption before the third cell")
    return real_run(config, cell_workdir)

  monkeypatch.setattr(experiment, "run", counting_run)
  with pytest.raises(KeyboardInterrupt):
    grid.run(_tiny_grid(root), workdir)
  assert calls == ["grnn/baseline/seed1", "grnn/dropin_frozen/seed1", "grnn/baseline/seed2"]
  calls.clear()
  interrupt[0] = False
  out = grid.run(_tiny_grid(root), workdir)
  # The two finished cells are reused; the interrupted one and the last one run.
  assert calls == ["grnn/baseline/seed2", "grnn/dropin_frozen/seed2"]
  assert [c["ran"] for c in out["cells"]] == [False, False, True, True]
  # A dropin cell starts from its own seed's baseline: the loaded stage scores exactly as the baseline cell.
  for seed in (1, 2):
    base = json.load(open(os.path.join(workdir, "grnn", "baseline", f"seed{seed}", "results.json")))
    drop = json.load(open(os.path.join(workdir, "grnn", "dropin_frozen", f"seed{seed}", "results.json")))
    assert drop["stages"][0]["origin"].endswith(os.path.join("grnn", "baseline", f"seed{seed}"))
    assert drop["stages"][0]["eval"]["eer"] == base["stages"][0]["eval"]["eer"]
    assert drop["exported_stage"] == "dropin" and drop["stages"][1]["params_trainable"] < \
        drop["stages"][1]["params_total"]
  rows = {(r["model"], r["method"]): r for r in out["rows"]}
  assert set(rows) == {("grnn", "baseline"), ("grnn", "dropin_frozen")}
  assert rows["grnn", "dropin_frozen"]["eval_eer"]["values"] == [
      json.load(open(os.path.join(workdir, "grnn", "dropin_frozen", f"seed{s}", "results.json")))["stages"][1]
      ["eval"]["eer"] for s in (1, 2)]
  assert rows["grnn", "dropin_frozen"]["paired"]["seeds"] == 2
  for name in ("table.md", "table.csv", "cells.csv", "det_grnn.png", "grid.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  # Everything finished: nothing runs again.
  calls.clear()
  assert [c["ran"] for c in grid.run(_tiny_grid(root), workdir)["cells"]] == [False] * 4 and calls == []
  # A changed budget is not silently mixed with the finished cells.
  changed = _tiny_grid(root)
  changed.models.grnn.epochs_per_stage = 2
  with pytest.raises(grid.GridError, match=r"num_epochs"):
    grid.run(changed, workdir)


def test_config_differences_ignore_host_only_settings():
  stored = {"data": {"num_workers": 0, "root": "a"}, "distributed": {"initialize": "auto", "process_id": -1},
            "mesh": {"data": -1}}
  wanted = {"data": {"num_workers": 4, "root": "a"}, "distributed": {"initialize": "off", "process_id": 1},
            "mesh": {"data": 2}}
  # Workers and the distributed start-up do not change results; the mesh changes float rounding, so it counts.
  assert grid.config_differences(stored, wanted) == ["mesh.data"]


def test_baseline_trained_longer_continues_the_baseline_cell(tmp_path):
  g = grid_demo.get_config()
  g.methods = ("baseline", "baseline_2x", "baseline_3x", "plasticity")
  assert [me for m, me, s in grid.expand(g) if m == "grnn" and s == 42] == list(g.methods)
  config = grid.cell_config(g, str(tmp_path), "grnn", "baseline_3x", 42)
  experiment.validate(config)
  budget = g.models.grnn.epochs_per_stage
  assert [(st.name, st.start_from, st.start_point, st.num_epochs, st.kind, st.trainable, dict(st.widths))
          for st in config.stages] == [("baseline", "", "best", 0, "train", "all", {}),
                                       ("continued1", "baseline", "best", budget, "train", "all", {}),
                                       ("continued2", "continued1", "best", budget, "train", "all", {})]
  assert config.stages[0].checkpoint == grid.cell_dir(str(tmp_path), "grnn", "baseline", 42)
  assert config.export_stage == "continued2"
  assert [st.name for st in grid.cell_config(g, str(tmp_path), "resnet18", "baseline_2x", 43).stages] == [
      "baseline", "continued1"]


def _write_config(workdir, stages, export=""):
  """config.json with the fields `tables.lineage_epochs` reads."""
  full = [dict(dict(name="", num_epochs=0, start_from="", start_point="best", checkpoint=""), **st) for st in stages]
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"stages": full, "export_stage": export or full[-1]["name"]}, f)


def test_lineage_epochs_follow_start_from_back_to_a_fresh_start():
  loaded = [dict(name="baseline", checkpoint="/g/baseline/seed1")]
  plast = {"stages": loaded + [dict(name="grown", num_epochs=2, start_from="baseline"),
                               dict(name="pruned", num_epochs=3, start_from="grown")], "export_stage": "pruned"}
  assert tables.lineage_epochs(plast, 4) == 4 + 2 + 3
  assert tables.lineage_epochs(plast, None) is None  # the loaded model's epochs are unknown
  # dropin_unfrozen from a fresh init: its own epochs only, whatever the baseline had.
  unfrozen = {"stages": loaded + [dict(name="dropin", num_epochs=2, start_from="baseline"),
                                  dict(name="dropin_unfrozen", num_epochs=2, start_from="baseline",
                                       start_point="init")], "export_stage": "dropin_unfrozen"}
  assert tables.lineage_epochs(unfrozen, 4) == 2
  # The exported stage, not the last: dropin (2) on the loaded baseline (4).
  assert tables.lineage_epochs(dict(unfrozen, export_stage="dropin"), 4) == 6
  assert tables.lineage_epochs({"stages": [dict(name="baseline", num_epochs=5)]}, None) == 5
  assert tables.lineage_epochs(None, 3) is None


def test_methods_are_compared_with_the_baseline_trained_as_long(tmp_path):
  grid = str(tmp_path / "grid")
  loaded = dict(name="baseline", checkpoint="x")
  for seed, base, long, plast in ((1, 50.0, 25.0, 0.0), (2, 75.0, 50.0, 50.0)):
    _write_config(_write_cell(grid, "m", "baseline", seed, base, dev_eer=base), [dict(name="baseline", num_epochs=2)])
    w = _write_cell(grid, "m", "baseline_3x", seed, long, dev_eer=long, stage="continued2", index=2)
    _write_config(w, [loaded, dict(name="continued1", num_epochs=2, start_from="baseline"),
                      dict(name="continued2", num_epochs=2, start_from="continued1")])
    w = _write_cell(grid, "m", "plasticity", seed, plast, dev_eer=plast, stage="pruned", index=2)
    _write_config(w, [loaded, dict(name="grown", num_epochs=2, start_from="baseline"),
                      dict(name="pruned", num_epochs=2, start_from="grown")])
    w = _write_cell(grid, "m", "dropin_unfrozen", seed, plast, dev_eer=plast, stage="dropin_unfrozen", index=1)
    _write_config(w, [loaded, dict(name="dropin_unfrozen", num_epochs=2, start_from="baseline", start_point="init")])
  rows = {r["method"]: r for r in tables.write_tables(grid, bootstrap_samples=50)}
  assert [r for r in rows] == ["baseline", "baseline_3x", "dropin_unfrozen", "plasticity"]
  assert (rows["baseline"]["epochs"], rows["baseline_3x"]["epochs"], rows["plasticity"]["epochs"],
          rows["dropin_unfrozen"]["epochs"]) == (2, 6, 6, 2)
  p = rows["plasticity"]
  assert p["as_long_reference"] == "baseline_3x"
  # Against the plain baseline: (0-50)/50 = -1, (50-75)/75 = -1/3; against baseline_3x: (0-25)/25 = -1, 0.
  assert p["rel_eval_change"]["values"] == pytest.approx([-1.0, -1 / 3])
  assert p["as_long_rel_eval_change"]["values"] == pytest.approx([-1.0, 0.0])
  assert p["as_long_eval_eer"]["values"] == [25.0, 50.0]
  assert p["as_long_paired"]["diff_pp"] == pytest.approx(-12.5)
  # Trained as long as the baseline itself (fresh start, 2 epochs): the main table already is that comparison.
  assert "as_long_reference" not in rows["dropin_unfrozen"] and "as_long_reference" not in rows["baseline_3x"]
  md = open(os.path.join(grid, "table.md")).read()
  assert "| m | plasticity | 6 | baseline_3x | 37.50 ± 17.68 | 25.00 ± 35.36 | -50.0 % [-100.0, +0.0] |" in md
  header = open(os.path.join(grid, "table.csv")).readline().strip().split(",")
  assert "as_long_paired_diff_pp" in header and "as_long_rel_eval_change_mean" in header


def _control_grid(grid, seeds, with_control=True):
  """Baseline (2 epochs), baseline_2x (4), baseline_3x (6), dropin frozen (4) and plasticity (6) cells with configs;
  `seeds` maps seed -> {method: (eval EER, dev EER)}."""
  loaded = dict(name="baseline", checkpoint="x")
  layouts = {
      "baseline": ("baseline", 0, [dict(name="baseline", num_epochs=2)]),
      "baseline_2x": ("continued1", 1, [loaded, dict(name="continued1", num_epochs=2, start_from="baseline")]),
      "baseline_3x": ("continued2", 2, [loaded, dict(name="continued1", num_epochs=2, start_from="baseline"),
                                        dict(name="continued2", num_epochs=2, start_from="continued1")]),
      "dropin_frozen": ("dropin", 1, [loaded, dict(name="dropin", num_epochs=2, start_from="baseline")]),
      "plasticity": ("pruned", 2, [loaded, dict(name="grown", num_epochs=2, start_from="baseline"),
                                   dict(name="pruned", num_epochs=2, start_from="grown")]),
  }
  for seed, cells in seeds.items():
    for method, (eval_eer, dev_eer) in cells.items():
      if not with_control and method in ("baseline_2x", "baseline_3x"):
        continue
      stage, index, stages = layouts[method]
      _write_config(_write_cell(grid, "m", method, seed, eval_eer, dev_eer, stage=stage, index=index), stages)
  return {r["method"]: r for r in tables.write_tables(grid, bootstrap_samples=50)}


def test_methods_are_compared_with_the_baseline_picked_by_dev_within_their_epochs(tmp_path):
  seeds = {  # method: (eval EER, dev EER)
      # dropin (4 epochs) may pick baseline_2x (dev 25) but not baseline_3x (dev 0, 6 epochs); plasticity picks it.
      1: {"baseline": (50.0, 50.0), "baseline_2x": (25.0, 25.0), "baseline_3x": (75.0, 0.0),
          "dropin_frozen": (0.0, 0.0), "plasticity": (0.0, 0.0)},
      # A dev tie between baseline and baseline_2x goes to the fewer epochs: the plain baseline.
      2: {"baseline": (25.0, 25.0), "baseline_2x": (50.0, 25.0), "baseline_3x": (0.0, 50.0),
          "dropin_frozen": (0.0, 0.0), "plasticity": (25.0, 0.0)},
  }
  rows = _control_grid(str(tmp_path / "grid"), seeds)
  d, p = rows["dropin_frozen"], rows["plasticity"]
  assert d["dev_selected_references"] == ["baseline_2x", "baseline"]
  assert d["dev_selected_eval_eer"]["values"] == [25.0, 25.0]
  assert d["dev_selected_rel_eval_change"]["values"] == pytest.approx([-1.0, -1.0])
  assert d["dev_selected_paired"]["diff_pp"] == pytest.approx(-25.0)
  assert p["dev_selected_references"] == ["baseline_3x", "baseline"]
  assert p["dev_selected_rel_eval_change"]["values"] == pytest.approx([-1.0, 0.0])  # (0-75)/75, (25-25)/25
  assert all("dev_selected_references" not in rows[m] for m in ("baseline", "baseline_2x", "baseline_3x"))
  md = open(os.path.join(tmp_path, "grid", "table.md")).read()
  assert ("| m | dropin_frozen | 4 | baseline_2x baseline | 25.00 ± 0.00 | 0.00 ± 0.00 | -100.0 % [-100.0, -100.0] |"
          in md)
  assert "dev_selected_paired_diff_pp" in open(os.path.join(tmp_path, "grid", "table.csv")).readline()
  # Without the control the main table already is this comparison: no third table.
  rows = _control_grid(str(tmp_path / "plain"), seeds, with_control=False)
  assert "dev_selected_references" not in rows["plasticity"]
  assert "picked by dev" not in open(os.path.join(tmp_path, "plain", "table.md")).read()


def test_model_names_runs_only_the_named_models():
  g = grid_demo.get_config()
  every = grid.expand(g)
  assert {m for m, _, _ in every} == {"grnn", "resnet18"}
  g.model_names = ("resnet18",)
  assert grid.expand(g) == [c for c in every if c[0] == "resnet18"]
  g.model_names = ("resnet",)
  with pytest.raises(grid.GridError, match="resnet"):
    grid.expand(g)
