"""Tests for the batch pipeline: order, crops, padding, caching, bad files, per-process rows, exact resume, and
clean-up of threads and worker processes."""

import gc
import json
import logging
import multiprocessing
import os
import threading
import time

import numpy as np
import pytest

from jaxplastic.data import AudioCache, AudioError, SkipLog, Split, Utterance, batches, epoch_steps
from jaxplastic.data.pipeline import crop_rng

try:
  from tests import fixtures_data as fx
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
  import fixtures_data as fx

# Item i holds the PCM16 values i * _STRIDE + t, t = 0..len-1, so a crop tells item and offset.
_STRIDE = 3000
_LENGTHS = [900, 250, 1200, 640, 100, 2000, 700, 333, 1500, 800]
NS = 500  # samples per crop: some items are shorter (repeat-padded), most longer (cropped)


def _ramp(i):
  return ((i * _STRIDE + np.arange(_LENGTHS[i])) / 32768).astype(np.float32)


def _decode_row(row):
  """(item, crop start) encoded in a batch row."""
  first = int(round(row[0] * 32768))
  return first // _STRIDE, first % _STRIDE


def _make_split(folder, name="ramps"):
  items = []
  for i in range(len(_LENGTHS)):
    path = os.path.join(folder, f"utt_{i:02d}.flac")
    fx.write_flac(path, _ramp(i))
    items.append(Utterance(utt_id=f"utt_{i:02d}", path=path, label=int(i % 3 == 0),
                           attack="-" if i % 3 == 0 else "A01"))
  return Split(name=name, corpus="test", items=items)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
  return _make_split(str(tmp_path_factory.mktemp("ramps")))


def _epoch(split, **kwargs):
  kwargs = {"batch_size": 4, "num_samples": NS, "seed": 3, **kwargs}
  return list(batches(split, **kwargs))


def _leftovers(threads_before, timeout=30.0):
  """Threads started since `threads_before` and worker processes still alive once `timeout` s have passed."""
  deadline = time.monotonic() + timeout
  while True:
    gc.collect()
    threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    children = multiprocessing.active_children()
    if not (threads or children) or time.monotonic() > deadline:
      return threads + children
    time.sleep(0.05)


def _assert_same(a, b):
  """Two lists of batches are equal bit for bit, key by key."""
  assert len(a) == len(b)
  for x, y in zip(a, b, strict=True):
    assert x.keys() == y.keys()
    for key in x:
      assert x[key].dtype == y[key].dtype, key
      np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def _concat(per_process):
  """The global batches rebuilt from each process's local batches (one list per process)."""
  assert len({len(local) for local in per_process}) == 1  # every process yields the same number of batches
  return [{k: np.concatenate([b[k] for b in group]) for k in group[0]} for group in zip(*per_process)]


def test_train_order_is_seeded_permutation_and_drops_partial(split):
  out = _epoch(split, train=True, epoch=0)
  assert len(out) == epoch_steps(split, 4, train=True) == 2
  order = np.random.default_rng((3, 0)).permutation(10)
  np.testing.assert_array_equal(np.concatenate([b["index"] for b in out]), order[:8])
  for b in out:
    assert b["audio"].shape == (4, NS) and b["audio"].dtype == np.float32
    assert b["label"].dtype == np.int32 and b["mask"].dtype == np.float32
    np.testing.assert_array_equal(b["mask"], 1.0)
    np.testing.assert_array_equal(b["label"], [split.items[i].label for i in b["index"]])


def test_train_is_deterministic_per_epoch_and_independent_of_threads(split):
  a = _epoch(split, train=True, epoch=1, num_threads=1, prefetch_batches=1)
  b = _epoch(split, train=True, epoch=1, num_threads=4, prefetch_batches=3)
  for x, y in zip(a, b, strict=True):
    np.testing.assert_array_equal(x["index"], y["index"])
    np.testing.assert_array_equal(x["audio"], y["audio"])
  c = _epoch(split, train=True, epoch=2)
  assert not np.array_equal(np.concatenate([x["index"] for x in a]),
                            np.concatenate([x["index"] for x in c]))


