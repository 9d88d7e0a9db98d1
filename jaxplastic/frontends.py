"""Audio front-ends as pure, jit-able JAX functions of batched float32 audio.

Three features, all computed inside the model so that the host only ships raw audio:

* `log_mel`: the authors' ResNet input (Mel power spectrogram -> dB -> pad/crop -> z-norm).
* `linear_cepstrum`: the authors' GRNN input "LC" (log power spectrum -> DCT-II over all bins).
* `lfcc`: LFCC with deltas as in the ASVspoof 2019 baseline (its Matlab code as ported to
  PyTorch for the ASVspoof 2021 LFCC-LCNN baseline, `LFCC(320, 160, 512, 16000, 20)`).

Every filterbank, window and DCT matrix is built with numpy from static arguments at trace time,
so the compiled graph holds them as constants. Shapes depend only on the static input length.
Framing slices a [chunks, hop] reshape when hop divides n_fft and gathers otherwise.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST
_PAD_MODES = ("reflect", "constant")
_WINDOWS = ("hann", "hamming")


def num_frames(num_samples: int, hop_length: int) -> int:
  """Number of STFT frames for `num_samples` with center=True padding (n_fft // 2 each side).

  Equals 1 + num_samples // hop_length for any even n_fft, as in librosa and torch.stft.
  """
  if num_samples < 1 or hop_length < 1:
    raise ValueError(f"num_samples ({num_samples}) and hop_length ({hop_length}) must be >= 1")
  return 1 + num_samples // hop_length


def _check_audio(audio: jnp.ndarray, name: str) -> jnp.ndarray:
  """Checks the [B, T] layout and casts to float32."""
  audio = jnp.asarray(audio, jnp.float32)
  if audio.ndim != 2:
    raise ValueError(f"{name}: audio must be [batch, samples], got shape {audio.shape}")
  if audio.shape[1] < 1:
    raise ValueError(f"{name}: audio has no samples (shape {audio.shape})")
  return audio


def window(name: str, win_length: int, n_fft: int) -> np.ndarray:
  """Periodic ("fftbins") Hann or Hamming window of `win_length`, zero-padded centrally to n_fft.

  Matches scipy.signal.get_window(name, win_length, fftbins=True) placed by librosa's
  `pad_center`, and torch.hann_window / torch.hamming_window (periodic) placed by torch.stft.
  """
  if name not in _WINDOWS:
    raise ValueError(f"window must be one of {_WINDOWS}, got {name!r}")
  if not 1 <= win_length <= n_fft:
    raise ValueError(f"win_length ({win_length}) must be in [1, n_fft={n_fft}]")
  phase = 2.0 * np.pi * np.arange(win_length) / win_length
  a0 = 0.5 if name == "hann" else 0.54
  win = a0 - (1.0 - a0) * np.cos(phase)
  left = (n_fft - win_length) // 2
  return np.pad(win, (left, n_fft - win_length - left))


def _frames(audio: jnp.ndarray, n_fft: int, hop_length: int, center: bool,
            pad_mode: str) -> jnp.ndarray:
  """Splits [B, T] audio into [B, frames, n_fft] overlapping frames (librosa/torch framing)."""
  if pad_mode not in _PAD_MODES:
    raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
  if center:
    if pad_mode == "reflect" and audio.shape[1] < 2:
      raise ValueError("reflect padding needs at least 2 samples; use pad_mode='constant'")
    audio = jnp.pad(audio, ((0, 0), (n_fft // 2, n_fft // 2)), mode=pad_mode)
  length = audio.shape[1]
  if length < n_fft:
    raise ValueError(f"{length} samples are fewer than n_fft={n_fft} with center=False")
  count = 1 + (length - n_fft) // hop_length
  if n_fft % hop_length:
    # Measured on CPU (32 x 64000, n_fft 512, hop 160): a gather takes ~7 ms, while slicing a
    # [chunks, hop] reshape and cropping the concatenation to n_fft takes ~90 ms.
    index = hop_length * np.arange(count)[:, None] + np.arange(n_fft)[None, :]
    return audio[:, index]
  # Frame f is chunks f .. f+r-1 of a [chunks, hop] reshape: copies only, no gather.
  r = n_fft // hop_length
  chunks = audio[:, :(count + r - 1) * hop_length].reshape(audio.shape[0], count + r - 1,
                                                            hop_length)
  return jnp.concatenate([chunks[:, k:k + count] for k in range(r)], axis=-1)


def power_spectrogram(audio: jnp.ndarray, *, n_fft: int, hop_length: int,
                      win_length: int | None = None, window_name: str = "hann",
                      center: bool = True, pad_mode: str = "reflect") -> jnp.ndarray:
  """|STFT|^2 of [B, T] audio -> [B, frames, n_fft // 2 + 1] float32 (no scaling, onesided)."""
  audio = _check_audio(audio, "power_spectrogram")
  win = window(window_name, win_length or n_fft, n_fft).astype(np.float32)
  frames = _frames(audio, n_fft, hop_length, center, pad_mode) * win
  spec = jnp.fft.rfft(frames, n=n_fft, axis=-1)
  return jnp.square(spec.real) + jnp.square(spec.imag)


def _hz_to_mel(freq: np.ndarray, htk: bool) -> np.ndarray:
  freq = np.asarray(freq, np.float64)
  if htk:
    return 2595.0 * np.log10(1.0 + freq / 700.0)
  # Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above (librosa's default).
  f_sp = 200.0 / 3
  min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
  mels = freq / f_sp
  log_part = min_log_hz / f_sp + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep
  return np.where(freq >= min_log_hz, log_part, mels)


def _mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
  mels = np.asarray(mels, np.float64)
  if htk:
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
  f_sp = 200.0 / 3
  min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
  min_log_mel = min_log_hz / f_sp
  log_part = min_log_hz * np.exp(logstep * (mels - min_log_mel))
  return np.where(mels >= min_log_mel, log_part, f_sp * mels)


def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False,
                   norm: str | None = "slaney") -> np.ndarray:
  """Triangular Mel filterbank [n_fft // 2 + 1, n_mels] (float64, numpy).

  htk=False, norm='slaney' equals librosa.filters.mel defaults (transposed); htk=True, norm=None
  equals torchaudio.functional.melscale_fbanks defaults.
  """
  if norm not in ("slaney", None):
    raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
  fmax = sample_rate / 2.0 if fmax is None else fmax
  if not 0 <= fmin < fmax <= sample_rate / 2.0:
    raise ValueError(f"need 0 <= fmin ({fmin}) < fmax ({fmax}) <= sample_rate / 2")
  fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
  edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
  widths = np.diff(edges)
  ramps = edges[:, None] - fft_freqs[None, :]
  lower = -ramps[:-2] / widths[:-1, None]
  upper = ramps[2:] / widths[1:, None]
  weights = np.maximum(0.0, np.minimum(lower, upper))
  if norm == "slaney":
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
  return weights.T


def linear_filterbank(*, sample_rate: int, n_fft: int, num_filters: int) -> np.ndarray:
  """Equally spaced triangular filters over [0, sr/2], peak 1: [n_fft // 2 + 1, num_filters].

  The ASVspoof 2019 baseline's filterbank (Matlab `trimf` on num_filters + 2 linear edges).
  """
  freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
  edges = np.linspace(0.0, sample_rate / 2.0, num_filters + 2)
  lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  rise = (freqs[None] - lo) / (mid - lo)
  fall = (hi - freqs[None]) / (hi - mid)
  return np.maximum(0.0, np.minimum(rise, fall)).T


def dct_matrix(n: int, num_coeffs: int) -> np.ndarray:
  """Orthonormal DCT-II as a [n, num_coeffs] matrix: x @ M == scipy.fft.dct(x, norm='ortho')[:k]."""
  if not 1 <= num_coeffs <= n:
    raise ValueError(f"num_coeffs ({num_coeffs}) must be in [1, {n}]")
  k = np.arange(num_coeffs)[None, :]
  i = np.arange(n)[:, None]
  mat = np.cos(np.pi * k * (2 * i + 1) / (2 * n)) * np.sqrt(2.0 / n)
  mat[:, 0] /= np.sqrt(2.0)
  return mat


def _matmul(x: jnp.ndarray, mat: np.ndarray) -> jnp.ndarray:
  # HIGHEST keeps float32 accuracy on GPUs/TPUs whose default f32 matmul is TF32/bf16.
  return jnp.matmul(x, jnp.asarray(mat, jnp.float32), precision=_HIGHEST)


def power_to_db(power: jnp.ndarray, *, amin: float = 1e-10, top_db: float | None = None,
                axes: tuple[int, ...] = (1, 2)) -> jnp.ndarray:
  """10 * log10(max(S, amin)) with ref = 1, as librosa.power_to_db.

  top_db clips each utterance (max over `axes`) at max - top_db.
  """
  db = 10.0 * jnp.log10(jnp.maximum(power, amin))
  if top_db is not None:
    if top_db < 0:
      raise ValueError(f"top_db must be non-negative, got {top_db}")
    db = jnp.maximum(db, jnp.max(db, axis=axes, keepdims=True) - top_db)
  return db


def log_mel(audio: jnp.ndarray, *, sample_rate: int = 16000, n_fft: int = 1024,
            hop_length: int = 512, n_mels: int = 64, num_frames: int = 224,
            top_db: float | None = None, normalize: bool = True, htk: bool = False,
            mel_norm: str | None = "slaney", pad_mode: str = "reflect",
            eps: float = 1e-6) -> jnp.ndarray:
  """The authors' ResNet input: [B, T] audio -> [B, n_mels, num_frames].

  Mel power spectrogram (power 2, Hann periodic, center=True with `pad_mode` padding; Slaney
  mel scale and Slaney area normalisation by default, i.e. librosa.feature.melspectrogram;
  torchaudio's MelSpectrogram defaults are htk=True, mel_norm=None), then power_to_db
  (amin 1e-10, ref 1, optional top_db), then time zero-padded at the end / cropped to
  `num_frames` (in dB), then per-utterance (x - mean) / (std + eps) over (mel, time) with the
  population std.
  """
  audio = _check_audio(audio, "log_mel")
  fbank = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, htk=htk,
                         norm=mel_norm)
  power = power_spectrogram(audio, n_fft=n_fft, hop_length=hop_length, pad_mode=pad_mode)
  mel = jnp.swapaxes(_matmul(power, fbank), 1, 2)  # [B, n_mels, frames]
  db = power_to_db(mel, top_db=top_db)
  frames = db.shape[2]
  if frames < num_frames:
    db = jnp.pad(db, ((0, 0), (0, 0), (0, num_frames - frames)))
  else:
    db = db[:, :, :num_frames]
  if not normalize:
    return db
  mean = jnp.mean(db, axis=(1, 2), keepdims=True)
  std = jnp.std(db, axis=(1, 2), keepdims=True)
  return (db - mean) / (std + eps)


