"""Train-step throughput of jaxplastic's ResNet-18 and GRNN against PyTorch equivalents.

At the authors' shapes (batch 32, 64,000-sample audio; ResNet log-Mel 64 x 224, GRNN linear
cepstrum 20 x 126) this times one Adam step (front-end + forward + backward + update) for:
  ours (jitted JAX), PyTorch (same front-end, torch.stft), and for the GRNN also the authors'
  style of recurrence (PyTorch, Python loop over time steps calling a GRUCell per layer).
Implementations are timed round-robin (so they share the background load), --steps timed steps
after --warmup untimed ones; the table gives median and best wall time and the median process
CPU seconds per step. A per-part breakdown (front-end, forward, forward+backward) says what
dominates a step.

  python benchmarks/bench_models.py                 # both models, ~3 minutes on 2 CPU cores
  python benchmarks/bench_models.py --models grnn --no-torch
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxplastic.models import GRNN, ResNet18  # noqa: E402  pylint: disable=g-import-not-at-top


def timed(fn: Callable[[], object]) -> tuple[float, float]:
  """(wall, process CPU) seconds of one blocking call."""
  wall, cpu = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - wall, time.process_time() - cpu


def time_interleaved(fns: dict[str, Callable[[], object]], steps: int,
                     warmup: int) -> dict[str, dict[str, float]]:
  """Times the callables round-robin so that they see the same background load.

  Returns per name the median and minimum wall seconds and the median process-CPU seconds of
  a call (CPU seconds count all threads; on a shared machine they move less than wall time).
  """
  for _ in range(warmup):
    for fn in fns.values():
      fn()
  samples = {name: [] for name in fns}
  for _ in range(steps):
    for name, fn in fns.items():
      samples[name].append(timed(fn))
  return {name: {"wall": statistics.median(w for w, _ in v), "min": min(w for w, _ in v),
                 "cpu": statistics.median(c for _, c in v)} for name, v in samples.items()}


# ---------------------------------------------------------------------------------------------
# JAX side.


def jax_train_step_fn(model, lr: float):
  """Returns (init_state(rng, audio), step(state, audio, labels)) for an Adam train step."""
  tx = optax.adam(lr)

  def init_state(rng, audio):
    variables = model.init(rng, audio, train=False)
    params = variables["params"]
    stats = variables.get("batch_stats", {})
    return params, stats, tx.init(params)

  def loss_fn(params, stats, audio, labels):
    if stats:
      logits, updates = model.apply({"params": params, "batch_stats": stats}, audio, train=True,
                                    mutable=["batch_stats"])
      stats = updates["batch_stats"]
    else:
      logits = model.apply({"params": params}, audio, train=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, stats

  @functools.partial(jax.jit, donate_argnums=0)
  def step(state, audio, labels):
    params, stats, opt_state = state
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, audio, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), stats, opt_state), loss

  return init_state, step, loss_fn


def jax_callables(model, audio: np.ndarray, labels: np.ndarray,
                  lr: float) -> dict[str, Callable[[], object]]:
  """Blocking callables for a JAX train step and its parts (front-end, forward, fwd+bwd)."""
  init_state, step, loss_fn = jax_train_step_fn(model, lr)
  audio, labels = jnp.asarray(audio), jnp.asarray(labels)
  holder = {"state": init_state(jax.random.PRNGKey(0), audio)}
  params, stats, _ = jax.tree_util.tree_map(jnp.copy, holder["state"])  # the step donates these

  def run_step():
    holder["state"], loss = step(holder["state"], audio, labels)
    loss.block_until_ready()

  frontend = jax.jit(model.frontend)
  forward = jax.jit(lambda p, s, a, y: loss_fn(p, s, a, y)[0])
  fwd_bwd = jax.jit(jax.grad(lambda p, s, a, y: loss_fn(p, s, a, y)[0]))
  return {
      "step": run_step,
      "frontend": lambda: frontend(audio).block_until_ready(),
      "forward": lambda: forward(params, stats, audio, labels).block_until_ready(),
      "fwd+bwd": lambda: jax.block_until_ready(fwd_bwd(params, stats, audio, labels)),
  }


# ---------------------------------------------------------------------------------------------
# PyTorch side.


def torch_callables(net, audio: np.ndarray, labels: np.ndarray,
                    lr: float) -> dict[str, Callable[[], object]]:
  """Callables for a torch train step (Adam) and its parts; `net` takes raw audio."""
  import torch  # pylint: disable=g-import-not-at-top
  net.train()
  opt = torch.optim.Adam(net.parameters(), lr=lr)
  x, y = torch.tensor(audio), torch.tensor(labels, dtype=torch.long)
  loss_fn = torch.nn.CrossEntropyLoss()

  def run_step():
    opt.zero_grad(set_to_none=True)
    loss_fn(net(x), y).backward()
    opt.step()

  def fwd_bwd():
    net.zero_grad(set_to_none=True)
    loss_fn(net(x), y).backward()

  def no_grad(fn):
    def run():
      with torch.no_grad():
        fn()
    return run

  return {"step": run_step, "frontend": no_grad(lambda: net.frontend(x)),
          "forward": no_grad(lambda: loss_fn(net(x), y)), "fwd+bwd": fwd_bwd}


def bench(impls: dict[str, dict[str, Callable[[], object]]], steps: int, part_steps: int,
          warmup: int) -> dict[str, dict[str, float]]:
  """Times every implementation's step (interleaved), then its parts; returns seconds."""
  start = time.perf_counter()
  for fns in impls.values():  # first call: compile (JAX) / allocator warm-up (torch)
    fns["step"]()
  print(f"  first calls: {time.perf_counter() - start:.1f} s")
  step = time_interleaved({n: f["step"] for n, f in impls.items()}, steps, warmup)
  rows = {n: {"step": r["wall"], "step_min": r["min"], "step_cpu": r["cpu"]}
          for n, r in step.items()}
  for part in ("frontend", "forward", "fwd+bwd"):
    times = time_interleaved({n: f[part] for n, f in impls.items()}, part_steps, 1)
    for n, r in times.items():
      rows[n][part] = r["wall"]
  return rows