def test_train_crops_are_random_windows_and_short_items_repeat(split):
  starts = {i: set() for i in range(10)}
  for epoch in range(6):
    for b in _epoch(split, train=True, epoch=epoch, batch_size=2):
      for row, index in zip(b["audio"], b["index"]):
        item, start = _decode_row(row)
        assert item == index
        ramp = _ramp(item)
        np.testing.assert_array_equal(row, np.tile(ramp, -(-NS // ramp.size) + 1)[start:start + NS])
        if ramp.size < NS:
          assert start == 0
        else:
          assert 0 <= start <= ramp.size - NS
          expected = crop_rng(3, epoch, item).integers(0, ramp.size - NS + 1)
          assert start == expected
        starts[item].add(start)
  assert len(starts[5]) > 1  # the 2000-sample item was cropped at different offsets across epochs


def test_eval_protocol_order_first_crop_and_padding(split):
  out = _epoch(split, train=False)
  assert len(out) == epoch_steps(split, 4, train=False) == 3
  np.testing.assert_array_equal(np.concatenate([b["index"] for b in out]),
                                list(range(10)) + [-1, -1])
  np.testing.assert_array_equal(out[-1]["mask"], [1, 1, 0, 0])
  np.testing.assert_array_equal(out[-1]["audio"][2:], 0.0)
  for b in out:
    for row, index, mask in zip(b["audio"], b["index"], b["mask"]):
      if mask:
        ramp = _ramp(index)
        np.testing.assert_array_equal(row, np.tile(ramp, -(-NS // ramp.size))[:NS])
  again = _epoch(split, train=False, epoch=5, seed=9)  # eval ignores seed and epoch
  for x, y in zip(out, again, strict=True):
    np.testing.assert_array_equal(x["audio"], y["audio"])


def test_cache_serves_later_epochs_without_decoding(tmp_path):
  split = _make_split(str(tmp_path))
  cache = AudioCache()
  first = _epoch(split, train=True, epoch=0, cache=cache)
  uncached = _epoch(split, train=True, epoch=0)
  for x, y in zip(first, uncached, strict=True):
    np.testing.assert_array_equal(x["audio"], y["audio"])
  assert len(cache) == 8 and cache.misses == 8 and cache.hits == 0
  assert cache.nbytes == sum(_LENGTHS[i] * 4 for i in np.concatenate([b["index"] for b in first]))
  evaluated = _epoch(split, train=False, cache=cache)  # fills the remaining 2 items
  assert len(cache) == 10
  for item in split.items:
    os.remove(item.path)
  second = _epoch(split, train=True, epoch=1, cache=cache)  # decoding now would raise AudioError
  assert len(second) == 2 and cache.hits >= 16
  again = _epoch(split, train=False, cache=cache)
  for x, y in zip(evaluated, again, strict=True):
    np.testing.assert_array_equal(x["audio"], y["audio"])
  with pytest.raises(ValueError, match="16000 Hz"):
    batches(split, batch_size=4, num_samples=NS, train=False, seed=0, sample_rate=8000,
            cache=cache)


def test_cache_respects_max_bytes(split):
  """What AudioCache promises under any decoding-thread interleaving; which items it keeps depends on timing."""
  budget = 4 * 1000
  cache = AudioCache(max_bytes=budget)
  _epoch(split, train=False, num_threads=4, cache=cache)
  held = [i for i in range(10) if split.items[i].path in cache]
  # Items of <= 1000 samples fit on their own, so whichever put succeeds first is kept.
  assert held and len(cache) == len(held) and cache.misses == 10
  assert cache.nbytes == sum(_LENGTHS[i] * 4 for i in held) <= budget
  # Fill-then-stop: an item left out did not fit when it was offered, nor does it now (nbytes only grows).
  assert all(cache.nbytes + _LENGTHS[i] * 4 > budget for i in range(10) if i not in held)
  for i in held:
    cached = cache[split.items[i].path]
    assert not cached.flags.writeable
    np.testing.assert_array_equal(cached, _ramp(i))


def _with_bad_file(tmp_path, bad_index):
  split = _make_split(str(tmp_path))
  with open(split.items[bad_index].path, "wb") as f:
    f.write(b"fLaC" + bytes(range(256)) * 4)
  return split


def test_bad_file_raises_audio_error_naming_it(tmp_path):
  split = _with_bad_file(tmp_path, 6)
  for train in (True, False):
    threads = threading.enumerate()
    it = batches(split, batch_size=4, num_samples=NS, train=train, seed=3)
    with pytest.raises(AudioError) as info:
      list(it)
    assert split.items[6].path in str(info.value)
    assert _leftovers(threads) == []


def test_skip_bad_files_train_refills_the_row_and_counts(tmp_path):
  order = np.random.default_rng((3, 0)).permutation(10)
  bad = int(order[2])
  split = _with_bad_file(tmp_path, bad)
  skipped = SkipLog()
  out = _epoch(split, train=True, epoch=0, skip_bad_files=True, skipped=skipped)
  assert skipped.count == 1 and skipped.paths == [split.items[bad].path]
  # The next item of the order takes the bad item's row (a copy of its own row, crop included); no row moves.
  expected = order[:8].copy()
  expected[2] = order[3]
  indices = np.concatenate([b["index"] for b in out])
  np.testing.assert_array_equal(indices, expected)
  audio = np.concatenate([b["audio"] for b in out])
  np.testing.assert_array_equal(audio[2], audio[3])
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in out]), [split.items[i].label for i in expected])
  assert all(b["mask"].all() for b in out)
  # The same batches from a resume after the bad row, and from the batch holding it.
  for start in (0, 1):
    _assert_same(out[start:], list(batches(split, batch_size=4, num_samples=NS, train=True, seed=3, epoch=0,
                                           skip_bad_files=True, start_batch=start)))


def test_skip_bad_files_eval_masks_the_slot(tmp_path):
  split = _with_bad_file(tmp_path, 5)
  skipped = SkipLog()
  out = _epoch(split, train=False, skip_bad_files=True, skipped=skipped)
  assert len(out) == 3 and skipped.count == 1
  np.testing.assert_array_equal(out[1]["index"], [4, -1, 6, 7])
  np.testing.assert_array_equal(out[1]["mask"], [1, 0, 1, 1])
  np.testing.assert_array_equal(out[1]["audio"][1], 0.0)


def test_abandoned_iterators_stop_their_threads(split):
  threads = threading.enumerate()
  it = batches(split, batch_size=2, num_samples=NS, train=True, seed=0, prefetch_batches=1)
  next(it)
  it.close()
  assert _leftovers(threads) == []
  with pytest.raises(StopIteration):
    next(it)
  it = batches(split, batch_size=2, num_samples=NS, train=False, seed=0, prefetch_batches=1, num_threads=2)
  next(it)
  assert [t for t in threading.enumerate() if t not in threads]  # decoding threads are working ahead
  del it  # dropped without close(): garbage collection must stop the threads
  assert _leftovers(threads) == []


def test_argument_validation(split):
  with pytest.raises(ValueError, match="batch_size"):
    batches(split, batch_size=0, num_samples=NS, train=True, seed=0)
  with pytest.raises(ValueError, match="num_samples"):
    batches(split, batch_size=2, num_samples=-1, train=True, seed=0)
  with pytest.raises(ValueError, match="seed"):
    batches(split, batch_size=2, num_samples=NS, train=True, seed=-1)
  assert epoch_steps(split, 3, train=True) == 3 and epoch_steps(split, 3, train=False) == 4
  assert epoch_steps(split, 16, train=True) == 0 and _epoch(split, train=True, batch_size=16) == []


def test_trim_silence_option(tmp_path):
  path = str(tmp_path / "padded.flac")
  speech = fx.tone(4000, 4)
  fx.write_flac(path, np.concatenate([speech, np.zeros(20000, np.float32)]))
  split = Split("x", "test", [Utterance("x", path, 1, "-")])
  plain = _epoch(split, train=False, batch_size=1, num_samples=20000)[0]["audio"][0]
  trimmed = _epoch(split, train=False, batch_size=1, num_samples=20000,
                   trim_silence_db=40.0)[0]["audio"][0]
  assert np.abs(plain[12000:]).max() == 0.0  # the trailing silence reaches the model
  assert np.abs(trimmed[12000:]).max() > 0.1  # trimmed audio is repeat-padded with speech


@pytest.mark.parametrize("train", [True, False])
def test_start_batch_resumes_the_same_epoch(split, train):
  full = _epoch(split, train=train, epoch=4, batch_size=2)
  resumed = list(batches(split, batch_size=2, num_samples=NS, train=train, seed=3, epoch=4,
                         start_batch=2))
  assert len(resumed) == len(full) - 2
  for x, y in zip(full[2:], resumed, strict=True):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  cache = AudioCache()
  list(batches(split, batch_size=2, num_samples=NS, train=train, seed=3, epoch=4, start_batch=4,
               cache=cache))
  assert cache.misses == 2  # the skipped batches were not decoded
  assert list(batches(split, batch_size=2, num_samples=NS, train=train, seed=3,
                      start_batch=99)) == []


def test_skip_log_lists_each_file_once():
  skipped = SkipLog()
  for _ in range(3):
    skipped.add("/corpus/a.flac", "garbage")
  skipped.add("/corpus/b.flac", "empty")
  assert skipped.count == 2 and skipped.paths == ["/corpus/a.flac", "/corpus/b.flac"]


def test_fix_length_zero_pad_and_repeat_pad():
  from jaxplastic.data.audio import fix_length
  wav = np.array([1.0, 2.0, 3.0], np.float32)
  np.testing.assert_array_equal(fix_length(wav, 7, pad="zero"), [1, 2, 3, 0, 0, 0, 0])
  np.testing.assert_array_equal(fix_length(wav, 7, pad="repeat"), [1, 2, 3, 1, 2, 3, 1])
  long = np.arange(10, dtype=np.float32)
  np.testing.assert_array_equal(fix_length(long, 4, pad="zero"), [0, 1, 2, 3])  # first window either way
  with pytest.raises(ValueError, match="pad"):
    fix_length(wav, 7, pad="reflect")


def test_authors_input_handling_first_crop_zero_pad_in_train(split):
  for epoch in range(3):
    for b in _epoch(split, train=True, epoch=epoch, pad="zero", train_crop="first"):
      for row, index in zip(b["audio"], b["index"]):
        ramp = _ramp(index)
        expected = np.concatenate([ramp, np.zeros(max(NS - ramp.size, 0), np.float32)])[:NS]
        np.testing.assert_array_equal(row, expected)  # the first NS samples, zeros after a short item
  # Dev/eval zero-pad too, so training and evaluation see the same inputs.
  out = _epoch(split, train=False, pad="zero")
  short = int(np.argmin(_LENGTHS))
  row = np.concatenate([b["audio"] for b in out])[short]
  np.testing.assert_array_equal(row[:_LENGTHS[short]], _ramp(short))
  np.testing.assert_array_equal(row[_LENGTHS[short]:], 0.0)
  with pytest.raises(ValueError, match="train_crop"):
    _epoch(split, train=True, train_crop="center")


def test_last_partial_train_batch_kept_at_its_own_size(split):
  out = _epoch(split, train=True, epoch=1, drop_last=False)
  assert len(out) == epoch_steps(split, 4, train=True, drop_last=False) == 3
  assert [b["audio"].shape for b in out] == [(4, NS), (4, NS), (2, NS)]
  np.testing.assert_array_equal(out[-1]["mask"], 1.0)
  # Every training utterance exactly once per epoch, in the seeded order.
  np.testing.assert_array_equal(np.concatenate([b["index"] for b in out]),
                                np.random.default_rng((3, 1)).permutation(10))
  resumed = list(batches(split, batch_size=4, num_samples=NS, train=True, seed=3, epoch=1, start_batch=2,
                         drop_last=False))
  assert len(resumed) == 1
  for key in out[-1]:
    np.testing.assert_array_equal(resumed[0][key], out[-1][key])


def _process_epochs(split, process_count, **kwargs):
  """Each simulated process's epoch, as the list of its local batches."""
  return [_epoch(split, process_index=p, process_count=process_count, **kwargs) for p in range(process_count)]


@pytest.mark.parametrize("train,drop_last,process_count,start_batch", [
    (True, False, 2, 0),  # the partial batch (2 rows) splits 1 + 1
    (True, True, 4, 1),   # mid-epoch start, 1 row per process
    (False, True, 2, 0),  # eval: the padded last batch splits as well
    (False, True, 4, 2),
])
def test_processes_concatenate_to_the_single_process_batch(split, train, drop_last, process_count, start_batch):
  kwargs = dict(train=train, epoch=2, drop_last=drop_last, start_batch=start_batch)
  single = _epoch(split, **kwargs)
  per_process = _process_epochs(split, process_count, **kwargs)
  assert len(single) == epoch_steps(split, 4, train, drop_last, process_count) - start_batch > 0
  for local, p in zip(per_process, range(process_count)):
    assert all(len(b["index"]) == len(g["index"]) // process_count for b, g in zip(local, single, strict=True))
  _assert_same(_concat(per_process), single)


def test_partial_train_batch_that_does_not_split_is_dropped_with_a_warning(split, caplog):
  assert epoch_steps(split, 4, train=True, drop_last=False, process_count=4) == 2  # 2 rows cannot go to 4 processes
  with caplog.at_level(logging.WARNING):
    out = _process_epochs(split, 4, train=True, epoch=1, drop_last=False)
  assert "do not split over 4 processes" in caplog.text
  _assert_same(_concat(out), _epoch(split, train=True, epoch=1, drop_last=True))
  with pytest.raises(ValueError, match="multiple of process_count"):
    batches(split, batch_size=4, num_samples=NS, train=True, seed=0, process_count=3)
  with pytest.raises(ValueError, match="process_index"):
    batches(split, batch_size=4, num_samples=NS, train=True, seed=0, process_index=2, process_count=2)


def test_bad_train_file_gives_the_same_global_batch_on_any_process_count(tmp_path):
  order = np.random.default_rng((3, 0)).permutation(10)
  split = _with_bad_file(tmp_path, int(order[5]))  # row 1 of batch 1: process 0's second row when P = 2
  single_log, logs = SkipLog(), [SkipLog(), SkipLog()]
  single = _epoch(split, train=True, epoch=0, skip_bad_files=True, skipped=single_log)
  per_process = [_epoch(split, train=True, epoch=0, skip_bad_files=True, skipped=logs[p], process_index=p,
                        process_count=2) for p in range(2)]
  _assert_same(_concat(per_process), single)
  assert single[1]["index"][1] == order[6]  # repaired with the next item, which lies on the other process
  assert single_log.paths == logs[0].paths == [split.items[int(order[5])].path] and logs[1].count == 0


@pytest.mark.parametrize("train", [True, False])
def test_state_resumes_exactly_on_any_process_count(split, train):
  kwargs = dict(batch_size=4, num_samples=NS, train=train, seed=3, epoch=7, drop_last=False)
  it = batches(split, **kwargs)
  assert it.get_state()["next_batch"] == 0
  head = [next(it)]
  state = json.loads(json.dumps(it.get_state()))  # stored in a checkpoint's JSON meta
  assert state["next_batch"] == 1
  rest = list(it)
  assert len(rest) == 2 and it.get_state()["next_batch"] == 3
  _assert_same(list(batches(split, **kwargs, state=state)), rest)
  _assert_same(_concat([list(batches(split, **kwargs, state=state, process_index=p, process_count=2))
                        for p in range(2)]), rest)
  _assert_same(head + rest, _epoch(split, **{k: v for k, v in kwargs.items() if k != "batch_size"}))
  with pytest.raises(ValueError, match="epoch"):
    batches(split, **{**kwargs, "epoch": 8}, state=state)
  _assert_same(list(batches(split, **kwargs, state=state, start_batch=1)), rest)  # agreeing start_batch is allowed
  with pytest.raises(ValueError, match="resumes at batch 1"):
    batches(split, **kwargs, state=state, start_batch=2)


def test_worker_processes_give_the_same_batches_and_fill_the_cache(tmp_path):
  """The one test that starts grain worker processes (each costs a Python start-up)."""
  split = _make_split(str(tmp_path))
  kwargs = dict(train=True, drop_last=False, batch_size=4)
  reference = {e: _epoch(split, epoch=e, **kwargs) for e in (0, 1)}
  cache = AudioCache()
  # grain keeps one process-wide thread pool for unlinking shared memory once workers were used: start it (as
  # grain does, idempotently) before taking the list of threads that must be all that is left.
  from grain._src.python.ipc.shared_memory_array import SharedMemoryArray
  SharedMemoryArray.enable_async_del(1)
  threads = threading.enumerate()
  # Epoch 0 from 2 workers, abandoned after 2 of its 3 batches: the cache holds what they decoded for those, and
  # garbage collection stops the workers.
  it = batches(split, num_samples=NS, seed=3, epoch=0, num_workers=2, cache=cache, **kwargs)
  _assert_same([next(it), next(it)], reference[0][:2])
  assert len(multiprocessing.active_children()) == 2
  del it
  assert _leftovers(threads) == []
  assert len(cache) == 8 and cache.misses == 8 and cache.hits == 0
  for i in np.concatenate([b["index"] for b in reference[0][:2]]):
    np.testing.assert_array_equal(cache[split.items[i].path], _ramp(i))
  # Epoch 1 resumed from an in-process iterator's state, with half the items cached and their files gone: the main
  # process fills their rows from the cache, a worker decodes the others; the exhausted iterator stops it.
  first = batches(split, num_samples=NS, seed=3, epoch=1, **kwargs)
  _assert_same([next(first)], reference[1][:1])
  state = first.get_state()
  first.close()
  cache = AudioCache()
  for i in range(5):
    cache.put(split.items[i].path, _ramp(i))
    os.remove(split.items[i].path)
  rest = list(batches(split, num_samples=NS, seed=3, epoch=1, cache=cache, num_workers=1, state=state, **kwargs))
  _assert_same(rest, reference[1][1:])
  indices = np.concatenate([b["index"] for b in rest])
  served = int((indices < 5).sum())
  assert cache.hits == served > 0 and cache.misses == len(indices) - served > 0
  assert len(cache) == 5 + len(set(indices[indices >= 5]))  # the workers' decodes were cached
  assert _leftovers(threads) == []
