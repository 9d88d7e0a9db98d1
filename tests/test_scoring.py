"""Tests for scoring arbitrary audio with an exported model (`jaxplastic.scoring`) and its CLI.

Tiny randomly initialised ResNet-18 / GRNN exports stand in for trained models: every test compares
the scorer against an independent computation (the model applied by hand to the expected input), so
training is not needed. One test trains a smoke run and checks that the CLI reproduces the EER the
run reported.
"""

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile as sf

from jaxplastic import checkpoints
from jaxplastic import evaluation
from jaxplastic import models
from jaxplastic import score_cli
from jaxplastic import scoring
from jaxplastic.data import audio as audio_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 16000
N = 8000  # the tiny models' "training length": 0.5 s
THRESHOLD = 0.25
TINY = {
    "resnet18":
        dict(name="resnet18",
             stage_widths=(4, 8, 8, 8),
             blocks_per_stage=(1, 1, 1, 1),
             stem_width=4,
             n_fft=256,
             hop_length=128,
             n_mels=16,
             num_frames=32),
    "grnn":
        dict(name="grnn", hidden_sizes=(4, 4), n_fft=256, hop_length=128, num_coeffs=8),
}


def _export(path, name, *, threshold=THRESHOLD, seed=0, **info):
  fields = TINY[name]
  model = models.build_model(fields)
  variables = jax.jit(lambda r: model.init({"params": r}, np.zeros(
      (1, N), np.float32), train=False))(jax.random.PRNGKey(seed))
  # BatchNorm running statistics away from (0, 1), so a wrong train/eval mode would change the
  # scores.
  variables = jax.tree_util.tree_map_with_path(
      lambda p, v: v + 0.1 if "batch_stats" in jax.tree_util.keystr(p) else v,
      jax.device_get(variables))
  checkpoints.export_model(path,
                           model_fields=fields,
                           variables=variables,
                           info=dict(
                               dict(threshold=threshold,
                                    corpus="demo",
                                    sample_rate=RATE,
                                    num_samples=N,
                                    dev_eer=12.5,
                                    stage="baseline"), **info))
  return model, variables


def _reference(model, variables, inputs):
  """Scores of fixed-length inputs [B, N] by applying the model directly, one row at a time."""
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  out = []
  for row in np.asarray(inputs, np.float32):
    logits = np.asarray(apply(variables, row[None]), np.float64)[0]
    out.append(logits[1] - logits[0])
  return np.array(out)