def linear_cepstrum(audio: jnp.ndarray, *, n_fft: int = 1024, hop_length: int = 512,
                    num_coeffs: int = 20, pad_mode: str = "reflect") -> jnp.ndarray:
  """The authors' GRNN input "LC": [B, T] -> [B, frames, num_coeffs].

  Hann-windowed STFT (center=True, `pad_mode` padding), |X|^2, log(. + 1e-6), orthonormal
  DCT-II over all n_fft // 2 + 1 bins, first num_coeffs kept.
  """
  audio = _check_audio(audio, "linear_cepstrum")
  power = power_spectrogram(audio, n_fft=n_fft, hop_length=hop_length, pad_mode=pad_mode)
  return _matmul(jnp.log(power + 1e-6), dct_matrix(n_fft // 2 + 1, num_coeffs))


def delta(x: jnp.ndarray, axis: int = 1) -> jnp.ndarray:
  """x[t + 1] - x[t - 1] with edge replication, as the ASVspoof baseline's `delta` (no scaling)."""
  n = x.shape[axis]
  padded = jnp.concatenate([jax.lax.slice_in_dim(x, 0, 1, axis=axis), x,
                            jax.lax.slice_in_dim(x, n - 1, n, axis=axis)], axis=axis)
  return (jax.lax.slice_in_dim(padded, 2, n + 2, axis=axis)
          - jax.lax.slice_in_dim(padded, 0, n, axis=axis))


def lfcc(audio: jnp.ndarray, *, sample_rate: int = 16000, n_fft: int = 512,
         hop_length: int = 160, win_length: int = 320, num_filters: int = 20,
         num_coeffs: int = 20, with_deltas: bool = True, pre_emphasis: float = 0.97,
         window_name: str = "hamming", pad_mode: str = "constant") -> jnp.ndarray:
  """LFCC of the ASVspoof 2019 baseline: [B, T] -> [B, frames, num_coeffs * (3 if deltas)].

  Pre-emphasis y[t] = x[t] - 0.97 x[t-1] (y[0] = x[0]); STFT with a periodic Hamming window of
  win_length centred in n_fft, center=True with zero padding; |X|^2; linear triangular
  filterbank (`linear_filterbank`); log10(. + float32 eps); orthonormal DCT-II over the
  filters, first num_coeffs kept. Deltas are the baseline's x[t+1] - x[t-1] with edge
  replication (`delta`), and delta-deltas the delta of the deltas; order [static, d, dd].
  """
  audio = _check_audio(audio, "lfcc")
  if pre_emphasis:
    audio = jnp.concatenate([audio[:, :1], audio[:, 1:] - pre_emphasis * audio[:, :-1]], axis=1)
  power = power_spectrogram(audio, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                            window_name=window_name, pad_mode=pad_mode)
  fbank = linear_filterbank(sample_rate=sample_rate, n_fft=n_fft, num_filters=num_filters)
  log_fb = jnp.log10(_matmul(power, fbank) + np.finfo(np.float32).eps)
  coeffs = _matmul(log_fb, dct_matrix(num_filters, num_coeffs))
  if not with_deltas:
    return coeffs
  d1 = delta(coeffs)
  return jnp.concatenate([coeffs, d1, delta(d1)], axis=-1)
