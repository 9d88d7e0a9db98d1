"""Two processes on localhost (jax.distributed over gloo, 2 simulated CPU devices each) train the smoke GRNN through
`run.py`, exactly as two hosts would, and score every dev and eval utterance.

What must hold, and how it is checked:
- scores gathered from both processes are the scores of the whole split, so EER, threshold and score files are
  exactly those of a single process: one process with the same 4-device mesh re-scores the two-process run's
  checkpoints and writes the same score files, EERs and exported model, to the last bit;
- the two processes train what one process trains: a fresh one-process run on 4 devices ends at the same parameters,
  to float rounding (gloo's cross-process all-reduce adds the per-device gradients in another order than the
  in-process one; TOLERANCE, SGD as in test_sharding);
- only process 0 writes the run's files (one metrics line per event, one TensorBoard event file).
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

try:
  from tests import fixtures_data as fx
except ImportError:
  import fixtures_data as fx

from jaxplastic import checkpoints
from jaxplastic import surgery

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 2e-6
EPOCHS = 2
STEPS_PER_EPOCH = 2  # 16 training utterances in global batches of 8


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _cmd(workdir, root, *extra):
  return [sys.executable, os.path.join(REPO, "run.py"), "--config=" + os.path.join(REPO, "configs/smoke.py") + ":grnn",
          f"--workdir={workdir}", "--config.data.corpus=asvspoof2019_la", f"--config.data.root={root}",
          "--config.data.batch_size=8", "--config.data.eval_batch_size=8", "--config.optim.name=sgd",
          "--config.optim.learning_rate=0.05", f"--config.stages[0].num_epochs={EPOCHS}", *extra]


def _env(devices):
  return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
              JAX_DISABLE_MOST_OPTIMIZATIONS="true", PYTHONPATH=REPO)


def _wait(procs, what):
  for i, p in enumerate(procs):
    try:
      _, err = p.communicate(timeout=900)
    finally:
      if p.poll() is None:
        p.kill()
    assert p.returncode == 0, f"{what} process {i} failed:\n{err.decode()[-4000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("multihost")
  root = fx.make_separable_la(str(base / "corpus"), n_train=16, n_dev=16, n_eval=16)
  two, one, rescored = str(base / "two"), str(base / "one"), str(base / "rescored")
  port = _free_port()
  pipe = dict(stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
  procs = [subprocess.Popen(_cmd(two, root, f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                                 "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}"),
                            env=_env(2), **pipe) for i in range(2)]
  procs.append(subprocess.Popen(_cmd(one, root), env=_env(4), **pipe))
  _wait(procs, "training")
  # The two-process run's checkpoints, finished again by one process: every stage.json, score file, result and
  # export removed, so the stage restores its checkpoints (0 epochs left to train) and scores dev and eval anew.
  shutil.copytree(os.path.join(two, "checkpoints"), os.path.join(rescored, "checkpoints"))
  for dirpath, _, files in os.walk(rescored):
    for name in files:
      if name == "stage.json":
        os.remove(os.path.join(dirpath, name))
  _wait([subprocess.Popen(_cmd(rescored, root, "--config.stages[0].num_epochs=0"), env=_env(4), **pipe)],
        "re-scoring")
  return two, one, rescored


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)["stages"][0]


def test_two_processes_score_exactly_as_one(runs):
  two, _, rescored = runs
  for split in ("dev", "eval"):
    with open(os.path.join(two, "scores", f"0_baseline_{split}.txt")) as f1, \
        open(os.path.join(rescored, "scores", f"0_baseline_{split}.txt")) as f2:
      lines = f1.read()
      assert lines == f2.read(), split
    assert len(lines.splitlines()) == 16  # every utterance of the split, each once
  a, b = _results(two), _results(rescored)
  assert a["end_step"] == b["end_step"] == EPOCHS * STEPS_PER_EPOCH
  for split in ("dev", "eval"):
    for key in ("eer", "eer_threshold", "num_bonafide", "num_spoof", "per_attack"):
      assert a[split][key] == b[split][key], (split, key)
  fx.assert_same_export(two, rescored)


def test_two_processes_train_what_one_process_trains(runs):
  two, one, _ = runs
  a, b = _results(two), _results(one)
  assert a["best_step"] == b["best_step"]
  _, va = checkpoints.load_export(os.path.join(two, "model"))
  _, vb = checkpoints.load_export(os.path.join(one, "model"))
  fa, fb = surgery.flatten(va), surgery.flatten(vb)
  assert fa.keys() == fb.keys()
  diff = max(float(np.max(np.abs(fa[k] - fb[k]))) for k in fa)
  assert diff <= TOLERANCE, diff
  for split in ("dev", "eval"):
    sa = np.loadtxt(os.path.join(two, "scores", f"0_baseline_{split}.txt"), usecols=3)
    sb = np.loadtxt(os.path.join(one, "scores", f"0_baseline_{split}.txt"), usecols=3)
    np.testing.assert_allclose(sa, sb, atol=1e-5)


def test_only_process_zero_writes_the_run_files(runs):
  two, _, _ = runs
  with open(os.path.join(two, "metrics.jsonl")) as f:
    lines = [json.loads(l) for l in f]
  assert sum("dev/lr_scale" in l for l in lines) == EPOCHS  # one line per epoch, not one per process
  assert sum("eval/eer" in l for l in lines) == 1  # the stage's final scores
  assert sum("train/loss" in l for l in lines) == EPOCHS * STEPS_PER_EPOCH // 2  # logged every 2 steps
  assert len(os.listdir(os.path.join(two, "tensorboard"))) == 1  # one event file: one writer
