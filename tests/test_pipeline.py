"""Tests for the batch pipeline: order, crops, padding, caching, bad files and thread clean-up."""

import gc
import os
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


def _stopped(thread, timeout=5.0):
  thread.join(timeout)
  return not thread.is_alive()


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
    it = batches(split, batch_size=4, num_samples=NS, train=train, seed=3)
    with pytest.raises(AudioError) as info:
      list(it)
    assert split.items[6].path in str(info.value)
    assert _stopped(it.producer_thread)


def test_skip_bad_files_train_refills_and_counts(tmp_path):
  bad = int(np.random.default_rng((3, 0)).permutation(10)[2])
  split = _with_bad_file(tmp_path, bad)
  skipped = SkipLog()
  out = _epoch(split, train=True, epoch=0, skip_bad_files=True, skipped=skipped)
  assert skipped.count == 1 and skipped.paths == [split.items[bad].path]
  order = [int(i) for i in np.random.default_rng((3, 0)).permutation(10) if i != bad]
  np.testing.assert_array_equal(np.concatenate([b["index"] for b in out]), order[:8])
  assert all(b["mask"].all() for b in out)


def test_skip_bad_files_eval_masks_the_slot(tmp_path):
  split = _with_bad_file(tmp_path, 5)
  skipped = SkipLog()
  out = _epoch(split, train=False, skip_bad_files=True, skipped=skipped)
  assert len(out) == 3 and skipped.count == 1
  np.testing.assert_array_equal(out[1]["index"], [4, -1, 6, 7])
  np.testing.assert_array_equal(out[1]["mask"], [1, 0, 1, 1])
  np.testing.assert_array_equal(out[1]["audio"][1], 0.0)


def test_abandoned_iterators_stop_their_threads(split):
  it = batches(split, batch_size=2, num_samples=NS, train=True, seed=0, prefetch_batches=1)
  next(it)
  it.close()
  assert _stopped(it.producer_thread)
  with pytest.raises(StopIteration):
    next(it)
  it = batches(split, batch_size=2, num_samples=NS, train=False, seed=0, prefetch_batches=1)
  next(it)
  thread = it.producer_thread
  time.sleep(0.2)
  assert thread.is_alive()  # 4 batches to go, 1 queue slot: the producer waits for the consumer
  del it  # dropped without close(): garbage collection must stop the producer
  gc.collect()
  assert _stopped(thread)


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
