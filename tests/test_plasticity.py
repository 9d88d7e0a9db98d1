"""Plasticity end to end: all stages run and end at the baseline widths, each stage reports its own peak memory; a
process killed mid-stage (SIGKILL, a real subprocess) and re-run reaches bit-identical final parameters."""

import json
import os
import signal
import subprocess
import sys

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


def _args(workdir, root):
  return ["--config=" + os.path.join(REPO, "configs/smoke.py") + ":grnn,plasticity", f"--workdir={workdir}",
          "--config.data.corpus=asvspoof2019_la", f"--config.data.root={root}"]


def _env(**extra):
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO, **extra)


# Runs run.py in this process after patching the driver's metrics flush: once stage $KILL_STAGE has logged
# $KILL_AFTER_FLUSHES batches of training metrics, the process SIGKILLs itself (no Python cleanup, no atexit).
# The flush precedes that step's periodic checkpoint, so the newest checkpoint is the previous logged step's.
KILLER = r"""
import os, runpy, signal, sys
from jaxplastic import experiment
flush, seen = experiment._flush, [0]
def killing_flush(pending, step, stage, bar):
  flush(pending, step, stage, bar)
  if pending and stage.st.name == os.environ["KILL_STAGE"]:
    seen[0] += 1
    if seen[0] == int(os.environ["KILL_AFTER_FLUSHES"]):
      os.kill(os.getpid(), signal.SIGKILL)
experiment._flush = killing_flush
sys.argv[0] = os.path.join(os.environ["PYTHONPATH"], "run.py")
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_killed_run_resumes_in_the_right_stage_with_identical_result(toy_root, tmp_path):
  """A real process SIGKILLed mid-way through the grown stage, after a mid-epoch checkpoint of it, resumes there and
  ends bit-identical to an uninterrupted run."""
  full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
  subprocess.run([sys.executable, os.path.join(REPO, "run.py"), *_args(full, toy_root)], check=True, env=_env(),
                 capture_output=True, timeout=600)

  killed = subprocess.run([sys.executable, "-c", KILLER, *_args(cut, toy_root)], capture_output=True, timeout=600,
                          env=_env(KILL_STAGE="grown", KILL_AFTER_FLUSHES="2"))
  assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-3000:]
  assert not os.path.exists(os.path.join(cut, "checkpoints", "1_grown", "stage.json"))
  with open(os.path.join(cut, "checkpoints", "0_baseline", "stage.json")) as f:
    grown_start = json.load(f)["end_step"]
  with open(os.path.join(cut, "metrics.jsonl")) as f:
    logged = [json.loads(l) for l in f if l.strip()]
  grown_steps = [l["step"] for l in logged if l["stage"] == "grown" and "train/loss" in l]
  assert len(grown_steps) == 2, grown_steps
  ckpts = checkpoints.StageCheckpoints(cut, 1, "grown")
  try:  # the resume point: the first logged grown step's checkpoint, mid-epoch
    assert ckpts.step("latest") == grown_steps[0] > grown_start
  finally:
    ckpts.close()
  with open(os.path.join(full, "results.json")) as f:
    grown_end = json.load(f)["stages"][1]["end_step"]
  assert grown_steps[1] < grown_end, "the kill must fall inside the grown stage's epoch"

  subprocess.run([sys.executable, os.path.join(REPO, "run.py"), *_args(cut, toy_root)], check=True, env=_env(),
                 capture_output=True, timeout=600)
  fx.assert_same_export(full, cut)
  with open(os.path.join(full, "results.json")) as f1, open(os.path.join(cut, "results.json")) as f2:
    r1, r2 = json.load(f1), json.load(f2)
  assert [s["dev"]["eer"] for s in r1["stages"]] == [s["dev"]["eer"] for s in r2["stages"]]
  assert [s["end_step"] for s in r1["stages"]] == [s["end_step"] for s in r2["stages"]]
