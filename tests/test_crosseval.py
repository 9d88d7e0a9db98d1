"""Cross-corpus evaluation of an exported smoke model on the format-exact fixture corpora: LA -> LA eval (min
t-DCF from the ASV scores), LA -> Fake-or-Real, and the silence-trimmed shortcut check."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

try:
  from tests import fixtures_data as fx
except ImportError:
  import fixtures_data as fx

from configs import smoke
from jaxplastic import crosseval
from jaxplastic import evaluation
from jaxplastic import experiment
from jaxplastic.data import audio
from jaxplastic.scoring import Detector


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A GRNN smoke run (one epoch of two steps) on the LA fixture; returns (run workdir, corpora base)."""
  base = str(tmp_path_factory.mktemp("corpora"))
  la = fx.make_asvspoof2019(base, "LA")
  config = smoke.get_config("grnn")
  config.data.corpus, config.data.root = "asvspoof2019_la", la
  config.stages[0].num_epochs = 1
  workdir = str(tmp_path_factory.mktemp("run") / "la_grnn")
  experiment.run(config, workdir)
  return workdir, base, la


def _score_file_matches(path, results, split):
  s = evaluation.read_score_file(path)
  assert len(s["utt_ids"]) == results["counts"]["bonafide"] + results["counts"]["spoof"]
  ref = evaluation.evaluate(s["scores"], s["labels"], s["attacks"])
  assert results[split]["eer"] == pytest.approx(ref["eer"], abs=1e-6)
  return s


def test_same_corpus_eval_reproduces_the_run_and_reports_tdcf(trained, tmp_path):
  workdir, _, la = trained
  out = str(tmp_path / "la_eval")
  res = crosseval.run(workdir, {"corpus": "asvspoof2019_la", "root": la}, split="eval", out=out, batch_size=4)
  assert res["trained_on"] == "asvspoof2019_la" and res["exported_stage"] == "baseline"
  assert set(res["eval"]["per_attack"]) == {"A07", "A11", "A16", "A19"}
  assert res["eval"]["min_tdcf"] is not None
  assert "at_model_threshold" in res["eval"]
  s = _score_file_matches(os.path.join(out, "scores_eval.txt"), res, "eval")
  # The run scored the same model on the same split: the same scores (to the score file's 6 decimals).
  run_scores = evaluation.read_score_file(os.path.join(workdir, "scores", "0_baseline_eval.txt"))
  assert s["utt_ids"] == run_scores["utt_ids"]
  np.testing.assert_allclose(s["scores"], run_scores["scores"], atol=2e-6)
  assert json.load(open(os.path.join(out, "results.json")))["score_files"] == {"eval": "scores_eval.txt"}


def test_cross_corpus_to_fake_or_real_with_trimmed_silence(trained, tmp_path):
  workdir, base, _ = trained
  root = fx.make_for_2sec(str(tmp_path))
  # Give every test file 0.3 s of leading and 0.5 s of trailing digital silence: trimming must remove it.
  test_files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                      if "testing" in d and f.endswith(".wav"))
  assert len(test_files) == 3
  for path in test_files:
    wav, sr = sf.read(path, dtype="float32")
    sf.write(path, np.concatenate([np.zeros(4800, np.float32), wav, np.zeros(8000, np.float32)]), sr,
             subtype="PCM_16")
  out = str(tmp_path / "cross_for")
  assert crosseval.main(["--checkpoint", workdir, "--config.data.corpus=fakeorreal", f"--config.data.root={root}",
                         "--split", "eval", "--trim_silence_db", "40", "--batch_size", "2", "--out", out]) == 0
  res = json.load(open(os.path.join(out, "results.json")))
  assert res["corpus"] == "fakeorreal" and res["counts"] == {"bonafide": 1, "spoof": 2, "fake": 2}
  assert set(res["eval"]["per_attack"]) == {"fake"} and res["eval"]["min_tdcf"] is None
  untrimmed = _score_file_matches(os.path.join(out, "scores_eval.txt"), res, "eval")
  trimmed = _score_file_matches(os.path.join(out, "scores_eval_trimmed.txt"), res, "eval_trimmed")
  # Independent check of both conditions: the scoring API on the same audio, with and without the silence.
  detector = Detector.load(workdir)
  paths = [os.path.join(root, "for-2seconds", "testing", u) for u in untrimmed["utt_ids"]]
  np.testing.assert_allclose(untrimmed["scores"], [r.score for r in detector.score_files(paths, progress=False)],
                             atol=1e-5)
  cut = [audio.trim_silence(audio.load_audio(p, 16000), 40.0) for p in paths]
  # librosa trims whole 512-sample frames: most of the 12,800 added samples go.
  assert all(c.size < audio.load_audio(p, 16000).size - 8000 for c, p in zip(cut, paths))
  np.testing.assert_allclose(trimmed["scores"], detector.score_batch(cut, 16000), atol=1e-5)
  assert not np.allclose(trimmed["scores"], untrimmed["scores"])
