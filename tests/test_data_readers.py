"""Tests for audio decoding, the ASVspoof 2019 / Fake-or-Real readers and `load_split`."""

import os
import shutil
import sys
import types

import librosa
import ml_collections
import numpy as np
import pytest
import soundfile as sf

import jaxplastic.data
from jaxplastic.data import (AudioError, CorpusLayoutError, ProtocolError, fix_length,
                             load_asvspoof2019, load_audio, load_fakeorreal, load_split,
                             read_asv_scores, read_cm_protocol, trim_silence)

try:
  from tests import fixtures_data as fx
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
  import fixtures_data as fx


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
  base = str(tmp_path_factory.mktemp("corpora"))
  for_original, stereo = fx.make_for_original(base)
  return {"base": base, "LA": fx.make_asvspoof2019(base, "LA"),
          "PA": fx.make_asvspoof2019(base, "PA"), "for-2sec": fx.make_for_2sec(base),
          "for-original": for_original, "stereo": stereo}


# ---------------------------------------------------------------- audio


def test_load_audio_flac_is_exact_pcm16(tmp_path):
  wav = fx.tone(1000, 3)
  path = str(tmp_path / "x.flac")
  fx.write_flac(path, wav)
  out = load_audio(path)
  assert out.dtype == np.float32 and out.shape == (1000,)
  np.testing.assert_allclose(out, np.round(wav * 32768) / 32768, atol=1 / 32768)


def test_load_audio_downmixes_and_resamples(corpora):
  stereo, rate = sf.read(corpora["stereo"], dtype="float32")
  assert rate == 22050 and stereo.shape == (2205, 2)
  out = load_audio(corpora["stereo"])
  expected = librosa.resample(stereo.mean(axis=1), orig_sr=22050, target_sr=16000,
                              res_type="soxr_hq")
  assert out.shape == (1600,)
  np.testing.assert_allclose(out, expected, atol=1e-6)
  # Resampling keeps frequencies: channel 0's tone (seed 101, 700 Hz) is still the spectral peak.
  spectrum = np.abs(np.fft.rfft(out))
  assert np.fft.rfftfreq(out.size, 1 / 16000)[spectrum.argmax()] == pytest.approx(700, abs=10)


