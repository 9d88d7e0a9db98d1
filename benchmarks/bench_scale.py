"""Scale-out on one machine: train-step throughput on 1, 2 and 4 simulated devices, and the grain input pipeline vs
the thread pipeline it replaced, in utterances/s, side by side in one run.

Usage:
  python benchmarks/bench_scale.py [--size paper|tiny] [--models resnet18,grnn,wav2vec2] [--devices 1,2,4]
                                   [--batch_size 32] [--steps 10] [--fsdp 1] [--num_files 256] [--json out.json]

Steps: each device count runs in its own subprocess (XLA_FLAGS=--xla_force_host_platform_device_count=N fixes the
count at JAX start-up) and times the library's own train step (`train.jit_steps` with the `sharding.Layout` of
`config.mesh` data=-1, fsdp=--fsdp; Adam; the front end inside the step) on the SAME global batch, so utt/s across
rows is the speed-up of splitting one batch over N devices. Simulated CPU devices share this machine's cores: on a
machine with fewer cores than devices the rows show the cost of the collectives and of smaller per-device programs,
not a speed-up. Widths: `paper` = configs/la_resnet.py, la_grnn.py and la_wav2vec_small.py (random weights: speed
does not depend on them); `tiny` = the tests' widths (checks that the script runs).

Pipeline: `bench_pipeline.compare_pipelines` (thread / grain-threads / grain-procs with 1 and 2 threads or worker
processes; decode, decode+fill, cached) on --num_files generated 4 s FLACs, at the same batch size.

Every row records the 1-min load average and the CPU other processes used while it ran ('other' cores, LOADED above
--loaded_cores); only rows from an idle machine are comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
sys.path.insert(0, _REPO)
sys.path.insert(0, _HERE)

MODELS = ("resnet18", "grnn", "wav2vec2")
# The tests' widths (tests/test_sharding.py): seconds to compile, for checking the script.
TINY = {
    "resnet18": (dict(name="resnet18", stage_widths=(4, 8, 8, 8), stem_width=4, num_frames=16, n_mels=16), 4096),
    "grnn": (dict(name="grnn", hidden_sizes=(8, 8, 4, 4), num_classes=2, n_fft=1024, hop_length=512,
                  num_coeffs=20, unroll=1), 4096),
    "wav2vec2": (dict(name="wav2vec2", hidden_size=16, num_layers=2, num_heads=(2, 2), head_dim=(8, 8),
                      ffn_dims=(32, 32), conv_dims=(8, 8, 8), conv_kernels=(10, 8, 8), conv_strides=(5, 4, 4),
                      num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, head_hidden=8, layerdrop=0.0,
                      freeze_feature_encoder=False), 1600),
}
PAPER_CONFIGS = {"resnet18": "la_resnet", "grnn": "la_grnn", "wav2vec2": "la_wav2vec_small"}


def _fields(model: str, size: str) -> tuple[dict, int]:
  """(model fields, samples per utterance)."""
  if size == "tiny":
    return TINY[model]
  import importlib  # pylint: disable=g-import-not-at-top
  from jaxplastic import experiment  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{PAPER_CONFIGS[model]}").get_config()
  return experiment.model_fields(config.model), int(config.data.num_samples)


def time_steps(model: str, size: str, batch_size: int, steps: int, fsdp: int) -> dict:
  """In a process with the simulated devices already set: the library's train step on every device, timed."""
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  import _bench  # pylint: disable=g-import-not-at-top
  from jaxplastic import experiment, models, reporting, sharding, surgery  # pylint: disable=g-import-not-at-top
  from jaxplastic import train as train_lib  # pylint: disable=g-import-not-at-top

  fields, num_samples = _fields(model, size)
  layout = sharding.Layout(sharding.make_mesh(-1, fsdp))
  layout.check_batch_size(batch_size, "--batch_size")
  module = experiment.build(fields)
  variables = experiment.init_variables(module, jax.random.PRNGKey(0), num_samples, layout)
  tx = train_lib.make_optimizer(ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-4, weight_decay=0.0,
                                                               grad_clip_norm=0.0)))
  part = surgery.Partition.everything()
  model_state = {k: v for k, v in variables.items() if k != "params"}
  state = sharding.apply(lambda p, m: train_lib.create_state(*part.split(p), m, tx), layout, variables["params"],
                         model_state)
  spec = models.spec_of(fields)
  train_fn, _ = train_lib.jit_steps(model=module, tx=tx, partition=part, plan=None, loss_name="ce",
                                    class_weights=None, base_rng=jax.random.PRNGKey(1),
                                    xla_cpu_options=spec.xla_cpu_options, layout=layout, state=state)
  batch = sharding.global_batch(reporting.synthetic_batch(batch_size, num_samples, np.random.default_rng(0)), layout)
  t0 = time.perf_counter()
  state, metrics = train_fn(state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  times = []
  busy0, own0, wall0 = _bench.busy_seconds(), _bench.own_seconds(), time.perf_counter()
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = train_fn(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  wall = time.perf_counter() - wall0
  other = None if busy0 is None else (_bench.busy_seconds() - busy0 - (_bench.own_seconds() - own0)) / wall
  median = float(np.median(times))
  return {"model": model, "size": size, "devices": layout.num_devices, "mesh": dict(layout.mesh.shape),
          "batch_size": batch_size, "num_samples": num_samples, "step_s": median, "best_step_s": float(min(times)),
          "utt_per_s": batch_size / median, "first_call_s": compile_s, "steps": steps,
          "load": os.getloadavg()[0], "other_cores": other}


def _child(args) -> None:
  rows = [time_steps(m, args.size, args.batch_size, args.steps, args.fsdp) for m in args.models.split(",")]
  print("ROWS " + json.dumps(rows))


def step_rows(args) -> list[dict]:
  """One subprocess per device count; returns every (model, devices) row."""
  rows = []
  for n in (int(x) for x in args.devices.split(",")):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
               JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", f"--size={args.size}", f"--models={args.models}",
           f"--batch_size={args.batch_size}", f"--steps={args.steps}", f"--fsdp={args.fsdp}"]
    load_before = os.getloadavg()[0]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
      raise RuntimeError(f"{n} devices failed:\n{proc.stderr[-4000:]}")
    line = [l for l in proc.stdout.splitlines() if l.startswith("ROWS ")][-1]
    for row in json.loads(line[5:]):
      row["load_before"] = load_before
      rows.append(row)
  return rows


def format_steps(rows: list[dict], loaded_cores: float) -> str:
  one = {r["model"]: r["utt_per_s"] for r in rows if r["devices"] == 1}
  lines = [f"{'model':<10}{'devices':>8} {'mesh':<16}{'batch':>6}{'step s':>9}{'utt/s':>9}{'vs 1':>7}"
           f"{'1st call s':>11}  {'load 1-min':<12}{'other':>6}  flag"]
  for r in rows:
    speed = r["utt_per_s"] / one[r["model"]] if r["model"] in one else float("nan")
    mesh = f"data={r['mesh']['data']} fsdp={r['mesh']['fsdp']}"
    flag = "LOADED" if r["other_cores"] is not None and r["other_cores"] > loaded_cores else ""
    lines.append(f"{r['model']:<10}{r['devices']:>8} {mesh:<16}{r['batch_size']:>6}{r['step_s']:>9.4f}"
                 f"{r['utt_per_s']:>9.1f}{speed:>7.2f}{r['first_call_s']:>11.1f}  "
                 f"{r['load_before']:>5.2f}->{r['load']:<5.2f}{r['other_cores'] or float('nan'):>6.2f}  {flag}")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", choices=("paper", "tiny"), default="paper")
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--devices", default="1,2,4", help="comma-separated simulated device counts")
  parser.add_argument("--fsdp", type=int, default=1, help="config.mesh.fsdp (1: parameters replicated)")
  parser.add_argument("--batch_size", type=int, default=32, help="the GLOBAL batch, the same on every row")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--num_files", type=int, default=256, help="FLACs for the pipeline rows (0: no pipeline rows)")
  parser.add_argument("--loaded_cores", type=float, default=0.5)
  parser.add_argument("--json", default=None, help="also write every row here")
  parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._child:  # pylint: disable=protected-access
    _child(args)
    return

  print(f"{os.cpu_count()} CPUs; step rows: {args.size} widths, global batch {args.batch_size}, "
        f"median of {args.steps} steps after the first call")
  steps = step_rows(args)
  print(format_steps(steps, args.loaded_cores))
  pipe = []
  if args.num_files:
    import bench_pipeline  # pylint: disable=g-import-not-at-top
    _, num_samples = _fields("resnet18", args.size)
    with tempfile.TemporaryDirectory() as tmp:
      split = bench_pipeline.make_files(tmp, args.num_files, 4.0)
      pipe = bench_pipeline.compare_pipelines(split, batch_size=args.batch_size, num_samples=num_samples,
                                              parallelism=(1, 2), loaded_cores=args.loaded_cores)
    print(f"\ninput pipeline: {args.num_files} x 4 s FLAC, batch {args.batch_size}, one training epoch per row")
    print(bench_pipeline.format_rows(pipe))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"steps": steps, "pipeline": pipe}, f, indent=1)


if __name__ == "__main__":
  main()
