"""Audio decoding and fixed-length cropping for the corpus readers and the batch pipeline.

Everything here works on host numpy arrays: audio is float32 mono at `sample_rate` (16 kHz by
default), nominally in [-1, 1]. Decoding problems surface as `AudioError`, whose message names the
file, so a bad file in a 70k-utterance corpus can be found and fixed (or skipped, see
`pipeline.batches`).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import soundfile as sf


class AudioError(Exception):
  """A file could not be turned into usable audio; the message names the file and the problem."""


def _decode_with_soundfile(path: str) -> tuple[np.ndarray, int]:
  data, rate = sf.read(path, dtype="float32", always_2d=True)  # [T, C]
  return data.T, int(rate)


def _decode_with_librosa(path: str) -> tuple[np.ndarray, int]:
  """Fallback for containers libsndfile cannot open (e.g. m4a); needs an audioread backend."""
  import librosa  # pylint: disable=g-import-not-at-top  (heavy; only needed on the rare fallback)

  with warnings.catch_warnings():
    # librosa warns "PySoundFile failed" and about audioread's deprecation on every fallback.
    warnings.simplefilter("ignore")
    data, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
  return np.atleast_2d(data), int(rate)


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
  """Decodes an audio file to float32 mono at `sample_rate`.

  soundfile (libsndfile) reads FLAC/WAV/OGG/MP3; anything it cannot open goes through
  `librosa.load`.
  Channels are averaged; a file at another rate is resampled with soxr ('soxr_hq').

  Args:
    path: the audio file.
    sample_rate: the rate of the returned signal, in Hz.

  Returns:
    float32 array [num_samples].

  Raises:
    AudioError: the file is missing, cannot be decoded, has no samples, or holds NaN/Inf.
  """
  path = os.fspath(path)
  if sample_rate <= 0:
    raise ValueError(f"sample_rate must be positive, got {sample_rate}")
  if not os.path.isfile(path):
    raise AudioError(f"{path}: audio file does not exist (or is not a regular file)")
  if os.path.getsize(path) == 0:
    raise AudioError(f"{path}: audio file is empty (0 bytes)")
  try:
    data, rate = _decode_with_soundfile(path)
  except Exception as sf_error:  # pylint: disable=broad-except  (libsndfile raises several types)
    try:
      data, rate = _decode_with_librosa(path)
    except Exception as fallback_error:  # pylint: disable=broad-except
      raise AudioError(
          f"{path}: cannot decode audio (soundfile: {sf_error}; librosa fallback: "
          f"{type(fallback_error).__name__}: {fallback_error})") from fallback_error
  if data.size == 0 or data.shape[-1] == 0:
    raise AudioError(f"{path}: audio file holds 0 samples")
  wav = data.mean(axis=0, dtype=np.float32) if data.shape[0] > 1 else data[0]
  if not np.all(np.isfinite(wav)):
    raise AudioError(f"{path}: audio holds NaN or Inf values")
  if rate != sample_rate:
    import librosa  # pylint: disable=g-import-not-at-top

    wav = librosa.resample(wav, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    if wav.size == 0:
      raise AudioError(f"{path}: too short to resample from {rate} Hz to {sample_rate} Hz")
  return np.ascontiguousarray(wav, dtype=np.float32)


# How fix_length fills a signal shorter than the target (config.data.pad).
PAD_MODES = ("repeat", "zero")


def fix_length(wav: np.ndarray, num_samples: int, rng: np.random.Generator | None = None, *,
               pad: str = "repeat") -> np.ndarray:
  """Crops or pads a signal to exactly `num_samples`.

  Longer signals: a uniformly random window when `rng` is given (training with random crops), else the first
  `num_samples` (the authors' choice in train and eval; always so in dev/eval, so scores are reproducible).
  Shorter signals: `pad="repeat"` tiles them end to end and cuts (the usual ASVspoof convention of AASIST and
  RawNet2); `pad="zero"` appends zeros (the authors').

  Args:
    wav: [T] signal, T >= 1.
    num_samples: output length.
    rng: source of the crop offset; None means take the first window.
    pad: "repeat" or "zero".

  Returns:
    float32 array [num_samples].
  """
  wav = np.asarray(wav)
  if wav.ndim != 1:
    raise ValueError(f"fix_length expects a 1-D signal, got shape {wav.shape}")
  if num_samples <= 0:
    raise ValueError(f"num_samples must be positive, got {num_samples}")
  if pad not in PAD_MODES:
    raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
  length = wav.shape[0]
  if length == 0:
    raise ValueError("fix_length got an empty signal")
  if length >= num_samples:
    start = 0 if rng is None else int(rng.integers(0, length - num_samples + 1))
    out = wav[start:start + num_samples]
  elif pad == "repeat":
    out = np.tile(wav, -(-num_samples // length))[:num_samples]
  else:
    out = np.concatenate([wav, np.zeros(num_samples - length, wav.dtype)])
  return np.array(out, dtype=np.float32)  # a copy: callers may edit it without touching `wav`


def trim_silence(wav: np.ndarray, top_db: float = 40.0) -> np.ndarray:
  """Removes leading and trailing silence (frames `top_db` below the peak).

  ASVspoof 2019 PA spoofs carry longer trailing silence than bona fide audio, a known shortcut;
  evaluating on trimmed audio shows how much a model relies on it. A fully silent signal is kept.
  """
  import librosa  # pylint: disable=g-import-not-at-top

  trimmed, _ = librosa.effects.trim(wav, top_db=top_db)
  return trimmed if trimmed.size else wav
