"""Wav2Vec2-base speed, ours (JAX, jitted) vs transformers (PyTorch), with identical weights.

Measures (1) scoring one 4 s clip, batch 1: real-time factor = compute seconds / 4 s of audio, and
(2) one training step (batch 2 x 4 s, AdamW, cross-entropy through the authors' head). LayerDrop and
SpecAugment are off on both sides (LayerDrop would make torch skip random layers); dropout is on.
Calls alternate between the sides so both see the same machine load; each row gives the median
wall time, the median process CPU seconds, and for the train step XLA's FLOPs and both sides'
GFLOP/s next to the measured float32 matmul peak. Ours uses benchmarks/_bench.py's XLA:CPU
compiler options; JAX uses XLA's default threads, PyTorch torch.set_num_threads(--threads). Rows
are marked LOADED when the machine was not idle (see _bench.py).

Run:  python benchmarks/bench_wav2vec2.py [--dtype bfloat16] [--repeats 5] [--variants xla-posconv]
Takes 3-4 minutes on 2 idle CPU cores (most of it the torch side and the ~45 s train-step compile).
"""
import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxplastic.hf_checkpoint import params_from_hf_tensors  # noqa: E402
from jaxplastic.models import wav2vec2_layers  # noqa: E402
from jaxplastic.models.wav2vec2 import Wav2Vec2Classifier, from_hf_config  # noqa: E402

SAMPLE_RATE = 16000
SECONDS = 4.0


def _plain_grouped_conv(x, w, padding, groups):
  return wav2vec2_layers._grouped_conv(x, w, padding, groups)  # pylint: disable=protected-access


# Extra JAX train-step rows (--variants), each undoing one speed choice: name -> (row suffix,
# compiler options (None: ours), {(module, attribute): replacement} while the row runs).
VARIANTS = {
    "xla-defaults": ("XLA default options", {}, {}),
    "xla-posconv": ("XLA positional-conv gradient", None,
                    {(wav2vec2_layers, "grouped_conv1d"): _plain_grouped_conv}),
}


class TorchClassifier(torch.nn.Module):
  """HF Wav2Vec2Model + the authors' head, for the torch side of the comparison."""

  def __init__(self, backbone, head_params):
    super().__init__()
    self.backbone = backbone
    self.dense1 = torch.nn.Linear(768, 256)
    self.dense2 = torch.nn.Linear(256, 2)
    self.dropout = torch.nn.Dropout(0.1)
    with torch.no_grad():
      for layer, name in ((self.dense1, "dense1"), (self.dense2, "dense2")):
        layer.weight.copy_(torch.from_numpy(np.asarray(head_params[name]["kernel"]).T.copy()))
        layer.bias.copy_(torch.from_numpy(np.asarray(head_params[name]["bias"]).copy()))

  def forward(self, audio):
    pooled = self.backbone(audio).last_hidden_state.mean(dim=1)
    return self.dense2(self.dropout(torch.relu(self.dense1(pooled))))