def test_load_audio_other_formats(tmp_path):
  wav = fx.tone(4000, 5)
  for fmt, ext in (("OGG", "ogg"), ("MP3", "mp3")):
    path = str(tmp_path / f"x.{ext}")
    sf.write(path, wav, 16000, format=fmt)
    out = load_audio(path)
    # Lossy codecs add delay and padding; the signal energy must survive.
    assert out.dtype == np.float32 and abs(out.size - 4000) < 2000
    assert np.sqrt(np.mean(out**2)) == pytest.approx(np.sqrt(np.mean(wav**2)), rel=0.2)


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("zero_bytes", "0 bytes"),
    ("zero_samples", "0 samples"),
    ("truncated", "cannot decode"),
    ("garbage", "cannot decode"),
    ("nan", "NaN or Inf"),
])
def test_load_audio_bad_files_name_the_file(tmp_path, case, message):
  path = str(tmp_path / f"{case}.flac")
  if case == "zero_bytes":
    open(path, "wb").close()
  elif case == "zero_samples":
    path = str(tmp_path / "zero.wav")
    sf.write(path, np.zeros(0, np.float32), 16000)
  elif case == "truncated":
    fx.write_flac(path, fx.tone(16000, 1))
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(data[:len(data) // 2])
  elif case == "garbage":
    with open(path, "wb") as f:
      f.write(np.random.default_rng(0).bytes(4096))
  elif case == "nan":
    path = str(tmp_path / "nan.wav")
    wav = fx.tone(100, 1)
    wav[50] = np.nan
    sf.write(path, wav, 16000, subtype="FLOAT")
  with pytest.raises(AudioError, match=message) as info:
    load_audio(path)
  assert path in str(info.value)


def test_fix_length_semantics():
  wav = np.arange(10, dtype=np.float32)
  np.testing.assert_array_equal(fix_length(wav, 4), [0, 1, 2, 3])
  np.testing.assert_array_equal(fix_length(wav, 10), wav)
  np.testing.assert_array_equal(fix_length(wav, 25), np.concatenate([wav, wav, wav[:5]]))
  starts = set()
  for seed in range(40):
    out = fix_length(wav, 4, np.random.default_rng(seed))
    start = int(out[0])
    np.testing.assert_array_equal(out, wav[start:start + 4])
    starts.add(start)
  assert starts == set(range(7))  # every offset 0..6 is reachable, nothing beyond
  with pytest.raises(ValueError):
    fix_length(np.zeros(0, np.float32), 4)
  with pytest.raises(ValueError):
    fix_length(wav, 0)


def test_trim_silence_strips_edges_only():
  wav = np.concatenate([np.zeros(4000), fx.tone(8000, 2), np.zeros(16000)]).astype(np.float32)
  trimmed = trim_silence(wav, top_db=40)
  # librosa trims on 2048-sample frames (hop 512), so up to a frame of silence may remain each side.
  assert 8000 <= trimmed.size <= 8000 + 2 * 2048
  silent = np.zeros(100, np.float32)
  assert trim_silence(silent).size == 100


# ---------------------------------------------------------------- protocols


def _write(tmp_path, text, name="proto.txt"):
  path = str(tmp_path / name)
  with open(path, "w") as f:
    f.write(text)
  return path


def test_read_cm_protocol_la_and_pa(corpora):
  for track, protocols in (("LA", fx.LA_PROTOCOLS), ("PA", fx.PA_PROTOCOLS)):
    path = os.path.join(corpora[track], f"ASVspoof2019_{track}_cm_protocols",
                        f"ASVspoof2019.{track}.cm.dev.trl.txt")
    assert read_cm_protocol(path, track) == protocols["dev"]
    assert read_cm_protocol(path, track, split="dev") == protocols["dev"]


def test_read_cm_protocol_allows_trailing_blank_lines_and_crlf(tmp_path):
  path = _write(tmp_path, "LA_0079 LA_T_1138215 - - bonafide\r\nLA_0079 LA_T_1 - A01 spoof\r\n\n\n")
  assert [e[1] for e in read_cm_protocol(path, "LA")] == ["LA_T_1138215", "LA_T_1"]


GOOD_LA = "LA_0079 LA_T_1138215 - - bonafide\n"
GOOD_PA = "PA_0079 PA_T_0000001 aaa - bonafide\n"


@pytest.mark.parametrize("track, bad, what", [
    ("LA", "LA_0079 LA_T_1271820 - A01\n", "expected 5 fields"),
    ("LA", "LA_0079 LA_T_1271820 - A01 spoof extra\n", "expected 5 fields"),
    ("LA", "LA_0079 LA_T_1271820 - A01 fake\n", "KEY must be"),
    ("LA", "LA_0079 PA_T_1271820 - A01 spoof\n", "must start with 'LA_'"),
    ("LA", "LA_0079 LA_T_1271820 - - spoof\n", "ATTACK must be '-'"),
    ("LA", "LA_0079 LA_T_1271820 - A01 bonafide\n", "ATTACK must be '-'"),
    ("LA", "LA_0079 LA_T_1271820 aaa A01 spoof\n", "ENV must be '-'"),
    ("LA", "LA_0079 LA_T_1271820 - AA spoof\n", "LA attack"),
    ("LA", "LA_0079 LA_T_1138215 - - bonafide\n", "repeats line 1"),
    ("LA", "\nLA_0079 LA_T_1271820 - A01 spoof\n", "blank line"),
    ("PA", "PA_0095 PA_T_0005731 aad AA spoof\n", "triplet"),
    ("PA", "PA_0095 PA_T_0005731 aa AA spoof\n", "triplet"),
    ("PA", "PA_0095 PA_T_0005731 - AA spoof\n", "triplet"),
    ("PA", "PA_0095 PA_T_0005731 aaa AD spoof\n", "duple"),
    ("PA", "PA_0095 PA_T_0005731 aaa A01 spoof\n", "duple"),
])
def test_read_cm_protocol_rejects_malformed_line_with_location(tmp_path, track, bad, what):
  path = _write(tmp_path, (GOOD_LA if track == "LA" else GOOD_PA) + bad)
  with pytest.raises(ProtocolError, match=what) as info:
    read_cm_protocol(path, track)
  assert str(info.value).startswith(f"{path}:2: ")


def test_read_cm_protocol_checks_split_letter(tmp_path):
  path = _write(tmp_path, "LA_0069 LA_D_1047731 - - bonafide\n")
  assert len(read_cm_protocol(path, "LA", split="dev")) == 1
  with pytest.raises(ProtocolError, match=f"{path}:1: .*'LA_E_'"):
    read_cm_protocol(path, "LA", split="eval")
  with pytest.raises(ValueError, match="track"):
    read_cm_protocol(path, "DF")


def test_read_asv_scores(corpora):
  path = os.path.join(corpora["LA"], "ASVspoof2019_LA_asv_scores",
                      "ASVspoof2019.LA.asv.dev.gi.trl.scores.txt")
  scores = read_asv_scores(path)
  np.testing.assert_allclose(scores["target"], [7.981530, 5.112])
  np.testing.assert_allclose(scores["nontarget"], [-3.5012, -6.25])
  np.testing.assert_allclose(scores["spoof"], [2.13, -1.5, 0.75])
  assert list(scores["spoof_by_attack"]) == ["A01", "A05"]
  np.testing.assert_allclose(scores["spoof_by_attack"]["A05"], [-1.5, 0.75])


@pytest.mark.parametrize("bad, what", [
    ("bonafide target\n", "expected 3 fields"),
    ("bonafide impostor 1.0\n", "KEY must be"),
    ("bonafide target abc\n", "not a number"),
    ("bonafide target nan\n", "not finite"),
    ("A07 target 1.0\n", "SOURCE must be"),
    ("bonafide spoof 1.0\n", "SOURCE must be"),
])
def test_read_asv_scores_rejects_malformed(tmp_path, bad, what):
  path = _write(tmp_path, "bonafide target 7.98\n" + bad)
  with pytest.raises(ProtocolError, match=what) as info:
    read_asv_scores(path)
  assert str(info.value).startswith(f"{path}:2: ")


# ---------------------------------------------------------------- ASVspoof 2019


@pytest.mark.parametrize("track", ["LA", "PA"])
@pytest.mark.parametrize("split", ["train", "dev", "eval"])
def test_load_asvspoof2019_follows_protocol_not_folder(corpora, track, split):
  protocol = (fx.LA_PROTOCOLS if track == "LA" else fx.PA_PROTOCOLS)[split]
  for root in (corpora[track], corpora["base"]):  # the LA/ folder itself, or its parent
    data = load_asvspoof2019(root, track, split)
    assert data.name == split and data.corpus == f"asvspoof2019_{track.lower()}"
    assert [u.utt_id for u in data.items] == [p[1] for p in protocol]
    assert data.labels().tolist() == [int(p[4] == "bonafide") for p in protocol]
    assert [(u.speaker, u.env, u.attack) for u in data.items] == [(p[0], p[2], p[3])
                                                                  for p in protocol]
    for u in data.items:
      assert u.path == os.path.join(corpora[track], f"ASVspoof2019_{track}_{split}", "flac",
                                    u.utt_id + ".flac")
      assert os.path.isfile(u.path)
  flac_dir = os.path.dirname(data.items[0].path)
  extra = 2 if split != "train" else 0
  assert len(os.listdir(flac_dir)) == len(protocol) + extra  # enrollment files were ignored
  if split == "train":
    assert data.asv_scores is None
  else:
    n_spoof = sum(k == "spoof" for _, k, _ in fx.ASV_SCORES[track][split])
    assert data.asv_scores["spoof"].shape == (n_spoof,)


def test_split_counts_and_labels(corpora):
  data = load_asvspoof2019(corpora["LA"], "LA", "eval")
  assert data.counts() == {"bonafide": 2, "spoof": 4, "A07": 1, "A11": 1, "A16": 1, "A19": 1}
  labels = data.labels()
  assert labels.dtype == np.int32 and labels.tolist() == [0, 1, 0, 0, 1, 0]


def test_missing_flacs_one_error_with_count(tmp_path):
  root = fx.make_asvspoof2019(str(tmp_path), "LA")
  train = load_asvspoof2019(root, "LA", "train")
  removed = [u.path for u in train.items[:6]]
  for path in removed:
    os.remove(path)
  with pytest.raises(CorpusLayoutError, match="6 of 8 flac files") as info:
    load_asvspoof2019(root, "LA", "train")
  message = str(info.value)
  assert all(p in message for p in removed[:5]) and removed[5] not in message
  assert len(load_asvspoof2019(root, "LA", "train", check_files=False).items) == 8
  shutil.rmtree(os.path.join(root, "ASVspoof2019_LA_dev"))
  with pytest.raises(CorpusLayoutError, match="flac folder"):
    load_asvspoof2019(root, "LA", "dev")


def test_asvspoof_layout_errors(tmp_path, corpora):
  with pytest.raises(CorpusLayoutError, match="ASVspoof2019_LA_cm_protocols"):
    load_asvspoof2019(str(tmp_path / "nowhere"), "LA", "train")
  with pytest.raises(CorpusLayoutError, match="ASVspoof2019_PA_cm_protocols"):
    load_asvspoof2019(corpora["LA"], "PA", "train")
  with pytest.raises(ValueError, match="split"):
    load_asvspoof2019(corpora["LA"], "LA", "test")
  root = fx.make_asvspoof2019(str(tmp_path), "LA")
  os.remove(os.path.join(root, "ASVspoof2019_LA_cm_protocols", "ASVspoof2019.LA.cm.eval.trl.txt"))
  with pytest.raises(CorpusLayoutError, match="CM protocol"):
    load_asvspoof2019(root, "LA", "eval")


def test_bad_protocol_line_surfaces_through_loader(tmp_path):
  root = fx.make_asvspoof2019(str(tmp_path), "PA")
  path = os.path.join(root, "ASVspoof2019_PA_cm_protocols", "ASVspoof2019.PA.cm.dev.trl.txt")
  with open(path, "a") as f:
    f.write("PA_0070 PA_D_0008923 ccd CC spoof\n")
  with pytest.raises(ProtocolError, match=f"{path}:4: .*triplet"):
    load_asvspoof2019(root, "PA", "dev")


# ---------------------------------------------------------------- Fake-or-Real


def test_for_2sec_nested(corpora):
  for split, folder in (("train", "training"), ("dev", "validation"), ("eval", "testing")):
    data = load_fakeorreal(corpora["for-2sec"], split)
    counts = fx.FOR_COUNTS[folder]
    assert data.corpus == "fakeorreal" and data.name == split
    assert data.counts() == {"bonafide": counts["real"], "spoof": counts["fake"],
                             "fake": counts["fake"]}
    split_dir = os.path.join(corpora["for-2sec"], "for-2seconds", folder)
    for u in data.items:
      assert u.path.startswith(split_dir + os.sep)
      assert u.utt_id == os.path.relpath(u.path, split_dir)
      assert u.label == (1 if u.utt_id.startswith("real/") else 0)
      assert u.attack == ("-" if u.label else "fake")
      assert ("mp3" in u.utt_id) == (u.label == 0)
      assert not os.path.basename(u.path).startswith(".")


def test_for_original_stereo_22k(corpora):
  data = load_fakeorreal(corpora["for-original"], "train")
  assert corpora["stereo"] in [u.path for u in data.items]
  assert load_audio(corpora["stereo"]).shape == (1600,)


def test_for_layout_errors(tmp_path, corpora):
  with pytest.raises(CorpusLayoutError, match="ambiguous"):
    load_fakeorreal(corpora["base"], "train")  # holds for-2sec and for-original
  with pytest.raises(CorpusLayoutError, match="no Fake-or-Real split folders"):
    load_fakeorreal(corpora["LA"], "train")
  with pytest.raises(CorpusLayoutError, match="not a folder"):
    load_fakeorreal(str(tmp_path / "missing"), "train")
  with pytest.raises(ValueError, match="split"):
    load_fakeorreal(corpora["for-2sec"], "validation")
  deep = tmp_path / "a" / "b" / "c" / "d" / "e"
  shutil.copytree(os.path.join(corpora["for-2sec"], "for-2seconds"), deep)
  with pytest.raises(CorpusLayoutError, match="no Fake-or-Real"):
    load_fakeorreal(str(tmp_path / "a"), "train")  # depth 4 is beyond the search
  assert len(load_fakeorreal(str(tmp_path / "a" / "b"), "train").items) == 5
  for path in os.listdir(deep / "testing" / "fake"):
    os.remove(deep / "testing" / "fake" / path)
  with pytest.raises(CorpusLayoutError, match="no audio files"):
    load_fakeorreal(str(deep), "eval")


# ---------------------------------------------------------------- load_split


def test_load_split_dispatch(corpora):
  cfg = ml_collections.ConfigDict({"corpus": "asvspoof2019_pa", "root": corpora["base"]})
  assert [u.utt_id for u in load_split(cfg, "eval").items] == [p[1]
                                                               for p in fx.PA_PROTOCOLS["eval"]]
  cfg = ml_collections.ConfigDict({"corpus": "asvspoof2019_la", "root": corpora["LA"]})
  assert len(load_split(cfg, "dev").items) == len(fx.LA_PROTOCOLS["dev"])
  cfg = ml_collections.ConfigDict({"corpus": "fakeorreal", "root": corpora["for-2sec"]})
  assert len(load_split(cfg, "dev").items) == 4


def test_load_split_errors(tmp_path, corpora):
  with pytest.raises(ValueError, match="asvspoof2019_la.*fakeorreal.*demo"):
    load_split(ml_collections.ConfigDict({"corpus": "asvspoof2021", "root": "."}), "train")
  cfg = ml_collections.ConfigDict({"corpus": "asvspoof2019_la", "root": str(tmp_path / "none")})
  with pytest.raises(CorpusLayoutError, match=r"LA\.zip.*--config\.data\.root="):
    load_split(cfg, "train")
  cfg = ml_collections.ConfigDict({"corpus": "fakeorreal", "root": corpora["LA"]})
  with pytest.raises(CorpusLayoutError, match=r"no Fake-or-Real.*--config\.data\.root"):
    load_split(cfg, "train")


def test_load_split_demo_dispatches_lazily(tmp_path, monkeypatch):
  calls = []

  def ensure_demo_corpus(root, seed=0, size="default"):
    calls.append((root, seed, size))
    return fx.make_asvspoof2019(root, "LA")

  fake = types.ModuleType("jaxplastic.data.demo")
  fake.ensure_demo_corpus = ensure_demo_corpus
  monkeypatch.setitem(sys.modules, "jaxplastic.data.demo", fake)
  monkeypatch.setattr(jaxplastic.data, "demo", fake, raising=False)
  root = str(tmp_path / "demo" / "new")
  cfg = ml_collections.ConfigDict({"corpus": "demo", "root": root, "demo_seed": 7,
                                   "demo_size": "tiny"})
  data = load_split(cfg, "train")
  assert calls == [(root, 7, "tiny")] and os.path.isdir(root)
  assert data.corpus == "asvspoof2019_la" and len(data.items) == len(fx.LA_PROTOCOLS["train"])
