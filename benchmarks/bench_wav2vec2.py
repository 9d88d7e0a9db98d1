"""Wav2Vec2-base speed, ours (JAX, jitted) vs transformers (PyTorch), with identical weights.

Measures (1) scoring one 4 s clip, batch 1: real-time factor = compute seconds / 4 s of audio, and
(2) one training step (batch 2 x 4 s, AdamW, cross-entropy through the authors' head). LayerDrop and
SpecAugment are off on both sides (ours has no SpecAugment; LayerDrop would make torch skip random
layers); dropout is on. Calls alternate between the two so both see the same machine load.

Run:  python benchmarks/bench_wav2vec2.py [--dtype bfloat16] [--repeats 5]
Takes 3-4 minutes on 2 CPU cores (most of it the torch side and the ~45 s train-step compile).
"""
import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import transformers

from jaxplastic.hf_checkpoint import params_from_hf_tensors
from jaxplastic.models.wav2vec2 import Wav2Vec2Classifier, from_hf_config

SAMPLE_RATE = 16000
SECONDS = 4.0


def _time_pair(fn_a, fn_b, repeats):
  """Median wall times of `fn_a()` and `fn_b()`, calls interleaved (same machine load)."""
  fn_a()
  fn_b()
  times_a, times_b = [], []
  for _ in range(repeats):
    for fn, times in ((fn_a, times_a), (fn_b, times_b)):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
  return statistics.median(times_a), statistics.median(times_b)


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


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  torch.set_num_threads(2)
  torch.manual_seed(0)
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
  print(f"load average (1/5/15 min): {os.getloadavg()}")
  print(
      f"wav2vec2-base + head: {n_params / 1e6:.2f} M params, dtype={args.dtype}, "
      f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__} (2 threads)"
  )

  # ---- inference, batch 1 ----
  score = jax.jit(lambda p, a: model.apply({"params": p}, a, train=False))
  t0 = time.perf_counter()
  ours_logits = np.asarray(score(params, audio1))
  print(f"jax inference compile+first run: {time.perf_counter() - t0:.1f} s")
  torch_model.eval()
  with torch.no_grad():
    torch_logits = torch_model(torch.from_numpy(np.array(audio1))).numpy()
  print(f"logit max |ours - torch| = {np.abs(ours_logits - torch_logits).max():.2e}")
  torch_audio1 = torch.from_numpy(np.array(audio1))
  with torch.no_grad():
    t_ours, t_torch = _time_pair(lambda: score(params, audio1).block_until_ready(),
                                 lambda: torch_model(torch_audio1), args.repeats)
  print(f"inference 1 x {SECONDS:.0f} s: ours {t_ours * 1e3:.0f} ms (RTF {t_ours / SECONDS:.3f}), "
        f"torch {t_torch * 1e3:.0f} ms (RTF {t_torch / SECONDS:.3f}), "
        f"speed-up ours/torch {t_torch / t_ours:.2f}x")

  # ---- training step, batch 2 ----
  tx = optax.adamw(1e-4, weight_decay=0.01)
  opt_state = tx.init(params)

  def loss_fn(p, audio, labels, rng):
    logits = model.apply({"params": p}, audio, train=True, rngs={"dropout": rng})
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  @jax.jit
  def train_step(p, o, audio, labels, rng):
    loss, grads = jax.value_and_grad(loss_fn)(p, audio, labels, rng)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss

  state = {"p": params, "o": opt_state, "i": 0}

  def ours_step():
    state["i"] += 1
    state["p"], state["o"], loss = train_step(state["p"], state["o"], audio2, labels2,
                                              jax.random.PRNGKey(state["i"]))
    loss.block_until_ready()

  t0 = time.perf_counter()
  ours_step()
  print(f"jax train-step compile+first run: {time.perf_counter() - t0:.1f} s")
  torch_model.train()
  optimizer = torch.optim.AdamW(torch_model.parameters(), lr=1e-4, weight_decay=0.01)
  torch_audio = torch.from_numpy(np.array(audio2))
  torch_labels = torch.from_numpy(np.array(labels2, dtype=np.int64))

  def torch_step():
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(torch_model(torch_audio), torch_labels)
    loss.backward()
    optimizer.step()

  t_ours_train, t_torch_train = _time_pair(ours_step, torch_step, args.repeats)
  print(f"train step 2 x {SECONDS:.0f} s: ours {t_ours_train:.2f} s, torch {t_torch_train:.2f} s, "
        f"speed-up ours/torch {t_torch_train / t_ours_train:.2f}x")
  print(f"load average (1/5/15 min): {os.getloadavg()}")


if __name__ == "__main__":
  main()
