"""Train-step speed of ResNet-18, GRNN and Wav2Vec 2.0 base with JAX on a GPU.

The same steps as bench_models.py (Adam, batch 32 x 4 s, front-end inside the step) and
bench_wav2vec2.py (AdamW, batch 2 x 4 s, random weights: speed does not depend on them; also
--w2v-batch, 16 by default = configs/la_wav2vec.py), float32 parameters and inputs with XLA's
default GPU matmul precision. Prints per model: median and best step time, utterances/s, XLA's
step FLOPs and the achieved TFLOP/s. Exits with a message when JAX sees no GPU.

  python benchmarks/bench_gpu.py [--steps 20] [--models resnet,grnn,wav2vec2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402  pylint: disable=g-import-not-at-top
from bench_models import jax_train_step_fn  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxplastic.models import GRNN, ResNet18  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxplastic.models.wav2vec2 import (Wav2Vec2Classifier,  # noqa: E402  pylint: disable=g-import-not-at-top
                                        from_hf_config)


def w2v_step_fn(model):
  """(init_state(rng, audio), step(state, audio, labels)) for bench_wav2vec2.py's AdamW step."""
  tx = optax.adamw(1e-4, weight_decay=0.01)

  def init_state(rng, audio):
    params = model.init(rng, audio[:, :400], train=False)["params"]
    return params, tx.init(params), jnp.zeros((), jnp.uint32)

  def loss_fn(params, audio, labels, rng):
    logits = model.apply({"params": params}, audio, train=True, rngs={"dropout": rng})
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  @jax.jit
  def step(state, audio, labels):
    params, opt_state, i = state
    loss, grads = jax.value_and_grad(loss_fn)(params, audio, labels, jax.random.PRNGKey(i))
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state, i + 1), loss

  return init_state, step


def time_step(name, init_state, step, batch, samples, steps, warmup):
  rng = np.random.default_rng(0)
  audio = jnp.asarray(rng.uniform(-0.3, 0.3, (batch, samples)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 2, batch), jnp.int32)
  state = init_state(jax.random.PRNGKey(0), audio)
  start = time.perf_counter()
  compiled = step.lower(state, audio, labels).compile()
  flops = _bench.xla_flops(compiled)
  state, loss = step(state, audio, labels)
  loss.block_until_ready()
  first = time.perf_counter() - start
  for _ in range(warmup):
    state, loss = step(state, audio, labels)
  loss.block_until_ready()
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    state, loss = step(state, audio, labels)
    loss.block_until_ready()
    times.append(time.perf_counter() - t)
  med, best = statistics.median(times), min(times)
  tflops = f"{flops / med / 1e12:8.2f}" if flops else "       -"
  gflop = f"{flops / 1e9:9.1f}" if flops else "        -"
  print(f"{name:32s} {batch:5d} {1e3 * med:9.2f} {1e3 * best:9.2f} {batch / med:9.1f} {gflop} "
        f"{tflops} {first:8.1f}  loss {float(loss):.3f}", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="resnet,grnn,wav2vec2")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--w2v-batch", type=int, default=16, help="extra wav2vec2 batch size")
  parser.add_argument("--samples", type=int, default=64000)
  parser.add_argument("--allow-cpu", action="store_true", help="run anyway (to check the script)")
  args = parser.parse_args()
  gpus = [d for d in jax.devices() if d.platform == "gpu"] or (jax.devices() if args.allow_cpu
                                                                else [])
  if not gpus:
    print(f"No GPU: jax.devices() = {jax.devices()}. Nothing measured; run this on a machine "
          "where JAX sees a GPU (jax[cuda]).")
    sys.exit(1)
  _bench.header()
  print(f"device: {gpus[0].device_kind}; float32 params/inputs, default matmul precision "
        f"(jax_default_matmul_precision={jax.config.jax_default_matmul_precision})")
  print(f"{'model':32s} {'batch':>5s} {'med ms':>9s} {'best ms':>9s} {'utt/s':>9s} "
        f"{'GFLOP':>9s} {'TFLOP/s':>8s} {'first s':>8s}")
  samples = args.samples
  models = args.models.split(",")
  if "resnet" in models:
    init, step, _ = jax_train_step_fn(ResNet18(), 1e-3, {})
    time_step("ResNet-18 (Adam)", init, step, 32, samples, args.steps, args.warmup)
  if "grnn" in models:
    init, step, _ = jax_train_step_fn(GRNN(), 1e-4, {})
    time_step("GRNN (Adam)", init, step, 32, samples, args.steps, args.warmup)
  if "wav2vec2" in models:
    model = Wav2Vec2Classifier(**from_hf_config({}, layerdrop=0.0, mask_time_prob=0.0))
    init, step = w2v_step_fn(model)
    for batch in sorted({2, args.w2v_batch}):
      time_step("Wav2Vec 2.0 base (AdamW)", init, step, batch, samples, args.steps, args.warmup)


if __name__ == "__main__":
  main()
