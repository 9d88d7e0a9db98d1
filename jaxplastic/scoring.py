"""Scores arbitrary audio with an exported model: the Python side of `jaxplastic-score`.

`Detector.load(path)` reads what training exports (`<workdir>/model/`, see
`checkpoints.export_model`) and rebuilds the model from `model.json` alone. Audio of any rate and
channel count is decoded, downmixed and resampled exactly as the training pipeline does
(`data.audio.load_audio`), then either cropped / padded to the training length as training padded
(`pad` in model.json: zeros or repeats; the default, the condition the EER threshold was chosen
under) or cut into overlapping windows that cover the whole file (full-length mode). Windows from
many files share batches; every batch is padded to one of a few fixed sizes so the jitted forward
compiles once per size.

Score = logit(bona fide) - logit(spoof): higher means more bona fide.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import math
import os
from typing import Any, Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxplastic import checkpoints
from jaxplastic import models
from jaxplastic.data.audio import AudioError, fix_length, load_audio

# Peak amplitude below which audio counts as digitally silent: under one 16-bit quantisation step,
# so nothing a 16-bit recording can hold besides zeros. A model's score on silence says nothing
# about the speech.
SILENCE_PEAK = 1.0 / 32768.0

AGGREGATES = ("mean", "min")


class ScoringError(ValueError):
  """An in-memory waveform that cannot be scored (wrong shape or dtype, empty, NaN/Inf, silent)."""


@dataclasses.dataclass(frozen=True)
class Result:
  """The outcome for one file.

  Attributes:
    path: the file as given.
    score: logit(bona fide) - logit(spoof), aggregated over windows in full-length mode; NaN on
      error.
    probability: P(bona fide) from `Detector.probability` (see there whether it is calibrated); NaN
      on error.
    label: "bonafide" if score > the model's threshold else "spoof"; None on error.
    duration: seconds of decoded audio (before cropping); None if the file could not be decoded.
    error: None, or why the file was not scored (the message names the file).
    num_windows: windows scored (1 in 4 s mode; 0 on error).
  """
  path: str
  score: float
  probability: float
  label: str | None
  duration: float | None
  error: str | None = None
  num_windows: int = 0

  @property
  def ok(self) -> bool:
    return self.error is None


def window_starts(length: int, num_samples: int) -> list[int]:
  """Start offsets of the full-length windows of a `length`-sample signal.

  Windows are `num_samples` long with hop `num_samples // 2`; the last window is moved back so it
  ends exactly at the end of the signal (no padding, every sample covered). A signal no longer than
  one window gets one window at 0 (the caller pads it, as in 4 s mode).
  """
  if num_samples <= 0 or length <= 0:
    raise ValueError(f"need positive length and num_samples, got {length}, {num_samples}")
  if length <= num_samples:
    return [0]
  hop = max(num_samples // 2, 1)
  last = length - num_samples
  starts = list(range(0, last, hop))
  starts.append(last)
  return starts


def _sigmoid(z: np.ndarray) -> np.ndarray:
  z = np.asarray(z, np.float64)
  out = np.empty_like(z)
  pos = z >= 0
  out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
  ez = np.exp(z[~pos])
  out[~pos] = ez / (1.0 + ez)
  return out


def fit_calibration(scores: Any, labels: Any, *, iterations: int = 100) -> dict[str, float]:
  """Platt scaling: fits P(bona fide | score) = sigmoid(a * score + b) by maximum likelihood.

  Newton's method on the logistic log-likelihood.

  Fit it on dev scores (never eval). Platt's smoothed targets ((N+ + 1) / (N+ + 2) and 1 / (N- + 2))
  keep a and b finite when dev is perfectly separated.

  Args:
    scores: [N] scores (logit bona fide - logit spoof).
    labels: [N] 1 = bona fide, 0 = spoof.

  Returns:
    {"a": a, "b": b, "num_bonafide": ..., "num_spoof": ...}, the form `Detector` reads from
    model.json.
  """
  s = np.asarray(scores, np.float64).reshape(-1)
  y = np.asarray(labels).reshape(-1)
  if s.size != y.size:
    raise ValueError(f"{s.size} scores but {y.size} labels")
  if not np.all(np.isfinite(s)):
    raise ValueError("scores contain NaN or Inf")
  if not np.all((y == 0) | (y == 1)):
    raise ValueError("labels must be 0 (spoof) or 1 (bona fide)")
  n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
  if n_pos == 0 or n_neg == 0:
    raise ValueError(f"calibration needs both classes, got {n_pos} bona fide and {n_neg} spoof")
  t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
  a, b = 1.0, float(np.log((n_pos + 1.0) / (n_neg + 1.0)))
  for _ in range(iterations):
    p = _sigmoid(a * s + b)
    w = np.maximum(p * (1.0 - p), 1e-12)
    grad = np.array([np.sum((p - t) * s), np.sum(p - t)])
    hess = np.array([[np.sum(w * s * s), np.sum(w * s)], [np.sum(w * s), np.sum(w)]
                    ]) + 1e-9 * np.eye(2)
    step = np.linalg.solve(hess, grad)
    a, b = a - step[0], b - step[1]
    if np.max(np.abs(step)) < 1e-10:
      break
  return {"a": float(a), "b": float(b), "num_bonafide": n_pos, "num_spoof": n_neg}


def write_calibration(model_dir: str, calibration: Mapping[str, Any]) -> str:
  """Stores a calibration (`fit_calibration`) in an export's model.json; returns that file."""
  export_dir = _export_dir(model_dir)
  meta_path = os.path.join(export_dir, "model.json")
  meta, _ = checkpoints.load_export(
      export_dir)  # refuse to edit something that is not a valid export
  meta["calibration"] = {
      "a": float(calibration["a"]),
      "b": float(calibration["b"]),
      **{
          k: v for k, v in calibration.items() if k not in ("a", "b")
      }
  }
  checkpoints.write_json_atomic(meta_path, meta)
  return meta_path


