"""Throughput of the batch pipeline: utterances/s on 4 s 16 kHz FLACs, decoding vs cached epochs.

Usage:
  python benchmarks/bench_pipeline.py [--num_files 512] [--batch_size 32] [--threads 1,2]

Writes the FLACs (noisy tones, PCM16 like ASVspoof) to a temporary folder unless --dir is given,
then times per decoder-thread count an uncached training epoch, a cached one and an uncached eval
epoch (best of --repeats, since timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxplastic.data import AudioCache, Split, Utterance, batches, load_audio  # noqa: E402


def make_files(folder: str, num_files: int, seconds: float, sample_rate: int = 16000) -> Split:
  """Writes `num_files` FLACs (skipping ones already there) and returns them as a Split."""
  os.makedirs(folder, exist_ok=True)
  items = []
  rng = np.random.default_rng(0)
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  for i in range(num_files):
    path = os.path.join(folder, f"LA_T_{i:07d}.flac")
    if not os.path.exists(path):
      wav = 0.3 * np.sin(2 * np.pi * (100 + i) * t) + 0.05 * rng.standard_normal(t.size)
      sf.write(path, wav.astype(np.float32), sample_rate, subtype="PCM_16")
    items.append(Utterance(utt_id=f"LA_T_{i:07d}", path=path, label=i % 2,
                           attack="-" if i % 2 else "A01"))
  return Split(name="bench", corpus="bench", items=items)


def timed_epoch(split: Split, repeats: int = 1, **kwargs) -> tuple[float, int]:
  """Best wall time of `repeats` epochs (the machine may be shared) and the utterances per epoch."""
  best, count = float("inf"), 0
  for _ in range(repeats):
    start = time.perf_counter()
    count = sum(int(b["mask"].sum()) for b in batches(split, **kwargs))
    best = min(best, time.perf_counter() - start)
  return best, count


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_files", type=int, default=512)
  parser.add_argument("--seconds", type=float, default=4.0)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--num_samples", type=int, default=64600)
  parser.add_argument("--threads", default="1,2", help="comma-separated decoder thread counts")
  parser.add_argument("--repeats", type=int, default=3, help="report the best of this many epochs")
  parser.add_argument("--dir", default=None, help="folder for the FLACs (default: a temp folder)")
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as tmp:
    folder = args.dir or tmp
    start = time.perf_counter()
    split = make_files(folder, args.num_files, args.seconds)
    print(f"files: {args.num_files} x {args.seconds:g} s 16 kHz FLAC in {folder} "
          f"(prepared in {time.perf_counter() - start:.1f} s), batch {args.batch_size}, "
          f"crop {args.num_samples} samples, {os.cpu_count()} CPUs")

    serial = float("inf")
    for _ in range(args.repeats):
      start = time.perf_counter()
      for item in split.items:
        load_audio(item.path)
      serial = min(serial, time.perf_counter() - start)
    print(f"load_audio, serial, no pipeline:     {args.num_files / serial:8.1f} utt/s")

    common = {"batch_size": args.batch_size, "num_samples": args.num_samples, "seed": 0}
    for threads in (int(x) for x in args.threads.split(",")):
      seconds, count = timed_epoch(split, args.repeats, train=True, epoch=0, num_threads=threads,
                                   **common)
      print(f"train epoch 0, decode, {threads} thread(s):  {count / seconds:8.1f} utt/s "
            f"({count} utt in {seconds:.2f} s)")
      cache = AudioCache()
      timed_epoch(split, train=False, cache=cache, num_threads=threads, **common)  # fills the cache
      seconds, count = timed_epoch(split, args.repeats, train=True, epoch=1, cache=cache,
                                   num_threads=threads, **common)
      print(f"train epoch 1, cached, {threads} thread(s):  {count / seconds:8.1f} utt/s "
            f"({count} utt in {seconds:.2f} s; cache {cache.nbytes / 2**20:.0f} MiB)")
      seconds, count = timed_epoch(split, args.repeats, train=False, num_threads=threads, **common)
      print(f"eval epoch, decode, {threads} thread(s):     {count / seconds:8.1f} utt/s "
            f"({count} utt in {seconds:.2f} s)")


if __name__ == "__main__":
  main()