def jax_train_step(model, params, audio, labels, options, patches):
  """A blocking callable running one AdamW step (state kept inside), and its XLA FLOPs."""
  tx = optax.adamw(1e-4, weight_decay=0.01)

  def loss_fn(p, audio, labels, rng):
    logits = model.apply({"params": p}, audio, train=True, rngs={"dropout": rng})
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  def train_step(p, o, audio, labels, rng):
    loss, grads = jax.value_and_grad(loss_fn)(p, audio, labels, rng)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss

  step = jax.jit(train_step, compiler_options=options)
  state = {"p": params, "o": tx.init(params), "i": 0}
  with _bench.patched(patches):
    compiled = step.lower(params, state["o"], audio, labels, jax.random.PRNGKey(0)).compile()
  flops = _bench.xla_flops(compiled)

  def run():
    state["i"] += 1
    state["p"], state["o"], loss = compiled(state["p"], state["o"], audio, labels,
                                            jax.random.PRNGKey(state["i"]))
    loss.block_until_ready()

  return run, flops


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  parser.add_argument("--variants", default="", help=f"extra JAX rows: {','.join(VARIANTS)}")
  args = parser.parse_args()
  variants = [v for v in args.variants.split(",") if v]
  for v in variants:
    if v not in VARIANTS:
      parser.error(f"unknown variant {v!r}; known: {sorted(VARIANTS)}")
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  _bench.header(args.threads)
  options = _bench.compiler_options()
  print(f"ours: jax.jit(compiler_options={options})")
  whole = _bench.LoadWatch()
  peak = _bench.matmul_peak(torch_threads=args.threads)
  print("float32 2048x2048 matmul peak: " + ", ".join(f"{k} {v:.1f} GFLOP/s"
                                                      for k, v in peak.items()))
  num_samples = int(SECONDS * SAMPLE_RATE)

  hf_config = transformers.Wav2Vec2Config(layerdrop=0.0, mask_time_prob=0.0)
  hf_model = transformers.Wav2Vec2Model(hf_config)
  fields = from_hf_config(hf_config.to_dict(), dtype=args.dtype)
  tensors = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
  model = Wav2Vec2Classifier(**fields)
  audio1 = jnp.asarray(np.random.RandomState(0).uniform(-0.5, 0.5, (1, num_samples)), jnp.float32)
  audio2 = jnp.asarray(np.random.RandomState(1).uniform(-0.5, 0.5, (2, num_samples)), jnp.float32)
  labels2 = jnp.array([0, 1])
  params = params_from_hf_tensors(fields, tensors)
  params["head"] = model.init(jax.random.PRNGKey(0), audio1[:, :400], train=False)["params"]["head"]
  torch_model = TorchClassifier(hf_model, params["head"])
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  print(f"wav2vec2-base + head: {n_params / 1e6:.2f} M params, dtype={args.dtype}")

  # ---- inference, batch 1 ----
  watch = _bench.LoadWatch()
  score = jax.jit(lambda p, a: model.apply({"params": p}, a, train=False),
                  compiler_options=options)
  ours_logits = np.asarray(score(params, audio1))
  torch_model.eval()
  torch_audio1 = torch.from_numpy(np.array(audio1))
  with torch.no_grad():
    torch_logits = torch_model(torch_audio1).numpy()
  print(f"logit max |ours - torch| = {np.abs(ours_logits - torch_logits).max():.2e}")
  with torch.no_grad():
    r = _bench.time_interleaved({"ours": lambda: score(params, audio1).block_until_ready(),
                                 "torch": lambda: torch_model(torch_audio1)}, args.repeats, 1)
  label = watch.close()
  print(watch.report())
  mark = f"  {label}" if label else ""
  for side in ("ours", "torch"):
    print(f"inference 1 x {SECONDS:.0f} s, {side:5s}: {r[side]['wall'] * 1e3:7.0f} ms "
          f"(RTF {r[side]['wall'] / SECONDS:.3f}), CPU {r[side]['cpu']:.2f} s{mark}")
  print(f"speed-up ours/torch (inference): {r['torch']['wall'] / r['ours']['wall']:.2f}x "
        f"(wall), {r['torch']['cpu'] / r['ours']['cpu']:.2f}x (CPU s){mark}")

  # ---- training step, batch 2 ----
  steps, flops = {}, None
  steps["ours"], flops = jax_train_step(model, params, audio2, labels2, options, {})
  for v in variants:
    suffix, opts, patches = VARIANTS[v]
    steps[f"ours, {suffix}"] = jax_train_step(model, params, audio2, labels2,
                                              options if opts is None else opts, patches)[0]
  torch_model.train()
  optimizer = torch.optim.AdamW(torch_model.parameters(), lr=1e-4, weight_decay=0.01)
  torch_audio = torch.from_numpy(np.array(audio2))
  torch_labels = torch.from_numpy(np.array(labels2, dtype=np.int64))

  def torch_step():
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(torch_model(torch_audio), torch_labels)
    loss.backward()
    optimizer.step()

  steps["torch"] = torch_step
  watch = _bench.LoadWatch()
  r = _bench.time_interleaved(steps, args.repeats, 1)
  label = watch.close()
  print(watch.report())
  mark = f"  {label}" if label else ""
  if flops:
    print(f"train-step FLOPs (XLA cost analysis of ours): {flops / 1e9:.1f} GFLOP")
  for name, t in r.items():
    print(f"train step 2 x {SECONDS:.0f} s, {name:38s}: {t['wall']:6.2f} s (best {t['min']:.2f}), "
          f"CPU {t['cpu']:6.2f} s, {_bench.gflops(flops, t['wall'])} GFLOP/s{mark}")
  print(f"speed-up ours/torch (train step): {r['torch']['wall'] / r['ours']['wall']:.2f}x (wall), "
        f"{r['torch']['cpu'] / r['ours']['cpu']:.2f}x (CPU s){mark}")
  whole.close()
  print("whole run: " + whole.report())


if __name__ == "__main__":
  main()