def _speechlike(seconds, rate=RATE, seed=0, channels=1):
  rng = np.random.default_rng(seed)
  n = int(round(seconds * rate))
  t = np.arange(n) / rate
  x = 0.3 * np.sin(2 * np.pi * (150 + 50 * rng.random()) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
  x = x + 0.05 * rng.standard_normal(n)
  if channels > 1:
    x = np.stack([x * (0.5 + 0.5 * c) for c in range(channels)], axis=1)
  return x.astype(np.float32)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  root = tmp_path_factory.mktemp("exports")
  out = {}
  for name in TINY:
    run = root / f"run_{name}"
    model, variables = _export(str(run / "model"), name)
    out[name] = (str(run), model, variables)
  return out


@pytest.fixture(scope="module")
def detector(exports):
  return scoring.Detector.load(exports["resnet18"][0], batch_size=4)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
  """Mixed rates, channels, lengths and formats, plus one file of each kind of failure."""
  d = tmp_path_factory.mktemp("audio")
  good = {
      "a_8k.wav": (_speechlike(1.2, 8000, 1), 8000, "PCM_16"),
      "b_22k_stereo.flac": (_speechlike(0.8, 22050, 2, channels=2), 22050, "PCM_16"),
      "c_44k.wav": (_speechlike(0.3, 44100, 3), 44100, "FLOAT"),
      "d_16k_long.flac": (_speechlike(7.1, RATE, 4), RATE, "PCM_16"),
      "e_16k.ogg": (_speechlike(0.6, RATE, 5), RATE, "VORBIS"),
  }
  for name, (data, rate, subtype) in good.items():
    sf.write(str(d / name), data, rate, subtype=subtype)
  bad = d / "bad"
  bad.mkdir()
  (bad / "garbage.wav").write_bytes(os.urandom(3000))
  (bad / "empty.flac").write_bytes(b"")
  sf.write(str(bad / "zero_samples.wav"), np.zeros((0,), np.float32), RATE)
  sf.write(str(bad / "silent.wav"), np.zeros(RATE, np.float32), RATE, subtype="PCM_16")
  sf.write(str(bad / "fine.wav"), _speechlike(0.7, RATE, 6), RATE)
  (d / "notes.txt").write_text("not audio")
  return d


# --------------------------------------------------------------------------------------------------
# Scores against the model applied by hand.


@pytest.mark.parametrize("name", list(TINY))
def test_score_matches_model_applied_to_first_crop(exports, name):
  run, model, variables = exports[name]
  det = scoring.Detector.load(run, batch_size=4)
  waves = [_speechlike(s, seed=i) for i, s in enumerate((0.2, 0.5, 1.7, 3.0, 0.9))]
  expected = _reference(model, variables, [audio_lib.fix_length(w, N) for w in waves])
  got = det.score_batch(waves, RATE)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  assert det.score(waves[2], RATE) == pytest.approx(expected[2], rel=1e-4, abs=1e-4)
  # Not all the same: the scorer really reads each input.
  assert np.ptp(expected) > 1e-4


@pytest.mark.parametrize("pad", ["zero", "repeat", None])
def test_short_clips_are_padded_as_the_model_was_trained(tmp_path, pad):
  """model.json's `pad` (training's data.pad) decides how 4 s mode and short full-length files are padded; an
  export without it (older ones were all repeat-padded in training) repeat-pads; an unknown value is refused."""
  path = str(tmp_path / "model")
  model, variables = _export(path, "grnn", **({} if pad is None else {"pad": pad}))
  det = scoring.Detector.load(path, batch_size=4)
  want, other = (pad or "repeat"), ("repeat" if pad == "zero" else "zero")
  assert det.pad == want
  short = [_speechlike(s, seed=20 + i) for i, s in enumerate((0.1, 0.3))]  # both shorter than N
  long = _speechlike(0.9, seed=22)
  expected = _reference(model, variables, [audio_lib.fix_length(w, N, pad=want) for w in short + [long]])
  wrong = _reference(model, variables, [audio_lib.fix_length(w, N, pad=other) for w in short])
  assert np.all(np.abs(expected[:2] - wrong) > 1e-3), "the two paddings must score differently here"
  np.testing.assert_allclose(det.score_batch(short + [long], RATE), expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(det.score_batch(short, RATE, full_length=True), expected[:2], rtol=1e-4,
                             atol=1e-4)
  if pad is None:
    with open(os.path.join(path, "model.json")) as f:
      meta = json.load(f)
    assert "pad" not in meta
    with open(os.path.join(path, "model.json"), "w") as f:
      json.dump(dict(meta, pad="reflect"), f)
    with pytest.raises(checkpoints.CheckpointError, match="'pad' must be one of"):
      scoring.Detector.load(path)


def test_batches_compile_once_per_bucket_and_do_not_mix_rows(exports):
  run, model, variables = exports["resnet18"]
  det = scoring.Detector.load(run, batch_size=4)
  waves = [_speechlike(0.6, seed=10 + i) for i in range(11)]  # batches of 4, 4, 3 (-> padded to 4)
  got = det.score_batch(waves, RATE)
  assert det.compiled_shapes() == 1
  alone = np.array([det.score(w, RATE) for w in waves[:2]])  # 1 row -> bucket of 1: a second shape
  assert det.compiled_shapes() == 2
  np.testing.assert_allclose(alone, got[:2], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got,
                             _reference(model, variables,
                                        [audio_lib.fix_length(w, N) for w in waves]),
                             rtol=1e-4,
                             atol=1e-4)


def test_in_memory_resampling_downmix_and_int16(detector):
  mono16 = _speechlike(0.9, seed=7)
  import librosa
  x8k = librosa.resample(mono16, orig_sr=RATE, target_sr=8000, res_type="soxr_hq")
  expected = detector.score(librosa.resample(x8k, orig_sr=8000, target_sr=RATE, res_type="soxr_hq"),
                            RATE)
  assert detector.score(x8k, 8000) == pytest.approx(expected, abs=1e-5)
  stereo = np.stack([mono16 * 0.5, mono16 * 1.5], axis=1)  # mean of the channels = mono16
  assert detector.score(stereo, RATE) == pytest.approx(detector.score(mono16, RATE), abs=1e-5)
  pcm = np.round(mono16 * 32767).astype(np.int16)
  assert detector.score(pcm, RATE) == pytest.approx(detector.score(pcm / 32768.0, RATE), abs=1e-5)


@pytest.mark.parametrize("bad,match", [
    (np.zeros(RATE, np.float32), "silent"),
    (np.zeros(0, np.float32), "0 samples"),
    (np.full(100, np.nan, np.float32), "NaN"),
    (np.zeros((2, 4000), np.float32) + 0.1, "channels-first"),
    (np.zeros((2, 2, 2), np.float32), "shape"),
    (np.ones(100, np.uint8), "dtype"),
])
def test_bad_waveforms_raise_clear_errors(detector, bad, match):
  with pytest.raises(scoring.ScoringError, match=match):
    detector.score_batch([_speechlike(0.5), bad], RATE)
  with pytest.raises(scoring.ScoringError, match="waveform 1"):
    detector.score_batch([_speechlike(0.5), bad], RATE)


def test_window_starts_cover_the_signal_with_half_overlap():
  assert scoring.window_starts(100, 100) == [0]
  assert scoring.window_starts(30, 100) == [0]
  assert scoring.window_starts(150, 100) == [0, 50]
  assert scoring.window_starts(151, 100) == [0, 50, 51]
  length = int(7.1 * RATE)
  starts = scoring.window_starts(length, N)
  assert starts[0] == 0 and starts[-1] + N == length
  assert all(0 < b - a <= N // 2 for a, b in zip(starts, starts[1:]))
  assert starts[:-1] == list(range(0, length - N, N // 2))


def test_full_length_is_the_mean_or_min_of_window_scores(exports):
  run, model, variables = exports["grnn"]
  det = scoring.Detector.load(run, batch_size=8)
  long = _speechlike(2.3, seed=3)
  short = _speechlike(0.3, seed=4)
  starts = scoring.window_starts(long.size, N)
  assert len(starts) == 9
  per_window = _reference(model, variables, [long[s:s + N] for s in starts])
  got = det.score_batch([long, short], RATE, full_length=True)
  assert got[0] == pytest.approx(per_window.mean(), abs=1e-4)
  assert det.score(long, RATE, full_length=True, aggregate="min") == pytest.approx(per_window.min(),
                                                                                   abs=1e-4)
  # A file shorter than one window: full-length and 4 s mode agree (one repeat-padded window).
  assert got[1] == pytest.approx(det.score(short, RATE), abs=1e-5)
  assert det.score(long, RATE) == pytest.approx(per_window[0], abs=1e-4)
  with pytest.raises(ValueError, match="aggregate"):
    det.score(long, RATE, full_length=True, aggregate="max")


# --------------------------------------------------------------------------------------------------
# Files.


def test_score_files_any_format_rate_and_channels(detector, audio_dir):
  names = ["a_8k.wav", "b_22k_stereo.flac", "c_44k.wav", "d_16k_long.flac", "e_16k.ogg"]
  paths = [str(audio_dir / n) for n in names]
  results = detector.score_files(paths, progress=False)
  assert [r.path for r in results] == paths
  assert all(r.ok and r.num_windows == 1 for r in results), [r.error for r in results]
  expected = detector.score_batch([audio_lib.load_audio(p) for p in paths], RATE)
  np.testing.assert_allclose([r.score for r in results], expected, atol=1e-5)
  # The stereo file is scored as the mean of its channels, resampled from 22.05 kHz.
  data, rate = sf.read(paths[1], dtype="float32")
  assert rate == 22050 and data.shape[1] == 2
  assert results[1].score == pytest.approx(detector.score(data, rate), abs=1e-4)
  np.testing.assert_allclose([r.duration for r in results], [1.2, 0.8, 0.3, 7.1, 0.6], atol=2e-3)
  for r in results:
    assert r.label == ("bonafide" if r.score > THRESHOLD else "spoof")
    assert r.probability == pytest.approx(1 / (1 + np.exp(-(r.score - THRESHOLD))), abs=1e-9)

  full = detector.score_files(paths, full_length=True, progress=False, num_workers=0)
  long = audio_lib.load_audio(paths[3])
  windows = scoring.window_starts(long.size, N)
  assert full[3].num_windows == len(windows) == 28
  assert full[3].score == pytest.approx(detector.score(long, RATE, full_length=True), abs=1e-4)
  assert full[3].score != pytest.approx(results[3].score, abs=1e-4)
  # Files no longer than one window score the same in both modes.
  assert full[2].score == pytest.approx(results[2].score, abs=1e-5)


def test_mp3_goes_through(detector, tmp_path):
  path = str(tmp_path / "x.mp3")
  try:
    sf.write(path, _speechlike(1.0, 22050, 8), 22050, format="MP3")
  except Exception as e:  # libsndfile built without MPEG support
    pytest.skip(f"cannot write mp3 here: {e}")
  (r,) = detector.score_files([path], progress=False)
  assert r.ok and r.duration == pytest.approx(1.0, abs=0.1)
  assert r.score == pytest.approx(detector.score(audio_lib.load_audio(path), RATE), abs=1e-5)


def test_bad_files_are_reported_and_the_rest_scored(detector, audio_dir):
  bad = audio_dir / "bad"
  names = ["garbage.wav", "empty.flac", "fine.wav", "zero_samples.wav", "silent.wav"]
  results = detector.score_files([str(bad / n) for n in names], progress=False)
  by = {os.path.basename(r.path): r for r in results}
  assert by["fine.wav"].ok and np.isfinite(by["fine.wav"].score)
  assert "cannot decode" in by["garbage.wav"].error and "garbage.wav" in by["garbage.wav"].error
  assert "empty" in by["empty.flac"].error
  assert "0 samples" in by["zero_samples.wav"].error
  assert "silent" in by["silent.wav"].error and by["silent.wav"].duration == pytest.approx(1.0)
  for n in names:
    if n != "fine.wav":
      assert np.isnan(by[n].score) and by[n].label is None and by[n].num_windows == 0


def test_calibration_from_model_json(tmp_path):
  rng = np.random.default_rng(0)
  labels = np.r_[np.ones(300), np.zeros(700)]
  true_a, true_b = 1.7, -0.4
  scores = rng.normal(size=labels.size) * 3
  labels = (rng.random(labels.size) < 1 / (1 + np.exp(-(true_a * scores + true_b)))).astype(int)
  cal = scoring.fit_calibration(scores, labels)
  assert cal["a"] == pytest.approx(true_a, rel=0.2) and cal["b"] == pytest.approx(true_b, abs=0.25)

  path = str(tmp_path / "model")
  _export(path, "grnn")
  det = scoring.Detector.load(path)
  assert det.calibration is None and "uncalibrated" in det.probability_note
  assert det.probability(THRESHOLD) == pytest.approx(0.5)
  scoring.write_calibration(str(tmp_path), cal)
  det = scoring.Detector.load(path)
  assert det.calibration == {"a": cal["a"], "b": cal["b"]}
  assert det.probability(2.0) == pytest.approx(1 / (1 + np.exp(-(cal["a"] * 2.0 + cal["b"]))))
  with pytest.raises(ValueError, match="both classes"):
    scoring.fit_calibration([1.0, 2.0], [1, 1])


# --------------------------------------------------------------------------------------------------
# Broken exports.


def _corrupt(path, how):
  meta_path = os.path.join(path, "model.json")
  if how == "json":
    with open(meta_path, "r+") as f:
      f.truncate(40)
  elif how == "version":
    with open(meta_path) as f:
      meta = json.load(f)
    meta["format"] = "jaxplastic-model/0"
    with open(meta_path, "w") as f:
      json.dump(meta, f)
  elif how == "msgpack":
    var_path = os.path.join(path, "variables.msgpack")
    size = os.path.getsize(var_path)
    with open(var_path, "r+b") as f:
      f.truncate(size // 2)
  elif how == "missing":
    os.remove(os.path.join(path, "variables.msgpack"))
  elif how == "unknown_model":
    with open(meta_path) as f:
      meta = json.load(f)
    meta["model"]["name"] = "transformer9000"
    with open(meta_path, "w") as f:
      json.dump(meta, f)


@pytest.mark.parametrize("how,match", [
    ("json", "model.json is corrupt"),
    ("version", "format 'jaxplastic-model/0'"),
    ("msgpack", "corrupt or truncated"),
    ("missing", "not an exported jaxplastic model"),
    ("unknown_model", "cannot build the model"),
])
def test_broken_export_clear_error_and_exit_2(exports, tmp_path, audio_dir, capsys, how, match):
  path = str(tmp_path / "model")
  shutil.copytree(os.path.join(exports["grnn"][0], "model"), path)
  _corrupt(path, how)
  with pytest.raises(checkpoints.CheckpointError, match=match):
    scoring.Detector.load(path)
  code = score_cli.main(["--checkpoint", str(tmp_path), str(audio_dir / "a_8k.wav")])
  assert code == 2
  err = capsys.readouterr().err
  assert "cannot load checkpoint" in err and path in err


def test_missing_checkpoint_folder():
  with pytest.raises(checkpoints.CheckpointError, match="does not exist"):
    scoring.Detector.load("/nonexistent/run")


# --------------------------------------------------------------------------------------------------
# CLI.


def test_cli_formats_parse_and_agree(exports, audio_dir, tmp_path, capsys):
  run = exports["resnet18"][0]
  base = ["--checkpoint", run, str(audio_dir), "--batch-size", "4"]
  assert score_cli.main(base + ["--format", "table"]) == 0
  out = capsys.readouterr().out
  assert f"threshold: {THRESHOLD:.6f}" in out and "dev-set EER threshold" in out
  table_rows = [l for l in out.splitlines() if not l.startswith("#") and str(audio_dir) in l]
  assert len(table_rows) == 5 and all(l.split()[3] in ("bonafide", "spoof") for l in table_rows)

  csv_path = str(tmp_path / "s.csv")
  assert score_cli.main(base + ["--format", "csv", "--out", csv_path]) == 0
  captured = capsys.readouterr()
  assert captured.out == "" and "threshold" in captured.err
  with open(csv_path) as f:
    rows = list(csv.DictReader(f))
  assert [os.path.basename(r["path"]) for r in rows
         ] == sorted(["a_8k.wav", "b_22k_stereo.flac", "c_44k.wav", "d_16k_long.flac", "e_16k.ogg"])
  csv_scores = {os.path.basename(r["path"]): float(r["score"]) for r in rows}

  assert score_cli.main(base + ["--format", "json"]) == 0
  doc = json.loads(capsys.readouterr().out)
  assert doc["threshold"] == pytest.approx(THRESHOLD) and doc["mode"] == "fixed"
  for r in doc["results"]:
    assert r["score"] == pytest.approx(csv_scores[os.path.basename(r["path"])], abs=1e-6)
    assert r["label"] == ("bonafide" if r["score"] > THRESHOLD else "spoof")
    assert r["error"] is None

  assert score_cli.main(base + ["--format", "asvspoof"]) == 0
  lines = capsys.readouterr().out.splitlines()
  parsed = {}
  for line in lines:
    utt, score = line.split()
    parsed[utt] = float(score)
  assert parsed == pytest.approx({
      os.path.splitext(k)[0]: v for k, v in csv_scores.items()
  },
                                 abs=1e-6)

  # Scores match the Python API.
  det = scoring.Detector.load(run)
  assert csv_scores["a_8k.wav"] == pytest.approx(det.score_files([str(audio_dir / "a_8k.wav")],
                                                                 progress=False)[0].score,
                                                 abs=1e-5)


def test_cli_full_length_and_recursive_with_failures(exports, audio_dir, capsys):
  run = exports["grnn"][0]
  code = score_cli.main([
      "--checkpoint", run,
      str(audio_dir), "--recursive", "--full-length", "--format", "json", "--aggregate", "min",
      "--batch-size", "16"
  ])
  assert code == 1
  captured = capsys.readouterr()
  doc = json.loads(captured.out)
  assert doc["mode"] == "full_length" and doc["aggregate"] == "min"
  by = {os.path.basename(r["path"]): r for r in doc["results"]}
  assert len(by) == 10  # 5 good + 5 in bad/ (notes.txt is not audio)
  failed = {k for k, r in by.items() if r["error"]}
  assert failed == {"garbage.wav", "empty.flac", "zero_samples.wav", "silent.wav"}
  assert by["d_16k_long.flac"]["windows"] == 28 and by["fine.wav"]["windows"] == 2
  det = scoring.Detector.load(run)
  long = audio_lib.load_audio(str(audio_dir / "d_16k_long.flac"))
  assert by["d_16k_long.flac"]["score"] == pytest.approx(det.score(long,
                                                                   RATE,
                                                                   full_length=True,
                                                                   aggregate="min"),
                                                         abs=1e-4)
  assert "4 failed" in captured.err and "silent" in captured.err


def test_cli_usage_errors(exports, audio_dir, tmp_path, capsys):
  run = exports["grnn"][0]
  assert score_cli.main(["--checkpoint", run, str(tmp_path / "nope.wav")]) == 2
  assert "no such file" in capsys.readouterr().err
  (tmp_path / "empty_dir").mkdir()
  assert score_cli.main(["--checkpoint", run, str(tmp_path / "empty_dir")]) == 2
  assert "no audio files" in capsys.readouterr().err
  assert score_cli.main(["--checkpoint", run, str(audio_dir), "--batch-size", "0"]) == 2
  assert score_cli.main([str(audio_dir)]) == 2  # --checkpoint missing
  assert score_cli.main(["--help"]) == 0


def test_module_entry_point_runs(exports, tmp_path):
  """`python -m jaxplastic.score_cli` runs (scoring itself is tested in-process and end to end)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "jaxplastic.score_cli", "--help"],
                        capture_output=True,
                        text=True,
                        cwd=REPO,
                        env=env,
                        timeout=60)
  assert proc.returncode == 0 and "--full-length" in proc.stdout
  proc = subprocess.run([
      sys.executable, "-m", "jaxplastic.score_cli", "--checkpoint", exports["grnn"][0],
      str(tmp_path / "missing.wav")
  ],
                        capture_output=True,
                        text=True,
                        cwd=REPO,
                        env=env,
                        timeout=60)
  assert proc.returncode == 2 and "missing.wav: no such file" in proc.stderr


def test_utterance_ids_are_unique_and_whitespace_free():
  ids = score_cli.utterance_ids(["a/x.wav", "b/x.flac", "c/my file.wav", "d/LA_E_1.flac"])
  assert ids[3] == "LA_E_1" and ids[2] == "my_file"
  assert len(set(ids)) == 4 and all(len(i.split()) == 1 for i in ids)


# --------------------------------------------------------------------------------------------------
# End to end: a trained smoke run, scored through the CLI, gives the EER the run reported.


@pytest.mark.skipif(importlib.util.find_spec("configs.smoke") is None,
                    reason="configs/smoke.py is missing")
def test_cli_reproduces_the_eval_eer_of_a_smoke_run(tmp_path):
  from configs import smoke  # pylint: disable=g-import-not-at-top
  from jaxplastic import experiment  # pylint: disable=g-import-not-at-top

  config = smoke.get_config("resnet18")  # BatchNorm: train/eval-mode slips would show
  config.data.root = str(tmp_path / "corpus")
  workdir = str(tmp_path / "run")
  summary = experiment.run(config, workdir)
  with open(os.path.join(workdir, "results.json")) as f:
    recorded = json.load(f)["stages"][-1]["eval"]["eer"]
  assert recorded == pytest.approx(summary["stages"][-1]["eval"]["eer"])
  (score_name,) = [
      n for n in os.listdir(os.path.join(workdir, "scores")) if n.endswith("_eval.txt")
  ]
  reference = evaluation.read_score_file(os.path.join(workdir, "scores", score_name))
  eval_flac = os.path.join(str(tmp_path / "corpus"), "LA", "ASVspoof2019_LA_eval", "flac")

  out = str(tmp_path / "cli_scores.txt")
  proc = subprocess.run([
      sys.executable, "-m", "jaxplastic.score_cli", "--checkpoint", workdir, eval_flac, "--format",
      "asvspoof", "--out", out
  ],
                        capture_output=True,
                        text=True,
                        cwd=REPO,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"),
                        timeout=300)
  assert proc.returncode == 0, proc.stderr
  with open(out) as f:
    cli = {utt: float(s) for utt, s in (line.split() for line in f)}
  scores = np.array([cli[u] for u in reference["utt_ids"]])
  labels = reference["labels"]
  np.testing.assert_allclose(scores, reference["scores"], atol=1e-4)
  # The recorded EER is the score file's; the CLI's scores equal them up to float kernels, so a near-tie could
  # reorder a pair: compare the EER on the score file itself, the CLI scores elementwise.
  ref = np.asarray(reference["scores"])
  eer, _ = evaluation.compute_eer(ref[labels == 1], ref[labels == 0])
  assert 100.0 * eer == pytest.approx(recorded, abs=1e-6)
