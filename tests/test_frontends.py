"""Tests for jaxplastic.frontends against librosa / scipy references on chirps and noise.

Tolerances (float32 JAX vs float64 references):
* dB values of log_mel: max abs difference <= 1e-3 dB on bins within 80 dB of the utterance
  maximum (deeper bins are float32 FFT round-off, e.g. the Hann sidelobe floor of a chirp).
* z-normed log_mel: max abs difference <= 1e-4 (noise; chirp with top_db=80).
* linear_cepstrum: max abs difference <= 1e-5 * max |reference|.
* lfcc (static, delta, delta-delta): max abs difference <= 1e-4.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from jaxplastic import frontends as fe

librosa = pytest.importorskip("librosa")

SR = 16000


def _signals(num_samples: int) -> np.ndarray:
  """[chirp 100 Hz -> 7.9 kHz, uniform noise] as float32 [2, T]."""
  t = np.arange(num_samples) / SR
  dur = num_samples / SR
  chirp = 0.5 * np.sin(2 * np.pi * (100 * t + (7900 - 100) / (2 * dur) * t ** 2))
  noise = np.random.default_rng(0).uniform(-0.3, 0.3, num_samples)
  return np.stack([chirp, noise]).astype(np.float32)


AUDIO = _signals(12000)  # 0.75 s -> 24 frames at hop 512


def _ref_db(x: np.ndarray, **mel_kwargs) -> np.ndarray:
  mel = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=SR, n_fft=1024, hop_length=512,
                                       n_mels=64, power=2.0, **mel_kwargs)
  db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
  # torchaudio's AmplitudeToDB(stype="power", top_db=None) is the same formula (multiplier 10,
  # amin 1e-10, ref 1, no clipping), which the authors' front-end applies.
  np.testing.assert_array_equal(db, 10.0 * np.log10(np.maximum(mel, 1e-10)))
  return db


def _ref_pad_znorm(db: np.ndarray, frames: int, eps: float = 1e-6) -> np.ndarray:
  db = db[:, :frames] if db.shape[1] >= frames else np.pad(db, ((0, 0), (0, frames - db.shape[1])))
  return (db - db.mean()) / (db.std() + eps)


@pytest.mark.filterwarnings("ignore:n_fft=.*too large")
def test_num_frames_matches_librosa():
  for n in (1, 300, 511, 512, 1023, 12000, 64000):
    stft = librosa.stft(np.zeros(n), n_fft=1024, hop_length=512, pad_mode="constant")
    assert fe.num_frames(n, 512) == stft.shape[1]
  assert fe.num_frames(64000, 512) == 126
  with pytest.raises(ValueError):
    fe.num_frames(0, 512)


@pytest.mark.parametrize("htk, norm", [(False, "slaney"), (True, None)])
def test_mel_filterbank_matches_librosa(htk, norm):
  ours = fe.mel_filterbank(sample_rate=SR, n_fft=1024, n_mels=64, htk=htk, norm=norm)
  ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, htk=htk, norm=norm, dtype=np.float64)
  np.testing.assert_allclose(ours, ref.T, rtol=1e-9, atol=1e-12)


def test_dct_matrix_matches_scipy():
  x = np.random.default_rng(1).normal(size=(5, 513))
  np.testing.assert_allclose(x @ fe.dct_matrix(513, 20),
                             scipy.fft.dct(x, norm="ortho", axis=-1)[:, :20], atol=1e-10)


@pytest.mark.parametrize("htk, norm, pad_mode", [
    (False, "slaney", "reflect"),  # librosa's defaults
    (True, None, "reflect"),  # torchaudio MelSpectrogram's defaults (the authors')
    (True, None, "constant"),
])
def test_log_mel_db_matches_librosa(htk, norm, pad_mode):
  ours = np.asarray(jax.jit(lambda a: fe.log_mel(a, normalize=False, num_frames=40, htk=htk,
                                                 mel_norm=norm, pad_mode=pad_mode))(AUDIO))
  assert ours.shape == (2, 64, 40)
  for i in range(2):
    ref = _ref_db(AUDIO[i], htk=htk, norm=norm, pad_mode=pad_mode)
    frames = ref.shape[1]
    assert frames == fe.num_frames(AUDIO.shape[1], 512) == 24
    loud = ref > ref.max() - 80.0
    assert loud.sum() >= 250  # of 64 x 24 bins; a chirp is narrow-band, noise fills all
    assert np.abs(ours[i, :, :frames] - ref)[loud].max() <= 1e-3
    np.testing.assert_array_equal(ours[i, :, frames:], 0.0)  # zero (dB) time padding


@pytest.mark.parametrize("frames", [40, 24, 10])  # pad, exact, crop
def test_log_mel_znorm_matches_reference(frames):
  ours = np.asarray(fe.log_mel(AUDIO, num_frames=frames, top_db=80.0))
  for i in range(2):
    ref_db = _ref_db(AUDIO[i], pad_mode="reflect")
    ref_db = np.maximum(ref_db, ref_db.max() - 80.0)
    np.testing.assert_allclose(ours[i], _ref_pad_znorm(ref_db, frames), rtol=0, atol=1e-4)
  # Without top_db the noise utterance has no deep bins, so it meets the same tolerance.
  ours = np.asarray(fe.log_mel(AUDIO[1:], num_frames=frames))
  np.testing.assert_allclose(ours[0], _ref_pad_znorm(_ref_db(AUDIO[1], pad_mode="reflect"),
                                                     frames), rtol=0, atol=1e-4)
  assert abs(ours.mean()) < 1e-5 and abs(ours.std() - 1.0) < 1e-4


def test_log_mel_authors_chain_at_paper_shapes():
  """The authors' ResNet input end to end: 64,000 samples, torchaudio MelSpectrogram defaults
  (n_fft 1024, hop 512, 64 mels, periodic Hann, center=True reflect, power 2, HTK scale, no
  area normalisation) -> 10 log10(max(x, 1e-10)) -> 126 frames zero-padded to 224 -> z-norm."""
  audio = _signals(64000)[1:]  # noise: every bin far above the float32 round-off floor
  ours = np.asarray(fe.log_mel(audio, htk=True, mel_norm=None))
  assert ours.shape == (1, 64, 224)
  ref_db = _ref_db(audio[0], htk=True, norm=None, pad_mode="reflect", window="hann",
                   center=True)
  assert ref_db.shape == (64, 126)
  np.testing.assert_allclose(ours[0], _ref_pad_znorm(ref_db, 224), rtol=0, atol=1e-4)


def test_log_mel_batch_rows_are_independent():
  batch = np.stack([AUDIO[0], AUDIO[1], 0.01 * AUDIO[1]])
  jitted = jax.jit(fe.log_mel)
  together = np.asarray(jitted(batch))
  for i in range(3):
    np.testing.assert_allclose(together[i], np.asarray(jitted(batch[i:i + 1]))[0], atol=1e-6)
  # Gain only shifts the dB values, which the per-utterance z-norm removes when no (0 dB) time
  # padding is added; with padding it does not.
  exact = np.asarray(fe.log_mel(batch, num_frames=24))
  np.testing.assert_allclose(exact[2], exact[1], atol=1e-4)
  assert np.abs(together[2] - together[1]).max() > 0.1


def test_linear_cepstrum_matches_scipy_on_librosa_stft():
  ours = np.asarray(jax.jit(fe.linear_cepstrum)(AUDIO))
  assert ours.shape == (2, 24, 20)
  for i in range(2):
    power = np.abs(librosa.stft(AUDIO[i].astype(np.float64), n_fft=1024, hop_length=512,
                                window="hann", center=True, pad_mode="reflect")) ** 2
    ref = scipy.fft.dct(np.log(power + 1e-6), axis=0, norm="ortho")[:20].T
    np.testing.assert_allclose(ours[i], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def _ref_lfcc(x: np.ndarray) -> np.ndarray:
  """The ASVspoof 2019 baseline LFCC written from its formula, on librosa.stft."""
  y = x.astype(np.float64)
  y = np.concatenate([y[:1], y[1:] - 0.97 * y[:-1]])
  power = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=320, window="hamming",
                              center=True, pad_mode="constant")) ** 2  # [257, frames]
  freqs, edges = np.linspace(0, SR / 2, 257), np.linspace(0, SR / 2, 22)
  fbank = np.zeros((257, 20))
  for j in range(20):
    a, b, c = edges[j:j + 3]
    for n, f in enumerate(freqs):
      if a < f < b:
        fbank[n, j] = (f - a) / (b - a)
      elif f == b:
        fbank[n, j] = 1.0
      elif b < f < c:
        fbank[n, j] = (c - f) / (c - b)
  static = scipy.fft.dct(np.log10(power.T @ fbank + np.finfo(np.float32).eps), axis=1,
                         norm="ortho")[:, :20]

  def delta(z):
    return np.array([z[min(t + 1, len(z) - 1)] - z[max(t - 1, 0)] for t in range(len(z))])

  return np.concatenate([static, delta(static), delta(delta(static))], axis=1)


def test_lfcc_matches_formula_reference():
  ours = np.asarray(jax.jit(fe.lfcc)(AUDIO))
  assert ours.shape == (2, fe.num_frames(12000, 160), 60)
  for i in range(2):
    np.testing.assert_allclose(ours[i], _ref_lfcc(AUDIO[i]), rtol=0, atol=1e-4)
  plain = np.asarray(fe.lfcc(AUDIO, with_deltas=False, num_coeffs=13))
  np.testing.assert_allclose(plain, ours[:, :, :13], atol=1e-5)


@pytest.mark.parametrize("n_fft, hop, win, window, pad_mode", [
    (1024, 512, 1024, "hann", "reflect"),  # the authors' torch front-ends
    (512, 160, 320, "hamming", "constant"),  # the ASVspoof baseline LFCC's torch.stft call
])
def test_power_spectrogram_matches_torch_stft(n_fft, hop, win, window, pad_mode):
  torch = pytest.importorskip("torch")
  ours = np.asarray(fe.power_spectrogram(AUDIO, n_fft=n_fft, hop_length=hop, win_length=win,
                                         window_name=window, pad_mode=pad_mode))
  win_fn = torch.hann_window if window == "hann" else torch.hamming_window
  spec = torch.stft(torch.tensor(AUDIO, dtype=torch.float64), n_fft, hop, win,
                    window=win_fn(win, dtype=torch.float64), center=True, pad_mode=pad_mode,
                    return_complex=True)
  ref = (spec.abs() ** 2).transpose(1, 2).numpy()
  assert ours.shape == ref.shape
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * ref.max())


@pytest.mark.filterwarnings("ignore:n_fft=.*too large")
@pytest.mark.parametrize("length", [300, 2])
def test_short_inputs(length):
  x = _signals(length)
  assert fe.log_mel(x).shape == (2, 64, 224)
  assert fe.lfcc(x).shape == (2, fe.num_frames(length, 160), 60)
  lc = np.asarray(fe.linear_cepstrum(x))
  assert lc.shape == (2, fe.num_frames(length, 512), 20)
  for i in range(2):
    power = np.abs(librosa.stft(x[i].astype(np.float64), n_fft=1024, hop_length=512,
                                pad_mode="reflect")) ** 2
    ref = scipy.fft.dct(np.log(power + 1e-6), axis=0, norm="ortho")[:20].T
    np.testing.assert_allclose(lc[i], ref, rtol=0, atol=1e-5 * np.abs(ref).max())
  assert np.all(np.isfinite(fe.log_mel(np.zeros((1, length), np.float32))))


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match=r"\[batch, samples\]"):
    fe.log_mel(jnp.zeros(16000))
  with pytest.raises(ValueError, match="reflect padding"):
    fe.linear_cepstrum(jnp.zeros((1, 1)))
  assert fe.linear_cepstrum(jnp.zeros((1, 1)), pad_mode="constant").shape == (1, 1, 20)
  with pytest.raises(ValueError, match="pad_mode"):
    fe.lfcc(jnp.zeros((1, 400)), pad_mode="edge")
