"""Spoofing attacks and the shared channel of the demo corpus (see `demo` and docs/demo_corpus.md).

Each attack maps float64 16 kHz audio to a spoof of the same length; `channel` is applied to bona fide
and spoofed audio alike, with every parameter drawn independently of the label.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import sys
import types
from typing import Any, Iterator

import numpy as np
import scipy.signal

from jaxplastic.data import demo_sources
from jaxplastic.data.demo_sources import DemoCorpusError

SAMPLE_RATE = demo_sources.SAMPLE_RATE
# Channel ranges shared by both classes: noise SNR and the pass band. The top edge is the *voice's*: a
# narrowband voice (8 kHz recordings, nothing above 4 kHz) is low-passed below 3.6 kHz, a wideband one
# (G.722's 50-7000 Hz, 16 kHz wav) below 7 kHz, bona fide and spoofs alike, because vocoders re-create the
# band above a recording's edge; so the band tells the voice, never the label. The recordings were
# high-passed while vocoders re-create the lowest band (4-14 dB more energy below 150 Hz in spoofs), so the
# low edge is steep and well inside every source's band too.
SNR_DB = (40.0, 60.0)
LOWPASS_HZ = {"narrow": (3000.0, 3600.0), "wide": (6400.0, 7000.0)}
HIGHPASS_HZ = (180.0, 250.0)


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
      demo_sources.package_dir(package.split(".")[0]) or "", rel)
  sys.modules["pkg_resources"] = shim
  try:
    yield
  finally:
    if sys.modules.get("pkg_resources") is shim:
      del sys.modules["pkg_resources"]


def import_vocoders() -> tuple[Any, Any, Any]:
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
  pyworld, _, _ = import_vocoders()
  f0, t = pyworld.dio(x, SAMPLE_RATE, frame_period=5.0)
  f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
  sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
  ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
  # Formant shift: read the envelope at bins / warp (warp > 1 moves formants up).
  # Only upwards: warping down would empty the band under the source's top edge, a bandwidth cue.
  warp = rng.uniform(1.0, 1.12)
  bins = np.arange(sp.shape[1], dtype=np.float64)
  src = np.clip(bins / warp, 0, sp.shape[1] - 1)
  sp = np.stack([np.interp(src, bins, row) for row in sp])
  f0 = f0 * rng.uniform(0.8, 1.25)
  y = pyworld.synthesize(f0, np.ascontiguousarray(sp), ap, SAMPLE_RATE, 5.0)
  return _fit_length(y, x.size)


@functools.lru_cache(maxsize=1)
def _mel_pinv(n_fft: int, n_mels: int) -> np.ndarray:
  _, _, librosa = import_vocoders()
  return np.linalg.pinv(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels))


def _attack_griffin_lim(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  _, _, librosa = import_vocoders()
  n_fft, hop = 1024, 256
  mel = librosa.feature.melspectrogram(y=x, sr=SAMPLE_RATE, n_fft=n_fft, hop_length=hop, n_mels=80,
                                       power=2.0)
  # Pseudo-inverse of the filterbank (librosa's NNLS inverse is ~10x slower for a similar result).
  stft_mag = np.sqrt(np.maximum(_mel_pinv(n_fft, 80) @ mel, 0.0))
  y = librosa.griffinlim(stft_mag, n_iter=int(rng.integers(8, 33)), hop_length=hop, n_fft=n_fft,
                         length=x.size, random_state=int(rng.integers(2**31)))
  return _fit_length(y, x.size)


def _attack_mlsa(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  pyworld, pysptk, _ = import_vocoders()
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
  _, _, librosa = import_vocoders()
  # Only upwards: shifting 8 kHz material down empties its top band (above ~3 kHz), a bandwidth cue.
  steps = rng.uniform(1.5, 4.0)
  return _fit_length(librosa.effects.pitch_shift(x, sr=SAMPLE_RATE, n_steps=steps), x.size)


def _attack_lpc(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  pyworld, _, librosa = import_vocoders()
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


def attack_concatenation(x: np.ndarray, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
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


ATTACK_FNS = {
    "A01": _attack_world,
    "A02": _attack_griffin_lim,
    "A03": _attack_mlsa,
    "A04": _attack_pitch_shift,
    "A05": _attack_lpc,
}


# --------------------------------------------------------------------------------------------------
# Shared channel: everything here is drawn independently of the label.


def channel(x: np.ndarray, rng: np.random.Generator, band: str = "narrow") -> np.ndarray:
  """Pads, band-limits (to the voice's `band`: "narrow" or "wide"), levels, adds noise and applies a
  codec; returns float32 in [-1, 1]."""
  pads = (rng.uniform(0.0, 0.25, size=2) * SAMPLE_RATE).astype(int)
  y = np.pad(x, (pads[0], pads[1]))
  low = scipy.signal.butter(8, rng.uniform(*LOWPASS_HZ[band]), "lowpass", fs=SAMPLE_RATE, output="sos")
  high = scipy.signal.butter(8, rng.uniform(*HIGHPASS_HZ), "highpass", fs=SAMPLE_RATE, output="sos")
  y = scipy.signal.sosfiltfilt(low, scipy.signal.sosfilt(high, y))
  rms_db = rng.uniform(-30.0, -20.0)
  y *= 10.0 ** (rms_db / 20.0) / (np.sqrt(np.mean(y**2)) + 1e-12)
  snr_db = rng.uniform(*SNR_DB)
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
