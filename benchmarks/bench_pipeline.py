"""Input pipeline throughput: the grain pipeline vs the thread pipeline it replaced, utterances/s, side by side.

Usage:
  python benchmarks/bench_pipeline.py [--num_files 512] [--batch_size 32] [--parallelism 1,2] [--json out.json]

Writes 4 s 16 kHz FLACs (noisy tones, PCM16 like ASVspoof) to a temporary folder unless --dir is given, then times
one training epoch per row:
  thread         the old pipeline (benchmarks/legacy_thread_pipeline.py), N decoder threads;
  grain-threads  `pipeline.batches(num_workers=0, num_threads=N)`: grain's thread pool in this process;
  grain-procs    `pipeline.batches(num_workers=N)`: N grain worker processes;
in modes decode (no cache), decode+fill (a cold AudioCache being filled: the old and in-process pipelines fill it
from their threads, grain's workers send decoded audio back) and cached (a full cache; grain then starts no workers).
'utt/s' counts the whole epoch including start-up (worker processes import grain and jax), 'steady' the batches after
the first. Each row records the 1-min load average before and after it, and the CPU other processes used while it ran
('other' cores); a row is LOADED when that exceeds --loaded_cores. The 1-min load average alone cannot flag rows: it
carries this benchmark's own previous rows for minutes.

`compare_pipelines` is importable (benchmarks/bench_scale.py puts the table next to step throughput).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, ".."))
sys.path.insert(0, _HERE)

import legacy_thread_pipeline  # noqa: E402
from jaxplastic.data import AudioCache, Split, Utterance, load_audio  # noqa: E402
from jaxplastic.data import pipeline  # noqa: E402

PIPELINES = ("thread", "grain-threads", "grain-procs")
MODES = ("decode", "decode+fill", "cached")


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


class _CpuWatch:
  """Wall time, and the CPU (in cores) that processes outside this one and its children used meanwhile."""

  def __enter__(self):
    import psutil  # pylint: disable=g-import-not-at-top  (installed with grain, via portpicker)

    self._psutil = psutil
    self.load_before = os.getloadavg()[0]
    self._busy, self._own = self._busy_now(), self._own_now()
    self._t0 = time.perf_counter()
    return self

  def _busy_now(self) -> float:
    times = self._psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)

  def _own_now(self) -> float:
    times = self._psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system

  def __exit__(self, *exc):
    self.seconds = time.perf_counter() - self._t0
    other = (self._busy_now() - self._busy) - (self._own_now() - self._own)
    self.other_cores = max(other, 0.0) / max(self.seconds, 1e-9)
    self.load_after = os.getloadavg()[0]


def _epoch(make_iter) -> tuple[int, float, float]:
  """(utterances, seconds to the first batch, seconds for the rest) of one epoch."""
  t0 = time.perf_counter()
  it = make_iter()
  count, first = 0, None
  for batch in it:
    count += int(batch["mask"].sum())
    if first is None:
      first = time.perf_counter() - t0
  total = time.perf_counter() - t0
  return count, first or total, total - (first or total)


def _make_iter(name: str, split: Split, parallelism: int, cache, common: dict):
  if name == "thread":
    return lambda: legacy_thread_pipeline.batches(split, num_threads=parallelism, cache=cache, **common)
  if name == "grain-threads":
    return lambda: pipeline.batches(split, num_threads=parallelism, cache=cache, **common)
  return lambda: pipeline.batches(split, num_workers=parallelism, cache=cache, **common)


def compare_pipelines(split: Split, *, batch_size: int = 32, num_samples: int = 64600,
                      parallelism: tuple[int, ...] = (1, 2), pipelines: tuple[str, ...] = PIPELINES,
                      modes: tuple[str, ...] = MODES, loaded_cores: float = 0.5) -> list[dict]:
  """Times one training epoch of `split` per (parallelism, pipeline, mode); returns one dict per row.

  Row keys: pipeline, parallelism (threads or worker processes), mode, utterances, utt_per_s (whole epoch),
  steady_utt_per_s (after the first batch), first_batch_s, seconds, load_before, load_after (1-min load average),
  other_cores (CPU other processes used meanwhile), loaded (other_cores > loaded_cores), note.
  """
  rows = []
  for par in parallelism:
    for name in pipelines:
      for mode in modes:
        cache = None if mode == "decode" else AudioCache()
        if mode == "cached":  # filled untimed, in protocol order, outside the pipelines
          for item in split.items:
            cache.put(item.path, load_audio(item.path))
        common = {"batch_size": batch_size, "num_samples": num_samples, "train": True, "seed": 0, "epoch": 1}
        with _CpuWatch() as watch:
          count, first, rest = _epoch(_make_iter(name, split, par, cache, common))
          # The workers' exit is not timed (the consumer does not wait for it), but is waited for inside the watch:
          # only reaped children count as this benchmark's CPU.
          pipeline.wait_for_closing()
        seconds = first + rest
        note = ""
        if name == "grain-procs" and mode == "cached":
          note = "every row cached: no workers started"
        elif name == "grain-procs" and mode == "decode+fill":
          note = "workers send decoded audio to the main-process cache"
        rows.append({
            "pipeline": name, "parallelism": par, "mode": mode, "utterances": count,
            "utt_per_s": count / seconds, "first_batch_s": first, "seconds": seconds,
            "steady_utt_per_s": (count - batch_size) / rest if rest > 0 and count > batch_size else float("nan"),
            "load_before": watch.load_before, "load_after": watch.load_after, "other_cores": watch.other_cores,
            "loaded": watch.other_cores > loaded_cores, "note": note})
  return rows


def format_rows(rows: list[dict]) -> str:
  """The rows as a fixed-width table."""
  lines = [f"{'pipeline':<14}{'par':>4} {'mode':<12}{'utt/s':>8}{'steady':>9}{'1st s':>7}  {'load 1-min':<13}"
           f"{'other':>6}  flag"]
  for r in rows:
    lines.append(f"{r['pipeline']:<14}{r['parallelism']:>4} {r['mode']:<12}{r['utt_per_s']:>8.1f}"
                 f"{r['steady_utt_per_s']:>9.1f}{r['first_batch_s']:>7.2f}  "
                 f"{r['load_before']:>5.2f}->{r['load_after']:<6.2f}{r['other_cores']:>6.2f}  "
                 f"{'LOADED' if r['loaded'] else ''}{'  ' + r['note'] if r['note'] else ''}")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_files", type=int, default=512)
  parser.add_argument("--seconds", type=float, default=4.0)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--num_samples", type=int, default=64600)
  parser.add_argument("--parallelism", default="1,2", help="comma-separated thread / worker-process counts")
  parser.add_argument("--loaded_cores", type=float, default=0.5,
                      help="flag a row LOADED when other processes used more CPU than this many cores")
  parser.add_argument("--dir", default=None, help="folder for the FLACs (default: a temp folder)")
  parser.add_argument("--json", default=None, help="also write the rows here")
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as tmp:
    folder = args.dir or tmp
    start = time.perf_counter()
    split = make_files(folder, args.num_files, args.seconds)
    print(f"files: {args.num_files} x {args.seconds:g} s 16 kHz FLAC in {folder} "
          f"(prepared in {time.perf_counter() - start:.1f} s), batch {args.batch_size}, "
          f"crop {args.num_samples} samples, {os.cpu_count()} CPUs")
    rows = compare_pipelines(split, batch_size=args.batch_size, num_samples=args.num_samples,
                             parallelism=tuple(int(x) for x in args.parallelism.split(",")),
                             loaded_cores=args.loaded_cores)
  print(format_rows(rows))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
