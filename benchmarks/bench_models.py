"""Train-step throughput of jaxplastic's ResNet-18 and GRNN against PyTorch equivalents.

At the authors' shapes (batch 32, 64,000-sample audio; ResNet log-Mel 64 x 224, GRNN linear
cepstrum 20 x 126) this times one Adam step (front-end + forward + backward + update) for:
  ours (jitted JAX, with benchmarks/_bench.py's XLA:CPU compiler options), PyTorch (same
  front-end, torch.stft, torch.set_num_threads(--threads)), and for the GRNN also the authors'
  style of recurrence (PyTorch, Python loop over time steps calling a GRUCell per layer).
JAX uses XLA's default threading (all visible cores). Implementations are timed round-robin (so
they share the background load), --steps timed steps after --warmup untimed ones; the table gives
median and best wall time, the median process CPU seconds per step, XLA's FLOPs of the step and
the achieved GFLOP/s of each side (same FLOP count, each side's median time), next to the
measured float32 matmul peak. A per-part breakdown (front-end, forward, forward+backward) says
what dominates a step. Rows are marked LOADED when the machine was not idle (see _bench.py): only
idle runs give comparable numbers.

  python benchmarks/bench_models.py                 # both models, ~4 minutes on 2 idle CPU cores
  python benchmarks/bench_models.py --models grnn --no-torch
  python benchmarks/bench_models.py --variants xla-defaults,xla-maxpool  # what each choice is worth
  python benchmarks/bench_models.py --models resnet --profile 30  # + XLA's top operations of ours
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxplastic.models import GRNN, ResNet18  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxplastic.models import resnet as resnet_lib  # noqa: E402  pylint: disable=g-import-not-at-top


def _xla_max_pool(x, window, strides, padding):
  return nn.max_pool(x, window, strides=strides, padding=padding)


# JAX rows beside "ours" (--variants), each undoing one of our speed choices so that an idle run
# measures what it is worth: name -> (row suffix, compiler options (None: ours), {(module,
# attribute): replacement} applied while the row runs, models it applies to).
VARIANTS = {
    "xla-defaults": ("XLA default options", {}, {}, ("resnet", "grnn")),
    "xla-maxpool": ("XLA max-pool gradient", None,
                    {(resnet_lib, "max_pool"): _xla_max_pool}, ("resnet",)),
    "features-outside": ("front-end outside grad", None, {}, ("resnet", "grnn")),
}


# ---------------------------------------------------------------------------------------------
# JAX side.


def jax_train_step_fn(model, lr: float, options: dict, features_outside: bool = False):
  """Returns (init_state(rng, audio), step(state, audio, labels), loss_fn) for an Adam step.

  The step is the shape of jaxplastic.train.train_step: the front-end runs inside the
  differentiated function (it has no parameters, so autodiff adds nothing for it). With
  features_outside, the step computes the features first and differentiates only
  `model.from_features` (a prototype of that change to train.py).
  """
  tx = optax.adam(lr)

  def init_state(rng, audio):
    variables = model.init(rng, audio, train=False)
    params = variables["params"]
    stats = variables.get("batch_stats", {})
    return params, stats, tx.init(params)

  def loss_fn(params, stats, audio, labels, from_features=False):
    kw = {"method": type(model).from_features} if from_features else {}
    if stats:
      out, updates = model.apply({"params": params, "batch_stats": stats}, audio, train=True,
                                 mutable=["batch_stats"], **kw)
      stats = updates["batch_stats"]
    else:
      out = model.apply({"params": params}, audio, train=True, **kw)
    logits = out[0] if from_features else out
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, stats

  @functools.partial(jax.jit, donate_argnums=0, compiler_options=options)
  def step(state, audio, labels):
    params, stats, opt_state = state
    if features_outside:
      features = model.apply({}, audio, method=type(model).frontend)
      (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          params, stats, features, labels, True)
    else:
      (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          params, stats, audio, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), stats, opt_state), loss

  return init_state, step, loss_fn


def jax_callables(model, audio: np.ndarray, labels: np.ndarray, lr: float, options: dict,
                  patches: dict | None = None, features_outside: bool = False
                  ) -> tuple[dict[str, Callable[[], object]], Callable[[], float | None]]:
  """Blocking callables for a JAX train step and its parts, and a function returning the step's
  XLA FLOPs. `patches` are applied around every call (so also while jit traces)."""
  init_state, step, loss_fn = jax_train_step_fn(model, lr, options, features_outside)
  audio, labels = jnp.asarray(audio), jnp.asarray(labels)
  holder = {"state": init_state(jax.random.PRNGKey(0), audio)}
  params, stats, _ = jax.tree_util.tree_map(jnp.copy, holder["state"])  # the step donates these

  def run_step():
    holder["state"], loss = step(holder["state"], audio, labels)
    loss.block_until_ready()

  jit = functools.partial(jax.jit, compiler_options=options)
  frontend = jit(model.frontend)
  forward = jit(lambda p, s, a, y: loss_fn(p, s, a, y)[0])
  fwd_bwd = jit(jax.grad(lambda p, s, a, y: loss_fn(p, s, a, y)[0]))
  fns = {
      "step": run_step,
      "frontend": lambda: frontend(audio).block_until_ready(),
      "forward": lambda: forward(params, stats, audio, labels).block_until_ready(),
      "fwd+bwd": lambda: jax.block_until_ready(fwd_bwd(params, stats, audio, labels)),
  }
  flops = lambda: _bench.xla_flops(step.lower(holder["state"], audio, labels).compile())
  fns["profile"] = lambda top: print(_bench.op_profile(
      fwd_bwd.lower(params, stats, audio, labels).compile(), (params, stats, audio, labels),
      top=top))
  if not patches:
    return fns, flops

  def wrap(fn):
    def run():
      with _bench.patched(patches):
        return fn()
    return run
  return {k: wrap(f) for k, f in fns.items()}, flops


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
          warmup: int) -> tuple[dict[str, dict[str, float]], str]:
  """Times every implementation's step (interleaved), then its parts; returns seconds and the
  LOADED label of this measurement."""
  watch = _bench.LoadWatch()
  start = time.perf_counter()
  for fns in impls.values():  # first call: compile (JAX) / allocator warm-up (torch)
    fns["step"]()
  print(f"  first calls: {time.perf_counter() - start:.1f} s")
  step = _bench.time_interleaved({n: f["step"] for n, f in impls.items()}, steps, warmup)
  rows = {n: {"step": r["wall"], "step_min": r["min"], "step_cpu": r["cpu"]}
          for n, r in step.items()}
  for part in ("frontend", "forward", "fwd+bwd"):
    with_part = {n: f[part] for n, f in impls.items() if part in f}
    times = _bench.time_interleaved(with_part, part_steps, 1) if part_steps else {}
    for n in rows:
      rows[n][part] = times[n]["wall"] if n in times else float("nan")
  label = watch.close()
  print("  " + watch.report().replace("\n", "\n  "))
  return rows, label


# ---------------------------------------------------------------------------------------------


def report(title: str, batch: int, rows: dict[str, dict[str, float]], flops: float | None,
           label: str) -> None:
  print(f"\n== {title}  (batch {batch}){'  [' + label + ']' if label else ''}")
  print("utt/s = batch / median step wall time; best = batch / fastest step; CPU s = median "
        "process CPU seconds per step; GFLOP/s = XLA's step FLOPs / median step; parts are "
        "median wall ms")
  if flops:
    print(f"step FLOPs (XLA cost analysis of ours): {flops / 1e9:.2f} GFLOP")
  print(f"{'implementation':52s} {'utt/s':>7s} {'best':>7s} {'step ms':>8s} {'CPU s':>6s} "
        f"{'GFLOP/s':>8s} {'front':>7s} {'fwd':>7s} {'fwd+bwd':>8s}")
  for name, r in rows.items():
    print(f"{name:52s} {batch / r['step']:7.1f} {batch / r['step_min']:7.1f} "
          f"{1e3 * r['step']:8.1f} {r['step_cpu']:6.2f} {_bench.gflops(flops, r['step']):>8s} "
          f"{1e3 * r['frontend']:7.1f} {1e3 * r['forward']:7.1f} {1e3 * r['fwd+bwd']:8.1f}"
          f"{'  ' + label if label else ''}")


def ratio(rows: dict[str, dict[str, float]], ours: str, other: str, label: str) -> str:
  a, b = rows[ours], rows[other]
  return (f"{b['step'] / a['step']:.2f}x (median), {b['step_min'] / a['step_min']:.2f}x (best), "
          f"{b['step_cpu'] / a['step_cpu']:.2f}x (CPU s){'  ' + label if label else ''}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="resnet,grnn")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--samples", type=int, default=64000)
  parser.add_argument("--steps", type=int, default=5, help="timed steps (median)")
  parser.add_argument("--part-steps", type=int, default=3, help="timed calls per part (median; "
                      "0 skips the parts)")
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  parser.add_argument("--unroll", type=int, default=None, help="GRNN scan unroll (default: "
                      "the model's)")
  parser.add_argument("--variants", default="", help=f"extra JAX rows: {','.join(VARIANTS)}")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument("--profile", type=int, default=0, metavar="N",
                      help="print the top N operations of ours' forward+backward (XLA profile)")
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
  _bench.header(args.threads if torch else None)
  options = _bench.compiler_options()
  print(f"ours: jax.jit(compiler_options={options})")
  watch = _bench.LoadWatch()
  peak = _bench.matmul_peak(torch_threads=args.threads if torch else None)
  print("float32 2048x2048 matmul peak: " + ", ".join(f"{k} {v:.1f} GFLOP/s"
                                                      for k, v in peak.items()))

  rng = np.random.default_rng(0)
  audio = rng.uniform(-0.3, 0.3, (args.batch, args.samples)).astype(np.float32)
  labels = rng.integers(0, 2, args.batch).astype(np.int32)
  models = args.models.split(",")
  variants = [v for v in args.variants.split(",") if v]
  for v in variants:
    if v not in VARIANTS:
      parser.error(f"unknown variant {v!r}; known: {sorted(VARIANTS)}")

  def jax_rows(model, name, lr, kind):
    impls, flops = {}, None
    impls[name], flops = jax_callables(model, audio, labels, lr, options)
    for v in variants:
      suffix, opts, patches, kinds = VARIANTS[v]
      if kind in kinds:
        fns = jax_callables(model, audio, labels, lr, options if opts is None else opts,
                            patches, features_outside=v == "features-outside")[0]
        impls[f"{name}, {suffix}"] = {"step": fns["step"]}  # parts: ours and PyTorch only
    if args.profile:
      print(f"\n{name}, forward + backward:")
      impls[name]["profile"](args.profile)
    impls[name].pop("profile")
    return impls, flops()

  if "resnet" in models:
    ours = "ours (JAX, jit)"
    impls, flops = jax_rows(ResNet18(), ours, 1e-3, "resnet")
    if torch:
      impls["PyTorch"] = torch_callables(ref.TorchResNet18(frontend=ref.TorchLogMel()), audio,
                                         labels, 1e-3)
    rows, label = bench(impls, args.steps, args.part_steps, args.warmup)
    report("ResNet-18, log-Mel 64 x 224, Adam lr 1e-3", args.batch, rows, flops, label)
    if torch:
      print("ratio ours / torch (throughput):", ratio(rows, ours, "PyTorch", label))

  if "grnn" in models:
    ours = "ours (JAX, lax.scan, jit)"
    grnn = GRNN() if args.unroll is None else GRNN(unroll=args.unroll)
    impls, flops = jax_rows(grnn, ours, 1e-4, "grnn")
    if torch:
      impls["PyTorch nn.GRU"] = torch_callables(
          ref.TorchGRNN(frontend=ref.TorchLinearCepstrum()), audio, labels, 1e-4)
      impls["PyTorch Python-loop GRUCell"] = torch_callables(
          ref.TorchLoopGRNN(frontend=ref.TorchLinearCepstrum()), audio, labels, 1e-4)
    rows, label = bench(impls, args.steps, args.part_steps, args.warmup)
    report("GRNN [64, 64, 32, 32], LC 20 x 126, Adam lr 1e-4", args.batch, rows, flops, label)
    if torch:
      print("ratio ours / torch nn.GRU (throughput):",
            ratio(rows, ours, "PyTorch nn.GRU", label))
      print("ratio scan / python-loop (throughput):",
            ratio(rows, ours, "PyTorch Python-loop GRUCell", label))
  watch.close()
  print("\nwhole run: " + watch.report())


if __name__ == "__main__":
  main()
