"""Scoring throughput: files/s and real-time factor of `Detector.score_files` at real model widths.

Exports randomly initialised ResNet-18 (64/128/256/512) and GRNN (64/64/32/32) models (speed does
not depend on the weights), writes `--files` generated FLAC files of `--seconds` each, and times
scoring them end to end (decode + resample check + forward) in 4 s mode and full-length mode, after
a warm-up that compiles every batch shape used. Real-time factor (RTF) = wall seconds / audio
seconds (lower is faster; 0.01 = 100x real time). Prints the command and the load average before
and after; rows timed while other processes kept more than _bench.IDLE_LOAD cores busy say LOADED.

  python benchmarks/bench_scoring.py [--files 64] [--seconds 6] [--batch-size 32]
                                     [--models resnet18,grnn]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np
import soundfile as sf

from jaxplastic import checkpoints
from jaxplastic import evaluation
from jaxplastic import experiment
from jaxplastic import models
from jaxplastic import scoring

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402  pylint: disable=g-import-not-at-top

NUM_SAMPLES = 64600
RATE = 16000
REAL = {
    "resnet18": {
        "name": "resnet18"
    },
    "grnn": {
        "name": "grnn"
    }
}  # every width at its default (paper) value


def _write_files(folder: str, count: int, seconds: float) -> list[str]:
  rng = np.random.default_rng(0)
  n = int(seconds * RATE)
  t = np.arange(n) / RATE
  paths = []
  for i in range(count):
    x = 0.2 * np.sin(2 * np.pi * (120 + 80 * rng.random()) * t) + 0.05 * rng.standard_normal(n)
    path = os.path.join(folder, f"utt_{i:04d}.flac")
    sf.write(path, x.astype(np.float32), RATE, subtype="PCM_16")
    paths.append(path)
  return paths


def _export(folder: str, name: str) -> str:
  fields = REAL[name]
  model = models.build_model(fields)
  variables = experiment.init_variables(model, jax.random.PRNGKey(0), NUM_SAMPLES)
  path = os.path.join(folder, name)
  checkpoints.export_model(path,
                           model_fields=fields,
                           variables=variables,
                           info={
                               "threshold": 0.0,
                               "sample_rate": RATE,
                               "num_samples": NUM_SAMPLES,
                               "stage": "bench"
                           })
  return path


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--files", type=int, default=64)
  p.add_argument("--seconds", type=float, default=6.0)
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--models", default="resnet18,grnn")
  p.add_argument("--repeats",
                 type=int,
                 default=2,
                 help="timed passes per row (the best is reported)")
  args = p.parse_args()
  _bench.header()
  watch = _bench.LoadWatch()

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    paths = _write_files(tmp, args.files, args.seconds)
    audio_seconds = args.files * args.seconds
    for name in args.models.split(","):
      det = scoring.Detector.load(_export(tmp, name), batch_size=args.batch_size)
      params = sum(
          int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(det.variables["params"]))
      for full in (False, True):
        t0 = time.perf_counter()
        det.score_files(paths, full_length=full,
                        progress=False)  # compiles every batch shape this run uses
        first = time.perf_counter() - t0
        best, row_watch = float("inf"), _bench.LoadWatch()
        for _ in range(args.repeats):
          t0 = time.perf_counter()
          results = det.score_files(paths, full_length=full, progress=False)
          best = min(best, time.perf_counter() - t0)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        windows = sum(r.num_windows for r in results)
        rows.append({
            "model": name,
            "params": params,
            "mode": "full length" if full else "4 s",
            "files": args.files,
            "windows": windows,
            "first pass s": first,
            "wall s": best,
            "files/s": args.files / best,
            "windows/s": windows / best,
            "x real time": audio_seconds / best,
            "RTF": best / audio_seconds,
            "compiled shapes": det.compiled_shapes(),
            "load": row_watch.close() or "idle",
        })
        print(f"{name} {'full' if full else '4s'}: {best:.2f} s", flush=True)
  print(f"\n{args.files} files x {args.seconds:g} s, batch {args.batch_size}, "
        f"{jax.devices()[0].platform}, {os.cpu_count()} CPU cores")
  print(evaluation.format_table(rows, list(rows[0].keys())))
  watch.close()
  print(watch.report())


if __name__ == "__main__":
  main()
