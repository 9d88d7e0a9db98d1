"""Host-side batch pipeline on grain: deterministic order and crops, per-process rows, worker processes, exact resume.

Batches are numpy dicts {'audio': f32[b, num_samples], 'label': i32[b], 'mask': f32[b], 'index': i32[b]}, where
b = B / process_count is this process's share of the global batch B; moving them to devices is the trainer's job.
Everything random is a pure function of (seed, epoch, item index), never of thread or process timing, so a run (and
a resumed run, on any number of hosts and workers) sees the same data:
- train: items in `np.random.default_rng((seed, epoch)).permutation` (the order of the thread pipeline this replaced,
  so seeded results stay comparable), random or first crops (`train_crop`), and the last partial batch either dropped
  (`drop_last=True`: every batch has one shape) or yielded as a smaller batch (the authors' PyTorch DataLoader);
- eval: protocol order, first crops, the last batch padded with mask 0 / index -1 so no eval utterance is dropped.
Short clips are repeat- or zero-padded (`pad`, see `audio.fix_length`). How rows are split over processes, and why
not with grain's record sharding, is in `grain_source`.

grain runs the decoding: a `MapDataset` over local batch numbers, read by a thread pool in this process
(`num_workers=0`) or by worker processes (`mp_prefetch`), which sidestep the GIL that limits decoder threads.
"""

from __future__ import annotations

import atexit
import gc
import logging
import threading

import grain
import numpy as np
from absl import flags

from jaxplastic.data.asvspoof import Split
from jaxplastic.data.audio import PAD_MODES
from jaxplastic.data.grain_source import Layout, LocalBatches, crop_rng

# How training takes `num_samples` out of a longer clip (config.data.train_crop).
TRAIN_CROPS = ("random", "first")

# Identifies a `BatchIterator.get_state()` dict; bump the version when its meaning changes.
STATE_FORMAT = "jaxplastic.data.pipeline.batches"
STATE_VERSION = 1


class AudioCache:
  """Decoded full-length float32 audio per path, so epochs after the first skip decoding.

  Thread-safe, and lives in one process: with worker processes `batches` fills it from what the workers decoded
  and fills cached rows itself. With `max_bytes`, entries are added until the budget is full and then no more:
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

  def paths(self) -> frozenset:
    """The paths cached now (what worker processes need not decode)."""
    with self._lock:
      return frozenset(self._data)

  def has_room(self) -> bool:
    """Whether another entry might still fit (False once `max_bytes` is reached)."""
    return self.max_bytes is None or self.nbytes < self.max_bytes

  def tally(self, hits: int, misses: int) -> None:
    """Counts lookups served elsewhere: rows filled from this cache, and rows worker processes decoded."""
    with self._lock:
      self.hits += hits
      self.misses += misses

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


def epoch_steps(split: Split, batch_size: int, train: bool, drop_last: bool = True, process_count: int = 1) -> int:
  """Batches per epoch (the same on every process): floor(N / B) for training with the partial batch dropped,
  ceil(N / B) for dev/eval; training with `drop_last=False` adds the partial batch when `process_count` divides its
  rows (see `grain_source.Layout`)."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  return Layout(len(split.items), batch_size, train, drop_last, 0, process_count).num_batches


def _allow_unparsed_grain_flags() -> None:
  """Lets grain 0.2.18 start worker processes when absl flags are unparsed (pytest, notebooks, plain scripts).

  Its `mp_prefetch` reads --grain_enable_multiprocess_worker_profiling, which raises UnparsedFlagAccessError before
  `absl.app` parsed the command line (google/grain#1355, fixed after 0.2.18 by #1362). Marking that one flag present
  keeps its default value and leaves every other flag, and a later parse, untouched.
  """
  name = "grain_enable_multiprocess_worker_profiling"
  if not flags.FLAGS.is_parsed() and name in flags.FLAGS and not flags.FLAGS[name].present:
    flags.FLAGS[name].present = 1


_closing: set[threading.Thread] = set()