def _export_dir(path: str) -> str:
  """An exported model folder, or a run workdir holding one in `model/`."""
  path = os.fspath(path)
  if os.path.isfile(os.path.join(path, "model.json")):
    return path
  inner = os.path.join(path, "model")
  if os.path.isfile(os.path.join(inner, "model.json")):
    return inner
  if not os.path.exists(path):
    raise checkpoints.CheckpointError(
        f"{path} does not exist (expected an exported model folder or a run "
        "workdir containing model/)")
  return path  # load_export explains what is missing


def _bucket(n: int, batch_size: int) -> int:
  """Padded batch size for n rows: the next power of two, at most `batch_size` (few compiles)."""
  return min(1 << max(n - 1, 0).bit_length(), batch_size)


class Detector:
  """An exported spoofing detector ready to score audio.

  Attributes:
    meta: the export's model.json.
    sample_rate: the rate the model reads; all audio is resampled to it.
    num_samples: the training input length (samples); 4 s mode crops / pads to it.
    pad: how shorter inputs are padded, as in training (`data.pad`): "zero" or "repeat". Exports
      from before model.json recorded it were all repeat-padded in training, so "repeat" is their
      default.
    threshold: decision threshold on the score (the dev-EER threshold recorded at export; 0.0, the
      argmax decision, when the export has none; see `threshold_note`).
    calibration: {"a", "b"} when model.json holds a Platt calibration, else None.
    batch_size: rows per forward call.
  """

  def __init__(self,
               meta: Mapping[str, Any],
               variables: Mapping,
               *,
               batch_size: int = 32,
               source: str = ""):
    if batch_size <= 0:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    self.meta = dict(meta)
    self.source = source
    where = os.path.join(source, "model.json") if source else "model.json"
    for key in ("model", "sample_rate", "num_samples"):
      if key not in self.meta:
        raise checkpoints.CheckpointError(f"{where} has no {key!r} entry")
    try:
      self.model = models.build_model(dict(self.meta["model"]))
    except (KeyError, TypeError, ValueError) as e:
      raise checkpoints.CheckpointError(f"{where}: cannot build the model it describes: {e}") from e
    self.sample_rate = int(self.meta["sample_rate"])
    self.num_samples = int(self.meta["num_samples"])
    self.pad = checkpoints.export_pad(self.meta, where)
    threshold = self.meta.get("threshold")
    self.threshold = 0.0 if threshold is None else float(threshold)
    self.threshold_note = (
        "dev-set EER threshold: on dev, bona fide audio was rejected as often as spoofs "
        "were accepted" if threshold is not None else
        "no dev threshold in the export; 0 = the model's argmax decision")
    cal = self.meta.get("calibration")
    if cal is not None and not (isinstance(cal, Mapping) and {"a", "b"} <= set(cal)):
      raise checkpoints.CheckpointError(
          f"{where}: 'calibration' must be {{\"a\": ..., \"b\": ...}}, got {cal!r}")
    self.calibration = None if cal is None else {"a": float(cal["a"]), "b": float(cal["b"])}
    self.batch_size = int(batch_size)
    self.variables = jax.device_put(variables)
    model = self.model

    def forward(variables, audio):
      logits = model.apply(variables, audio, train=False).astype(jnp.float32)
      return logits[:, 1] - logits[:, 0]

    self._forward = jax.jit(forward)

  @classmethod
  def load(cls, path: str | os.PathLike, *, batch_size: int = 32) -> "Detector":
    """Loads an exported model folder or a run workdir containing `model/`.

    Raises:
      checkpoints.CheckpointError: missing, corrupt, truncated or other-version export, or one whose
        model cannot be built.
    """
    export_dir = _export_dir(os.fspath(path))
    meta, variables = checkpoints.load_export(export_dir)
    return cls(meta, variables, batch_size=batch_size, source=export_dir)

  # -- decisions -----------------------------------------------------------------------------------

  def probability(self, scores: Any) -> np.ndarray:
    """P(bona fide) for scores.

    With a calibration in model.json (`fit_calibration` on dev scores): sigmoid(a * score + b), a
    calibrated posterior at the dev set's class balance. Without one: sigmoid(score - threshold),
    which is only a monotone squashing that crosses 0.5 at the decision threshold; it is NOT a
    calibrated probability.
    """
    s = np.asarray(scores, np.float64)
    if self.calibration:
      z = self.calibration["a"] * s + self.calibration["b"]
    else:
      z = s - self.threshold
    out = np.full(s.shape, np.nan)
    ok = np.isfinite(z)
    out[ok] = _sigmoid(z[ok])
    return out

  @property
  def probability_note(self) -> str:
    if self.calibration:
      a, b = self.calibration["a"], self.calibration["b"]
      return f"calibrated: sigmoid({a:.4g} * score + {b:.4g}), Platt fit on dev"
    return "uncalibrated: sigmoid(score - threshold), 0.5 at the threshold"

  def label(self, score: float) -> str:
    return "bonafide" if score > self.threshold else "spoof"

  # -- in-memory audio -----------------------------------------------------------------------------

  def prepare(self, waveform: Any, sample_rate: int) -> np.ndarray:
    """A waveform -> float32 mono at the model's rate, checked.

    Args:
      waveform: [samples] mono, or [samples, channels] (soundfile's layout) which is averaged over
        channels. Floats are taken as they are; int16 / int32 PCM is scaled to [-1, 1).
      sample_rate: its rate in Hz; other rates are resampled with soxr ('soxr_hq', as `load_audio`).

    Raises:
      ScoringError: bad shape/dtype/rate, no samples, NaN/Inf, or digitally silent.
    """
    wav = np.asarray(waveform)
    if wav.dtype == np.int16:
      wav = wav.astype(np.float32) / 32768.0
    elif wav.dtype == np.int32:
      wav = wav.astype(np.float32) / 2147483648.0
    elif not np.issubdtype(wav.dtype, np.floating):
      raise ScoringError(f"waveform dtype {wav.dtype} is not float, int16 or int32")
    if wav.ndim == 2:
      if wav.shape[1] > wav.shape[0]:
        raise ScoringError(
            f"2-D waveform of shape {wav.shape} looks channels-first; pass [samples, channels]")
      wav = wav.mean(axis=1)
    elif wav.ndim != 1:
      raise ScoringError(
          f"waveform must be [samples] or [samples, channels], got shape {wav.shape}")
    wav = wav.astype(np.float32)
    if wav.size == 0:
      raise ScoringError("waveform holds 0 samples")
    if not np.all(np.isfinite(wav)):
      raise ScoringError("waveform holds NaN or Inf values")
    if int(sample_rate) <= 0:
      raise ScoringError(f"sample_rate must be positive, got {sample_rate}")
    if int(sample_rate) != self.sample_rate:
      import librosa  # pylint: disable=g-import-not-at-top  (heavy; only needed to resample)

      wav = librosa.resample(wav,
                             orig_sr=int(sample_rate),
                             target_sr=self.sample_rate,
                             res_type="soxr_hq")
      if wav.size == 0:
        raise ScoringError(
            f"waveform too short to resample from {sample_rate} Hz to {self.sample_rate} Hz")
    silent = _silence_message(wav)
    if silent:
      raise ScoringError(f"waveform is {silent}")
    return np.ascontiguousarray(wav, np.float32)

  def score(self,
            waveform: Any,
            sample_rate: int,
            *,
            full_length: bool = False,
            aggregate: str = "mean") -> float:
    """The score of one waveform (see `prepare` for accepted input, `score_files` for the modes)."""
    return float(
        self.score_batch([waveform], [sample_rate], full_length=full_length,
                         aggregate=aggregate)[0])

  def score_batch(self,
                  waveforms: Sequence[Any],
                  sample_rates: int | Sequence[int],
                  *,
                  full_length: bool = False,
                  aggregate: str = "mean") -> np.ndarray:
    """Scores of several waveforms -> float64 [N].

    Args:
      waveforms: N waveforms, each as `prepare` accepts.
      sample_rates: one rate for all, or one per waveform.

    Raises:
      ScoringError: naming the index of the first unusable waveform.
    """
    _check_aggregate(aggregate)
    if isinstance(sample_rates, (int, np.integer)):
      sample_rates = [int(sample_rates)] * len(waveforms)
    if len(sample_rates) != len(waveforms):
      raise ScoringError(f"{len(waveforms)} waveforms but {len(sample_rates)} sample rates")
    prepared = []
    for i, (w, r) in enumerate(zip(waveforms, sample_rates)):
      try:
        prepared.append(self.prepare(w, r))
      except ScoringError as e:
        raise ScoringError(f"waveform {i}: {e}") from None
    per_item: list[list[float]] = [[] for _ in prepared]
    items = ((i, w)
             for i, wav in enumerate(prepared)
             for w in self.windows(wav, full_length=full_length))
    for i, s in self._stream(items, self.batch_size):
      per_item[i].append(s)
    return np.array([_aggregate(s, aggregate) for s in per_item], np.float64)

  def windows(self, wav: np.ndarray, *, full_length: bool = False) -> list[np.ndarray]:
    """The model inputs for a prepared signal.

    4 s mode: one first-crop / pad (`self.pad`, as in training). Full length: every window of
    `window_starts` (a signal no longer than one window is padded the same way).
    """
    n = self.num_samples
    if not full_length or wav.shape[0] <= n:
      return [fix_length(wav, n, pad=self.pad)]
    return [wav[s:s + n] for s in window_starts(wav.shape[0], n)]

  # -- files ---------------------------------------------------------------------------------------

  def score_files(self,
                  paths: Iterable[str | os.PathLike],
                  *,
                  full_length: bool = False,
                  aggregate: str = "mean",
                  batch_size: int | None = None,
                  progress: bool = True,
                  num_workers: int = 2) -> list[Result]:
    """Scores audio files; a file that cannot be scored gets `error` set, the rest are scored.

    Modes:
      4 s (default, the training and evaluation condition): the first `num_samples` samples,
        padded when shorter as the model was trained (`pad`), exactly as dev/eval scoring during
        training.
      full_length: windows of `num_samples` with hop `num_samples // 2`, the last one aligned to the
        end of the file (`window_starts`); each window is scored and the file's score is the MEAN of
        its window scores (`aggregate="min"`: the most spoof-like window, for spotting a short
        spliced-in fake). Files no longer than one window are scored as in 4 s mode.

    Decoding (any format `load_audio` reads, any rate and channel count) runs in `num_workers`
    threads ahead of the model; windows of consecutive files share batches.

    Args:
      paths: audio files.
      full_length: score whole files instead of their first `num_samples`.
      aggregate: "mean" or "min" over windows (full-length mode).
      batch_size: rows per forward call (default: the detector's).
      progress: show a tqdm bar (stderr).
      num_workers: decoding threads.

    Returns:
      One Result per path, in order.
    """
    _check_aggregate(aggregate)
    batch_size = self.batch_size if batch_size is None else int(batch_size)
    if batch_size <= 0:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    paths = [os.fspath(p) for p in paths]
    results: list[Result | None] = [None] * len(paths)
    scores: list[list[float]] = [[] for _ in paths]
    expected = [0] * len(paths)
    durations: list[float | None] = [None] * len(paths)
    bar = None
    if progress and paths:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top

      bar = tqdm(total=len(paths), desc="scoring", unit="file", dynamic_ncols=True)

    def items() -> Iterator[tuple[int, np.ndarray]]:
      for i, (wav, error) in enumerate(self._decode_ahead(paths, num_workers, 2 * batch_size)):
        if bar is not None:
          bar.update(1)
        if error is not None:
          duration = None if wav is None else wav.shape[0] / self.sample_rate
          results[i] = Result(paths[i], math.nan, math.nan, None, duration, error, 0)
          continue
        durations[i] = wav.shape[0] / self.sample_rate
        ws = self.windows(wav, full_length=full_length)
        expected[i] = len(ws)
        for w in ws:
          yield i, w

    try:
      for i, s in self._stream(items(), batch_size):
        scores[i].append(s)
        if len(scores[i]) == expected[i]:
          value = _aggregate(scores[i], aggregate)
          results[i] = Result(paths[i], value, float(self.probability(value)), self.label(value),
                              durations[i], None, expected[i])
    finally:
      if bar is not None:
        bar.close()
    return [r for r in results if r is not None]

  def _decode(self, path: str) -> tuple[np.ndarray | None, str | None]:
    try:
      wav = load_audio(path, self.sample_rate)
    except AudioError as e:
      return None, str(e)
    except Exception as e:  # pylint: disable=broad-except  (one odd file must not stop a folder)
      return None, f"{path}: {type(e).__name__}: {e}"
    silent = _silence_message(wav)
    if silent:
      return wav, f"{path}: {silent}; a score would be meaningless"
    return wav, None

  def _decode_ahead(self, paths: Sequence[str], num_workers: int,
                    lookahead: int) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """Decoded files in order, with up to `lookahead` decoded or decoding in the background."""
    if num_workers <= 0:
      yield from map(self._decode, paths)
      return
    with concurrent.futures.ThreadPoolExecutor(num_workers, thread_name_prefix="decode") as pool:
      pending = collections.deque(
          pool.submit(self._decode, p) for p in itertools.islice(paths, lookahead))
      rest = iter(paths[lookahead:])
      while pending:
        done = pending.popleft()
        nxt = next(rest, None)
        if nxt is not None:
          pending.append(pool.submit(self._decode, nxt))
        yield done.result()

  def _stream(self, items: Iterable[tuple[Any, np.ndarray]],
              batch_size: int) -> Iterator[tuple[Any, float]]:
    """(key, window) pairs -> (key, score) pairs, in order, through fixed-size padded batches."""
    buf = np.empty((batch_size, self.num_samples), np.float32)
    keys: list[Any] = []
    for key, w in items:
      buf[len(keys)] = w
      keys.append(key)
      if len(keys) == batch_size:
        yield from zip(keys, self._forward_rows(buf, len(keys)))
        keys = []
    if keys:
      yield from zip(keys, self._forward_rows(buf, len(keys)))

  def _forward_rows(self, buf: np.ndarray, n: int) -> list[float]:
    """Scores rows [:n] of `buf`, padded with copies of row 0 to a bucket size.

    Padding cannot change the real rows: at inference BatchNorm uses its running statistics.
    """
    size = _bucket(n, buf.shape[0])
    batch = buf[:size].copy()
    batch[n:] = batch[0]
    out = np.asarray(jax.device_get(self._forward(self.variables, jnp.asarray(batch))), np.float64)
    return out[:n].tolist()

  def compiled_shapes(self) -> int:
    """How many batch shapes the forward has been compiled for (for tests and benchmarks)."""
    return self._forward._cache_size()  # pylint: disable=protected-access


def _silence_message(wav: np.ndarray) -> str:
  peak = float(np.max(np.abs(wav))) if wav.size else 0.0
  if peak < SILENCE_PEAK:
    return f"silent (peak amplitude {peak:.3g}, below one 16-bit step {SILENCE_PEAK:.3g})"
  return ""


def _check_aggregate(aggregate: str) -> None:
  if aggregate not in AGGREGATES:
    raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")


def _aggregate(scores: Sequence[float], aggregate: str) -> float:
  return float(np.mean(scores)) if aggregate == "mean" else float(np.min(scores))


__all__ = [
    "AGGREGATES", "Detector", "Result", "SILENCE_PEAK", "ScoringError", "fit_calibration",
    "window_starts", "write_calibration"
]
