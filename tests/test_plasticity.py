"""Plasticity end to end: all stages run and end at the baseline widths, each stage reports its own peak memory; a
process killed mid-stage (SIGKILL, a real subprocess) and re-run reaches bit-identical final parameters."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from configs import smoke
from jaxplastic import checkpoints
from jaxplastic import experiment
from jaxplastic import reporting
from jaxplastic import surgery

try:
  from tests import fixtures_data as fx
except ImportError:
  import fixtures_data as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
  return fx.make_separable_la(str(tmp_path_factory.mktemp("toy")), n_train=24)


def test_plasticity_stages_end_at_baseline_widths_with_importance_pruning(toy_root, tmp_path):
  config = smoke.get_config("resnet18,plasticity")
  config.data.corpus = "asvspoof2019_la"
  config.data.root = toy_root
  config.stages[2].prune = "importance"
  summary = experiment.run(config, str(tmp_path / "run"))
  base, grown, pruned = summary["stages"]
  assert [s["kind"] for s in summary["stages"]] == ["train", "grow", "prune"]
  assert grown["params_total"] > base["params_total"] == pruned["params_total"]
  assert tuple(pruned["model"]["stage_widths"]) == tuple(config.model.stage_widths)
  # One global step across stages.
  assert base["end_step"] == grown["start_step"] and grown["end_step"] == pruned["start_step"]
  # Peak memory is each stage's own: the pruned model reports less than the grown one that ran before it in this
  # process (a process-lifetime peak never could), and exactly what the same-shaped baseline reported.
  assert pruned["peak_memory_kind"] == reporting.PEAK_MEMORY_KIND
  assert pruned["peak_memory_bytes"] == base["peak_memory_bytes"] < grown["peak_memory_bytes"]
  assert grown["peak_memory_bytes"] == max(m["peak_bytes"] for m in grown["memory"].values())
  meta, variables = checkpoints.load_export(str(tmp_path / "run" / "model"))
  assert tuple(meta["model"]["stage_widths"]) == (4, 8, 8, 8)
  ref = surgery.abstract_variables(experiment.build(dict(meta["model"])), (1, config.data.num_samples))
  assert surgery.shapes_of(variables) == surgery.shapes_of(ref)


def _cmd(workdir, root):
  return [sys.executable, os.path.join(REPO, "run.py"), "--config=" + os.path.join(REPO, "configs/smoke.py") +
          ":grnn,plasticity", f"--workdir={workdir}", "--config.data.corpus=asvspoof2019_la",
          f"--config.data.root={root}"]


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  return env


def test_killed_run_resumes_in_the_right_stage_with_identical_result(toy_root, tmp_path):
  full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
  subprocess.run(_cmd(full, toy_root), check=True, env=_env(), capture_output=True, timeout=600)

  proc = subprocess.Popen(_cmd(cut, toy_root), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  metrics = os.path.join(cut, "metrics.jsonl")
  killed_in = None
  deadline = time.time() + 600
  try:
    while time.time() < deadline and proc.poll() is None:
      if os.path.exists(metrics):
        with open(metrics) as f:
          lines = [json.loads(l) for l in f if l.strip().endswith("}")]
        # The grown stage has logged training progress: it is mid-stage.
        if any(l["stage"] == "grown" and "train/loss" in l for l in lines):
          proc.send_signal(signal.SIGKILL)
          killed_in = "grown"
          break
      time.sleep(0.02)
  finally:
    if proc.poll() is None and killed_in is None:
      proc.kill()
    proc.wait()
  assert killed_in == "grown", "the run finished before it could be killed mid-stage"
  assert not os.path.exists(os.path.join(cut, "checkpoints", "1_grown", "stage.json"))
  assert os.path.exists(os.path.join(cut, "checkpoints", "0_baseline", "stage.json"))

  subprocess.run(_cmd(cut, toy_root), check=True, env=_env(), capture_output=True, timeout=600)
  fx.assert_same_export(full, cut)
  with open(os.path.join(full, "results.json")) as f1, open(os.path.join(cut, "results.json")) as f2:
    r1, r2 = json.load(f1), json.load(f2)
  assert [s["dev"]["eer"] for s in r1["stages"]] == [s["dev"]["eer"] for s in r2["stages"]]
  assert [s["end_step"] for s in r1["stages"]] == [s["end_step"] for s in r2["stages"]]