def _close_workers(grain_iter) -> None:
  """Closes a grain iterator that has worker processes, and frees the shared memory of its last batches."""
  grain_iter.close()
  # grain's prefetch threads end on an exception whose traceback holds their frame, and that frame the last batch
  # its worker sent: a reference cycle that would keep that batch's shared memory until the next full collection.
  gc.collect()


def _close_in_background(grain_iter) -> None:
  """Closes a grain iterator with workers in a thread the consumer need not wait for (joining workers that
  imported jax takes a second or more)."""
  def close():
    try:
      _close_workers(grain_iter)
    finally:
      _closing.discard(threading.current_thread())

  thread = threading.Thread(target=close, name="batches-close", daemon=True)
  _closing.add(thread)
  thread.start()


@atexit.register
def wait_for_closing() -> None:
  """Waits until iterators that ran out have stopped their worker processes (benchmarks; runs at exit).

  Registered after multiprocessing's own exit hook, so at exit it runs first: grain's exit finalizer must not close
  an iterator that a background thread is still closing.
  """
  for thread in list(_closing):
    thread.join()


class BatchIterator:
  """One epoch's batches for this process; `get_state()` says where it is, `close()` (or GC) stops its workers."""

  def __init__(self, grain_iter, *, source: LocalBatches, state: dict, num_batches: int, cache: AudioCache | None,
               skipped: SkipLog, from_workers: bool):
    self._it = grain_iter
    self._source, self._cache, self._skipped = source, cache, skipped
    self._state = state
    self._left = num_batches
    self._from_workers = from_workers

  def __iter__(self) -> "BatchIterator":
    return self

  def __len__(self) -> int:
    """Batches left to come (exact: skipped files never shorten an epoch)."""
    return self._left

  def get_state(self) -> dict:
    """A JSON-serialisable position: `batches(..., state=it.get_state())` yields exactly the batches this iterator
    has not yet yielded. It holds no process index or worker count, so it resumes any process of any count."""
    return dict(self._state)

  def __next__(self) -> dict[str, np.ndarray]:
    if self._it is None or self._left == 0:
      raise StopIteration
    try:
      raw = next(self._it)
    except BaseException:  # an AudioError naming a file, or an interrupt: stop the workers either way
      self.close()
      raise
    batch = self._finish(raw)
    self._state["next_batch"] += 1
    self._left -= 1
    if self._left == 0:
      # The count is exact, so the workers can go now, without the consumer waiting for their exit (a second or
      # more per worker: they imported jax) or for grain to discover the end.
      it, self._it = self._it, None
      if self._from_workers:
        _close_in_background(it)
      else:
        it.close()
    return batch

  def _finish(self, raw: dict) -> dict[str, np.ndarray]:
    """Main-process part of a batch: skip reports, cache fills, and plain arrays out of grain's shared memory."""
    # A copy from a worker lets grain unlink its shared-memory block now rather than when the batch is freed.
    take = np.array if self._from_workers else np.asarray
    batch = {k: take(raw[k]) for k in ("audio", "label", "mask", "index")}
    for path, reason in raw["_skipped"]:
      logging.warning("skipping undecodable file: %s", reason)
      self._skipped.add(path, reason)
    if self._cache is not None and self._from_workers:
      for path, wav in raw["_decoded"]:
        self._cache.put(path, np.array(wav))
      rows = np.flatnonzero(raw["_from_cache"])
      for row in rows:
        index = int(batch["index"][row])
        batch["audio"][row] = self._source.to_row(self._cache[self._source.paths[index]], index)
      self._cache.tally(hits=len(rows), misses=int(batch["mask"].sum()) - len(rows))
    return batch

  def close(self) -> None:
    """Stops grain's threads and worker processes; safe to call twice."""
    it, self._it = self._it, None
    if it is not None and self._from_workers:
      _close_workers(it)
    elif it is not None:
      it.close()

  def __enter__(self) -> "BatchIterator":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __del__(self):
    self.close()


