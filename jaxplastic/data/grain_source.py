"""The grain side of the batch pipeline: which rows of which global batch a process owns, and how a row is made.

Global batch k holds the items at positions [k*B, (k+1)*B) of the epoch's order (the seeded permutation in training,
protocol order in dev/eval). Process p of P decodes only the rows [p*B/P, (p+1)*B/P) of every global batch. Rows are
assigned by position inside the global batch, not with grain's record sharding: `ShardByJaxProcess` hands process p
every P-th record (or a contiguous P-th of them), so with it the items that meet in one global batch, and hence the
training trajectory, would change with the number of hosts. Here the processes' local batches concatenate to exactly
the batch a single process yields, so a run's data does not depend on how many hosts ran it, and a mid-epoch position
saved on N hosts resumes on M.

`LocalBatches` is the function grain maps over local batch numbers; it is pure in (seed, epoch, batch number) and the
files, so grain's worker processes, threads, or this process all produce the same batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxplastic.data.audio import AudioError, fix_length, load_audio, trim_silence


def crop_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
  """The crop generator of item `index`: independent of worker scheduling and of the permutation.

  The index goes into the spawn key: appending it to the entropy tuple instead would collide with
  other seeds, since SeedSequence treats (s, e) and (s, e, 0) alike.
  """
  return np.random.default_rng(np.random.SeedSequence((seed, epoch), spawn_key=(index,)))


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where process `process_index`'s rows of each global batch lie in the epoch's order.

  Training yields floor(N / B) full batches, plus the last partial one (r = N mod B rows) when `drop_last` is False
  and r splits evenly over the processes (r/P rows each). When it does not, that batch is dropped on every process
  (a logged warning): padding it with mask-0 rows would keep the processes in step, but BatchNorm (ResNet) would fold
  the padding's zeros into its batch statistics and running averages, so padded training rows are not harmless.
  Dev/eval yields ceil(N / B) batches on every process (collective steps line up); rows past the end are padding.
  """

  num_items: int
  batch_size: int  # global, all processes together
  train: bool
  drop_last: bool = True
  process_index: int = 0
  process_count: int = 1

  def __post_init__(self):
    if self.process_count <= 0 or not 0 <= self.process_index < self.process_count:
      raise ValueError(f"need 0 <= process_index < process_count, got process_index={self.process_index}, "
                       f"process_count={self.process_count}")
    if self.batch_size % self.process_count:
      raise ValueError(f"the global batch_size {self.batch_size} must be a multiple of process_count "
                       f"{self.process_count}: every process yields batch_size / process_count rows")

  @property
  def partial_rows(self) -> int:
    """Rows of the last, partial training batch (0 when training drops it or N is a multiple of B)."""
    return self.num_items % self.batch_size if self.train and not self.drop_last else 0

  @property
  def dropped_partial(self) -> bool:
    """Whether a partial training batch that was asked for is dropped because P does not divide its rows."""
    return self.partial_rows % self.process_count != 0

  @property
  def num_batches(self) -> int:
    n, b = self.num_items, self.batch_size
    if not self.train:
      return -(-n // b)
    return n // b + (1 if self.partial_rows and not self.dropped_partial else 0)

  def positions(self, k: int) -> np.ndarray:
    """Positions in the epoch's order of this process's rows of global batch `k`; -1 marks an eval padding row."""
    if not 0 <= k < self.num_batches:
      raise IndexError(f"batch {k} out of range [0, {self.num_batches})")
    rows = self.batch_size if not self.train or k < self.num_items // self.batch_size else self.partial_rows
    local = rows // self.process_count
    pos = k * self.batch_size + self.process_index * local + np.arange(local)
    return np.where(pos < self.num_items, pos, -1)


class LocalBatches:
  """grain's map function: local batch number -> this process's rows of that global batch.

  Returns {'audio': f32[b, num_samples], 'label': i32[b], 'mask': f32[b], 'index': i32[b]} plus three private keys
  the consuming iterator resolves in the main process (a worker process cannot reach its SkipLog or AudioCache):
  '_skipped' [(path, reason)] for undecodable files met, '_decoded' [(path, full signal)] for the main process's
  cache, and '_from_cache' bool[b] for rows whose (already cached) audio the main process fills in.

  Undecodable files, with `skip_bad_files`: in eval the row becomes a masked hole (mask 0, index -1), so protocol
  positions stay put; in training the row takes the next item of the epoch's order that decodes (that item then
  appears twice in the epoch), so batches stay full (BatchNorm) and no other row moves: each process repairs its own
  rows without knowing about other processes' files, and the global batch stays the same for any process count.
  """

  def __init__(self, *, paths: list[str], labels: np.ndarray, order: np.ndarray, layout: Layout, num_samples: int,
               sample_rate: int, seed: int, epoch: int, random_crop: bool, pad: str,
               trim_silence_db: float | None, skip_bad_files: bool, cache=None,
               cached_paths: frozenset = frozenset(), return_decoded: bool = False):
    """`cache` (an AudioCache) is used directly and only in this process; worker processes instead get
    `cached_paths` (rows the main process fills from its cache) and `return_decoded` (send decoded signals back)."""
    self.paths, self.labels, self.order, self.layout = paths, labels, order, layout
    self.num_samples, self.sample_rate, self.seed, self.epoch = num_samples, sample_rate, seed, epoch
    self.random_crop, self.pad, self.trim_silence_db = random_crop, pad, trim_silence_db
    self.skip_bad_files, self.cache = skip_bad_files, cache
    self.cached_paths, self.return_decoded = cached_paths, return_decoded

  def __getstate__(self):
    if self.cache is not None:
      raise TypeError("LocalBatches with a live AudioCache cannot go to a worker process; pass cached_paths instead")
    return self.__dict__

  def to_row(self, wav: np.ndarray, index: int) -> np.ndarray:
    """Trims (if asked), crops and pads a decoded signal into item `index`'s row."""
    if self.trim_silence_db is not None:
      wav = trim_silence(wav, self.trim_silence_db)
    rng = crop_rng(self.seed, self.epoch, index) if self.layout.train and self.random_crop else None
    return fix_length(wav, self.num_samples, rng, pad=self.pad)

  def _row(self, index: int, out: dict) -> np.ndarray | None:
    """Item `index`'s row, or None when the main process fills it from its cache; raises AudioError."""
    path = self.paths[index]
    if path in self.cached_paths:
      return None
    if self.cache is not None:
      wav = self.cache.get(path)
      if wav is None:
        wav = load_audio(path, self.sample_rate)
        self.cache.put(path, wav)
    else:
      wav = load_audio(path, self.sample_rate)
      if self.return_decoded:
        out["_decoded"].append((path, wav))
    return self.to_row(wav, index)

  def _item(self, position: int, out: dict) -> tuple[int, np.ndarray | None]:
    """(item index, row) for a position of the order, repairing undecodable files; index -1 is a masked hole."""
    n = len(self.order)
    for step in range(n if self.layout.train else 1):
      index = int(self.order[(position + step) % n])
      try:
        return index, self._row(index, out)
      except AudioError as e:
        if not self.skip_bad_files:
          raise
        out["_skipped"].append((self.paths[index], str(e)))
    if self.layout.train:
      raise AudioError(f"none of the {n} training files decodes (first: {self.paths[int(self.order[0])]})")
    return -1, None

  def __call__(self, k: int) -> dict:
    positions = self.layout.positions(int(k))
    b = len(positions)
    out = {"audio": np.zeros((b, self.num_samples), np.float32), "label": np.zeros(b, np.int32),
           "mask": np.zeros(b, np.float32), "index": np.full(b, -1, np.int32),
           "_from_cache": np.zeros(b, bool), "_decoded": [], "_skipped": []}
    for slot, position in enumerate(positions):
      if position < 0:
        continue
      index, row = self._item(int(position), out)
      if index < 0:
        continue
      if row is None:
        out["_from_cache"][slot] = True
      else:
        out["audio"][slot] = row
      out["label"][slot] = self.labels[index]
      out["mask"][slot] = 1.0
      out["index"][slot] = index
    return out