# ---------------------------------------------------------------------------------------------


def report(title: str, batch: int, rows: dict[str, dict[str, float]]) -> None:
  print(f"\n== {title}  (batch {batch})")
  print("utt/s = batch / median step wall time; best = batch / fastest step; CPU s = median "
        "process CPU seconds per step; parts are median wall ms")
  print(f"{'implementation':30s} {'utt/s':>7s} {'best':>7s} {'step ms':>8s} {'CPU s':>6s} "
        f"{'front':>7s} {'fwd':>7s} {'fwd+bwd':>8s}")
  for name, r in rows.items():
    print(f"{name:30s} {batch / r['step']:7.1f} {batch / r['step_min']:7.1f} "
          f"{1e3 * r['step']:8.1f} {r['step_cpu']:6.2f} {1e3 * r['frontend']:7.1f} "
          f"{1e3 * r['forward']:7.1f} {1e3 * r['fwd+bwd']:8.1f}")


def ratio(rows: dict[str, dict[str, float]], ours: str, other: str) -> str:
  a, b = rows[ours], rows[other]
  return (f"{b['step'] / a['step']:.2f}x (median), {b['step_min'] / a['step_min']:.2f}x (best), "
          f"{b['step_cpu'] / a['step_cpu']:.2f}x (CPU s)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="resnet,grnn")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--samples", type=int, default=64000)
  parser.add_argument("--steps", type=int, default=5, help="timed steps (median)")
  parser.add_argument("--part-steps", type=int, default=3, help="timed calls per part (median)")
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  parser.add_argument("--unroll", type=int, default=1, help="GRNN scan unroll")
  parser.add_argument("--no-torch", action="store_true")
  args = parser.parse_args()

  torch = ref = None
  if not args.no_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top
      import torch_reference as ref  # pylint: disable=g-import-not-at-top
      torch.set_num_threads(args.threads)
      torch.manual_seed(0)
    except ImportError as e:
      print(f"PyTorch side skipped: {e}")
      torch = None
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} x{jax.device_count()}; "
        f"torch {torch.__version__ if torch else '-'} threads {args.threads}; "
        f"{os.cpu_count()} CPUs")

  rng = np.random.default_rng(0)
  audio = rng.uniform(-0.3, 0.3, (args.batch, args.samples)).astype(np.float32)
  labels = rng.integers(0, 2, args.batch).astype(np.int32)
  models = args.models.split(",")

  if "resnet" in models:
    impls = {"ours (JAX, jit)": jax_callables(ResNet18(), audio, labels, 1e-3)}
    if torch:
      impls["PyTorch"] = torch_callables(ref.TorchResNet18(frontend=ref.TorchLogMel()), audio,
                                         labels, 1e-3)
    rows = bench(impls, args.steps, args.part_steps, args.warmup)
    report("ResNet-18, log-Mel 64 x 224, Adam lr 1e-3", args.batch, rows)
    if torch:
      print("ratio ours / torch (throughput):", ratio(rows, "ours (JAX, jit)", "PyTorch"))

  if "grnn" in models:
    ours = "ours (JAX, lax.scan, jit)"
    impls = {ours: jax_callables(GRNN(unroll=args.unroll), audio, labels, 1e-4)}
    if torch:
      impls["PyTorch nn.GRU"] = torch_callables(
          ref.TorchGRNN(frontend=ref.TorchLinearCepstrum()), audio, labels, 1e-4)
      impls["PyTorch Python-loop GRUCell"] = torch_callables(
          ref.TorchLoopGRNN(frontend=ref.TorchLinearCepstrum()), audio, labels, 1e-4)
    rows = bench(impls, args.steps, args.part_steps, args.warmup)
    report("GRNN [64, 64, 32, 32], LC 20 x 126, Adam lr 1e-4", args.batch, rows)
    if torch:
      print("ratio ours / torch nn.GRU (throughput):", ratio(rows, ours, "PyTorch nn.GRU"))
      print("ratio scan / python-loop (throughput):",
            ratio(rows, ours, "PyTorch Python-loop GRUCell"))
  print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
  main()