def _check_state(state: dict, expected: dict) -> int:
  """The batch a saved state resumes at, after checking it comes from an iterator over the same epoch."""
  if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
    raise ValueError(f"not a {STATE_FORMAT} state (version {STATE_VERSION}): {state!r}")
  wrong = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
  if wrong:
    raise ValueError(f"iterator state does not belong to this epoch; (saved, requested): {wrong}")
  return int(state["next_batch"])


def batches(split: Split, *, batch_size: int, num_samples: int, train: bool, seed: int,
            epoch: int = 0, sample_rate: int = 16000, cache: AudioCache | None = None,
            prefetch_batches: int = 2, num_threads: int = 2, skip_bad_files: bool = False,
            skipped: SkipLog | None = None, trim_silence_db: float | None = None,
            start_batch: int = 0, pad: str = "repeat", train_crop: str = "random",
            drop_last: bool = True, process_index: int = 0, process_count: int = 1, num_workers: int = 0,
            state: dict | None = None) -> BatchIterator:
  """One epoch of this process's rows of every global batch of `split`.

  Args:
    split: the utterances; `index` in the batches refers to `split.items`.
    batch_size: B, the GLOBAL batch size (all processes together); a multiple of `process_count`.
    num_samples: samples per utterance after crop / pad.
    train: shuffle, crop as `train_crop` says, and drop (or shorten, `drop_last=False`) the last
      partial batch; else protocol order, first crop, last batch padded (mask 0, index -1).
    seed: with `epoch`, fixes the permutation and every crop.
    epoch: gives each epoch its own permutation and crops.
    sample_rate: decode rate, Hz.
    cache: optional AudioCache of decoded signals reused across epochs; it lives in this process. With worker
      processes, rows already cached are filled here (workers skip them) and the workers' decodes are sent back to
      fill it; when every row this iterator needs is cached, no workers start (cropping cached audio is cheaper
      than starting them). Each process caches the items it met, so with P processes a process needs about P
      epochs to have cached the whole split.
    prefetch_batches: finished batches buffered ahead of the consumer (>= 1).
    num_threads: decoding threads when `num_workers` is 0 (each decodes whole batches).
    skip_bad_files: instead of raising AudioError, repair an undecodable item's row and record the file in `skipped`:
      train: the next item of the epoch's order that decodes takes the row (that item appears twice this epoch;
      no other row moves, so batches stay full and identical for any process count); eval: the row is masked
      (mask 0, index -1). Each process reports only the bad files of its own rows.
    skipped: SkipLog collecting skipped files; one is created (and only logged) if None.
    trim_silence_db: if set, strip leading/trailing silence below this many dB under the peak
      before cropping (the PA silence-shortcut check).
    start_batch: resume an epoch at this global batch: earlier batches are not decoded, and later ones equal those
      of an uninterrupted epoch exactly (bad files included). Same as `state` with `next_batch=start_batch`; given
      with `state`, the two must agree.
    pad: how clips shorter than `num_samples` are filled: "repeat" (tiled) or "zero" (the authors').
    train_crop: "random" (a random window of longer training clips) or "first" (the first
      `num_samples`, the authors'); dev/eval always take the first.
    drop_last: training only: drop the last partial batch (True: every batch has B rows) or yield it
      with fewer rows (False: every training utterance is seen each epoch, as the authors'); with several
      processes that batch is dropped, with a warning, unless `process_count` divides its rows (BatchNorm makes
      padding it undesirable, see `grain_source.Layout`).
    process_index: this process (jax.process_index()).
    process_count: processes sharing each global batch (jax.process_count()); the global batches, and their order,
      crops and bad-file repairs, do not depend on it: the processes' local batches concatenate to the single-process
      batch.
    num_workers: grain worker processes decoding batches (0: a thread pool in this process). Batches do not depend
      on it; a worker costs one Python start-up (grain imports jax) per iterator, i.e. per epoch. Workers are
      spawned, so a script using them needs the usual `if __name__ == "__main__":` guard (run.py has it).
    state: a `BatchIterator.get_state()` to resume from (instead of `start_batch`); it must come from an iterator
      over the same split, seed, epoch, train, batch_size and drop_last, with any process_index/count/num_workers.

  Returns:
    A BatchIterator over {'audio': f32[b, num_samples], 'label': i32[b], 'mask': f32[b], 'index': i32[b]} with
    b = batch_size / process_count (fewer rows in a kept partial training batch); every process yields the same
    number of batches. Abandoning it early is safe (close() or garbage collection stops workers and threads).

  Raises:
    ValueError: bad arguments, or a `state` from another epoch.
    AudioError: from iteration, naming the file, when a file is bad and skip_bad_files is False.
  """
  for name, value in (("batch_size", batch_size), ("num_samples", num_samples),
                      ("sample_rate", sample_rate), ("prefetch_batches", prefetch_batches),
                      ("num_threads", num_threads), ("process_count", process_count)):
    if int(value) != value or value <= 0:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if int(num_workers) != num_workers or num_workers < 0:
    raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
  if pad not in PAD_MODES:
    raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
  if train_crop not in TRAIN_CROPS:
    raise ValueError(f"train_crop must be one of {TRAIN_CROPS}, got {train_crop!r}")
  if seed < 0 or epoch < 0 or start_batch < 0:
    raise ValueError(f"seed, epoch and start_batch must be >= 0, got seed={seed}, epoch={epoch}, "
                     f"start_batch={start_batch}")
  n = len(split.items)
  layout = Layout(n, batch_size, train, drop_last, process_index, process_count)
  identity = {"seed": seed, "epoch": epoch, "train": train, "batch_size": batch_size, "num_items": n,
              "drop_last": drop_last}
  if state is not None:
    resume_at = _check_state(state, identity)
    if start_batch and start_batch != resume_at:
      raise ValueError(f"start_batch={start_batch} but the state resumes at batch {resume_at}")
    start_batch = resume_at
  if layout.dropped_partial:
    logging.warning("the last training batch has %d rows, which do not split over %d processes; it is dropped "
                    "on every process", layout.partial_rows, process_count)
  start = min(start_batch, layout.num_batches)
  order = np.random.default_rng((seed, epoch)).permutation(n) if train else np.arange(n)
  paths = [item.path for item in split.items]
  if cache is not None:
    cache.bind_sample_rate(sample_rate)
  workers = min(num_workers, layout.num_batches - start)
  if workers and cache is not None:
    cached = cache.paths()
    needed = (paths[order[p]] for k in range(start, layout.num_batches) for p in layout.positions(k) if p >= 0)
    if all(path in cached for path in needed):
      workers = 0
  common = dict(paths=paths, labels=np.array([item.label for item in split.items], np.int32), order=order,
                layout=layout, num_samples=num_samples, sample_rate=sample_rate, seed=seed, epoch=epoch,
                random_crop=train_crop == "random", pad=pad, trim_silence_db=trim_silence_db,
                skip_bad_files=skip_bad_files)
  ds = grain.MapDataset.range(layout.num_batches)[start:]
  if workers:
    source = LocalBatches(**common, cached_paths=cached if cache is not None else frozenset(),
                          return_decoded=cache is not None and cache.has_room())
    _allow_unparsed_grain_flags()
    ds = ds.map(source).to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    # Audio crosses from the workers in shared memory; labels, masks and indices are cheaper to pickle.
    ds = grain.experimental.WithOptionsIterDataset(ds, grain.experimental.DatasetOptions(min_shm_size=1 << 16))
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=workers, per_worker_buffer_size=max(1, -(-prefetch_batches // workers))))
  else:
    source = LocalBatches(**common, cache=cache)
    ds = ds.map(source).to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                                          prefetch_buffer_size=max(prefetch_batches, num_threads)))
  return BatchIterator(iter(ds), source=source, state={"format": STATE_FORMAT, "version": STATE_VERSION,
                                                       **identity, "next_batch": start},
                       num_batches=layout.num_batches - start, cache=cache,
                       skipped=skipped if skipped is not None else SkipLog(), from_workers=bool(workers))


__all__ = ["AudioCache", "BatchIterator", "SkipLog", "batches", "crop_rng", "epoch_steps", "wait_for_closing"]
