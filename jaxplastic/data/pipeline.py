"""Host-side batch pipeline: threaded decoding, fixed-length crops, deterministic order, prefetch.

Batches are numpy dicts {'audio': f32[B, num_samples], 'label': i32[B], 'mask': f32[B],
'index': i32[B]}; moving them to devices is the trainer's job. Everything random is a pure function
of (seed, epoch, item index), never of thread timing, so a run (and a resumed run) sees the same
data:
- train: items in `np.random.default_rng((seed, epoch)).permutation`, random or first crops
  (`train_crop`), and the last partial batch either dropped (`drop_last=True`: every batch has one
  shape) or yielded as a smaller batch (the authors' PyTorch DataLoader; one more compilation);
- eval: protocol order, first crops, the last batch padded with mask 0 / index -1 so no eval
  utterance is ever dropped.
Short clips are repeat- or zero-padded (`pad`, see `audio.fix_length`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import queue
import threading
from typing import Iterator

import numpy as np

from jaxplastic.data.asvspoof import Split
from jaxplastic.data.audio import PAD_MODES, AudioError, fix_length, load_audio, trim_silence

# How training takes `num_samples` out of a longer clip (config.data.train_crop).
TRAIN_CROPS = ("random", "first")


class AudioCache:
  """Decoded full-length float32 audio per path, so epochs after the first skip decoding.

  Thread-safe. With `max_bytes`, entries are added until the budget is full and then no more:
  under per-epoch reshuffling an evicting (LRU) cache would miss on almost every access, whereas a
  fixed resident subset keeps a steady hit rate. A cache holds one sample rate (set on first use).
  """

  def __init__(self, max_bytes: int | None = None):
    if max_bytes is not None and max_bytes < 0:
      raise ValueError(f"max_bytes must be >= 0 or None, got {max_bytes}")
    self.max_bytes = max_bytes
    self.sample_rate: int | None = None
    self.nbytes = 0
    self.hits = 0
    self.misses = 0
    self._data: dict[str, np.ndarray] = {}
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self._data)

  def __contains__(self, path: str) -> bool:
    return path in self._data

  def __getitem__(self, path: str) -> np.ndarray:
    return self._data[path]

  def __setitem__(self, path: str, wav: np.ndarray) -> None:
    self.put(path, wav)

  def get(self, path: str) -> np.ndarray | None:
    """The cached signal (read-only) or None; counts hits and misses."""
    with self._lock:
      wav = self._data.get(path)
      if wav is None:
        self.misses += 1
      else:
        self.hits += 1
      return wav

  def put(self, path: str, wav: np.ndarray) -> bool:
    """Stores `wav` unless that would exceed `max_bytes`; returns whether it was stored."""
    wav = np.asarray(wav, dtype=np.float32)
    with self._lock:
      if path in self._data:
        return True
      if self.max_bytes is not None and self.nbytes + wav.nbytes > self.max_bytes:
        return False
      wav.setflags(write=False)  # served to every later epoch, so nobody may edit it in place
      self._data[path] = wav
      self.nbytes += wav.nbytes
      return True

  def bind_sample_rate(self, sample_rate: int) -> None:
    """Ties the cache to one rate, so audio decoded at another rate is never served."""
    with self._lock:
      if self.sample_rate is None:
        self.sample_rate = sample_rate
      elif self.sample_rate != sample_rate:
        raise ValueError(
            f"AudioCache holds {self.sample_rate} Hz audio, requested {sample_rate} Hz")


class SkipLog:
  """Undecodable files skipped with `skip_bad_files=True`; the caller reports it after the run.

  Each file is listed once however often it is skipped (every epoch, and again in dev scoring), so `count` is
  the number of bad files, not of skip events.
  """

  def __init__(self):
    self.paths: list[str] = []
    self.reasons: list[str] = []
    self._lock = threading.Lock()

  @property
  def count(self) -> int:
    return len(self.paths)

  def add(self, path: str, reason: str) -> None:
    with self._lock:
      if path not in self.paths:
        self.paths.append(path)
        self.reasons.append(reason)

  def __repr__(self) -> str:
    return f"SkipLog(count={self.count}, paths={self.paths[:5]}{'...' if self.count > 5 else ''})"


def epoch_steps(split: Split, batch_size: int, train: bool, drop_last: bool = True) -> int:
  """Batches per epoch: floor(N / B) for training with the partial batch dropped, ceil(N / B) otherwise.

  With skip_bad_files=True a training epoch can yield fewer batches than this when files are bad.
  """
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  n = len(split.items)
  return n // batch_size if train and drop_last else -(-n // batch_size)


def crop_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
  """The crop generator of item `index`: independent of worker scheduling and of the permutation.

  The index goes into the spawn key: appending it to the entropy tuple instead would collide with
  other seeds, since SeedSequence treats (s, e) and (s, e, 0) alike.
  """
  return np.random.default_rng(np.random.SeedSequence((seed, epoch), spawn_key=(index,)))


class _Stop(Exception):
  """Raised inside the producer thread when the consumer went away."""


def _load(path: str, sample_rate: int, cache: AudioCache | None) -> np.ndarray:
  if cache is None:
    return load_audio(path, sample_rate)
  wav = cache.get(path)
  if wav is None:
    wav = load_audio(path, sample_rate)
    cache.put(path, wav)
  return wav


class _Producer:
  """Decodes items in a thread pool and hands finished batches to a bounded queue, in order."""

  def __init__(self, split: Split, order: np.ndarray, *, start: int, batch_size: int,
               num_samples: int, train: bool, seed: int, epoch: int, sample_rate: int,
               cache: AudioCache | None, num_threads: int, skip_bad_files: bool, skipped: SkipLog,
               trim_silence_db: float | None, pad: str, random_crop: bool, drop_last: bool,
               out: queue.Queue, stop: threading.Event):
    self.split, self.order, self.start, self.batch_size = split, order, start, batch_size
    self.num_samples, self.train, self.seed, self.epoch = num_samples, train, seed, epoch
    self.sample_rate, self.cache, self.num_threads = sample_rate, cache, num_threads
    self.skip_bad_files, self.skipped = skip_bad_files, skipped
    self.trim_silence_db = trim_silence_db
    self.pad, self.random_crop, self.drop_last = pad, random_crop, drop_last
    self.out, self.stop = out, stop
    # Enough decodes in flight to keep every worker busy while a whole batch is being assembled.
    self.window = max(2 * num_threads, batch_size + num_threads)

  def _decode(self, index: int) -> np.ndarray:
    wav = _load(self.split.items[index].path, self.sample_rate, self.cache)
    if self.trim_silence_db is not None:
      wav = trim_silence(wav, self.trim_silence_db)
    rng = crop_rng(self.seed, self.epoch, index) if self.train and self.random_crop else None
    return fix_length(wav, self.num_samples, rng, pad=self.pad)

  def _put(self, item) -> None:
    while True:
      if self.stop.is_set():
        raise _Stop()
      try:
        self.out.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  def _new_batch(self) -> dict[str, np.ndarray]:
    b = self.batch_size
    return {"audio": np.zeros((b, self.num_samples), np.float32), "label": np.zeros(b, np.int32),
            "mask": np.zeros(b, np.float32), "index": np.full(b, -1, np.int32)}

  def run(self) -> None:
    """Thread body: every outcome, including errors, goes through the queue to the consumer."""
    pool = concurrent.futures.ThreadPoolExecutor(self.num_threads, thread_name_prefix="decode")
    try:
      pending = collections.deque()
      n = len(self.order)
      # Training never decodes the items of a dropped partial batch, unless skips need them.
      used = n - n % self.batch_size if self.train and self.drop_last else n
      position = self.start
      batch, slot = self._new_batch(), 0
      while pending or position < min(n, used):
        while position < min(n, used) and len(pending) < self.window:
          index = int(self.order[position])
          pending.append((index, pool.submit(self._decode, index)))
          position += 1
        index, future = pending.popleft()
        while True:
          if self.stop.is_set():
            raise _Stop()
          try:
            wav = future.result(timeout=0.1)
            break
          except concurrent.futures.TimeoutError:
            continue
          except AudioError as e:
            if not self.skip_bad_files:
              raise
            self.skipped.add(self.split.items[index].path, str(e))
            used += 1
            logging.warning("skipping undecodable file: %s", e)
            wav = None
            break
        if wav is not None:
          batch["audio"][slot] = wav
          batch["label"][slot] = self.split.items[index].label
          batch["mask"][slot] = 1.0
          batch["index"][slot] = index
        # Training refills a skipped item's slot with the next one (fixed, full batches); eval keeps
        # protocol positions, so a skipped item leaves a masked hole.
        if not self.train or wav is not None:
          slot += 1
        if slot == self.batch_size:
          self._put(("batch", batch))
          batch, slot = self._new_batch(), 0
      if slot and not self.train:
        self._put(("batch", batch))
      elif slot and not self.drop_last:  # the last partial training batch, at its own size
        self._put(("batch", {k: v[:slot] for k, v in batch.items()}))
      self._put(("done", None))
    except _Stop:
      pass
    except BaseException as e:  # pylint: disable=broad-except  (re-raised in the consumer thread)
      try:
        self._put(("error", e))
      except _Stop:
        pass
    finally:
      pool.shutdown(wait=False, cancel_futures=True)


class BatchIterator:
  """Iterator over one epoch of batches; `close()` (or garbage collection) stops its threads."""

  def __init__(self, producer: _Producer, num_batches: int):
    self._queue, self._stop = producer.out, producer.stop
    self._thread = threading.Thread(target=producer.run, name="batch-producer", daemon=True)
    self._num_batches = num_batches
    self._finished = False
    self._thread.start()

  def __iter__(self) -> "BatchIterator":
    return self

  def __len__(self) -> int:
    """Upper bound on the batches left to come (exact unless files are skipped)."""
    return self._num_batches

  @property
  def producer_thread(self) -> threading.Thread:
    """The background thread (for diagnostics: it is gone once the iterator ends or is closed)."""
    return self._thread

  def __next__(self) -> dict[str, np.ndarray]:
    if self._finished:
      raise StopIteration
    kind, payload = self._queue.get()
    if kind == "batch":
      self._num_batches = max(self._num_batches - 1, 0)
      return payload
    self.close()
    if kind == "error":
      raise payload
    raise StopIteration

  def close(self) -> None:
    """Stops the producer and its decoders; safe to call twice."""
    self._finished = True
    self._stop.set()
    while True:  # unblock a producer waiting on a full queue
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    if self._thread is not threading.current_thread():
      self._thread.join(timeout=5.0)

  def __enter__(self) -> "BatchIterator":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __del__(self):
    self._stop.set()


def batches(split: Split, *, batch_size: int, num_samples: int, train: bool, seed: int,
            epoch: int = 0, sample_rate: int = 16000, cache: AudioCache | None = None,
            prefetch_batches: int = 2, num_threads: int = 2, skip_bad_files: bool = False,
            skipped: SkipLog | None = None, trim_silence_db: float | None = None,
            start_batch: int = 0, pad: str = "repeat", train_crop: str = "random",
            drop_last: bool = True) -> Iterator[dict[str, np.ndarray]]:
  """One epoch of fixed-shape batches from `split`.

  Args:
    split: the utterances; `index` in the batches refers to `split.items`.
    batch_size: B.
    num_samples: samples per utterance after crop / pad.
    train: shuffle, crop as `train_crop` says, and drop (or shorten, `drop_last=False`) the last
      partial batch; else protocol order, first crop, last batch padded (mask 0, index -1).
    seed: with `epoch`, fixes the permutation and every crop.
    epoch: gives each epoch its own permutation and crops.
    sample_rate: decode rate, Hz.
    cache: optional AudioCache reused across epochs.
    prefetch_batches: finished batches buffered ahead of the consumer (>= 1).
    num_threads: decoding threads.
    skip_bad_files: instead of raising AudioError, skip an undecodable item (train: the next item
      takes its slot; eval: its slot is masked out with index -1) and record it in `skipped`.
    skipped: SkipLog collecting skipped files; one is created (and only logged) if None.
    trim_silence_db: if set, strip leading/trailing silence below this many dB under the peak
      before cropping (the PA silence-shortcut check).
    start_batch: resume an epoch here: the first `start_batch * batch_size` positions of the order
      are not decoded, and later batches equal those of an uninterrupted epoch (exactly so unless
      files were skipped before the resume point).
    pad: how clips shorter than `num_samples` are filled: "repeat" (tiled) or "zero" (the authors').
    train_crop: "random" (a random window of longer training clips) or "first" (the first
      `num_samples`, the authors'); dev/eval always take the first.
    drop_last: training only: drop the last partial batch (True: every batch has B rows) or yield it
      with fewer rows (False: every training utterance is seen each epoch, as the authors').

  Returns:
    An iterator (BatchIterator) over {'audio': f32[B, num_samples], 'label': i32[B],
    'mask': f32[B], 'index': i32[B]}; abandoning it early is safe (daemon thread + stop event).

  Raises:
    AudioError: from iteration, naming the file, when a file is bad and skip_bad_files is False.
  """
  for name, value in (("batch_size", batch_size), ("num_samples", num_samples),
                      ("sample_rate", sample_rate), ("prefetch_batches", prefetch_batches),
                      ("num_threads", num_threads)):
    if int(value) != value or value <= 0:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if pad not in PAD_MODES:
    raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
  if train_crop not in TRAIN_CROPS:
    raise ValueError(f"train_crop must be one of {TRAIN_CROPS}, got {train_crop!r}")
  if seed < 0 or epoch < 0 or start_batch < 0:
    raise ValueError(f"seed, epoch and start_batch must be >= 0, got seed={seed}, epoch={epoch}, "
                     f"start_batch={start_batch}")
  n = len(split.items)
  if train:
    order = np.random.default_rng((seed, epoch)).permutation(n)
  else:
    order = np.arange(n)
  steps = epoch_steps(split, batch_size, train, drop_last)
  start_batch = min(start_batch, steps)
  if cache is not None:
    cache.bind_sample_rate(sample_rate)
  producer = _Producer(
      split, order, start=start_batch * batch_size, batch_size=batch_size,
      num_samples=num_samples, train=train, seed=seed, epoch=epoch, sample_rate=sample_rate,
      cache=cache, num_threads=num_threads,
      skip_bad_files=skip_bad_files, skipped=skipped if skipped is not None else SkipLog(),
      trim_silence_db=trim_silence_db, pad=pad, random_crop=train_crop == "random",
      drop_last=drop_last, out=queue.Queue(maxsize=prefetch_batches),
      stop=threading.Event())
  return BatchIterator(producer, steps - start_batch)


__all__ = ["AudioCache", "BatchIterator", "SkipLog", "batches", "crop_rng", "epoch_steps"]
