"""Tests for the ResNet-18 and GRNN models: shapes, stable parameter paths, closed-form parameter
counts, the GRU scan against a step loop and against torch.nn.GRU, ResNet against PyTorch, and
BatchNorm train/eval behaviour."""
import functools
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxplastic import frontends
from jaxplastic.models import GRNN, ResNet18, build_model
from jaxplastic.models.resnet import BasicBlock

# Tiny front-end: 4,000 samples -> 1 + 4000 // 128 = 32 STFT frames.
TINY_AUDIO = dict(n_fft=256, hop_length=128)
TINY_RESNET = dict(stage_widths=(4, 8, 8, 16), stem_width=4, n_mels=16, num_frames=32,
                   **TINY_AUDIO)
TINY_GRNN = dict(hidden_sizes=(6, 5, 4, 3), num_coeffs=7, **TINY_AUDIO)


def _audio(batch=3, samples=4000, seed=0):
  return np.random.default_rng(seed).uniform(-0.5, 0.5, (batch, samples)).astype(np.float32)


def _torch_reference():
  path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "torch_reference.py"
  spec = importlib.util.spec_from_file_location("torch_reference", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _shapes(tree):
  return {jax.tree_util.keystr(k): v.shape
          for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def _randomize(tree, seed=1, scale=0.3):
  """Replaces every leaf by random values (so zero biases / unit scales test nothing away)."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_unflatten(
      treedef, [jnp.asarray(rng.normal(0, scale, x.shape), jnp.float32) for x in leaves])


# ---------------------------------------------------------------------------------------------
# Closed-form parameter counts.


def resnet_param_count(stage_widths, blocks_per_stage=(2, 2, 2, 2), stem_width=64,
                       block_widths=None, num_classes=2, in_channels=1):
  """Trainable parameters of ResNet18 (the 'params' collection; BN statistics excluded).

  stem: 7x7 conv without bias, in_channels -> s (49 * in_channels * s), BN scale+bias (2s).
  block with input c_in, inner width m, output c (BasicBlock, convs without bias):
    conv1 3x3 c_in -> m: 9 c_in m;  bn1: 2m;  conv2 3x3 m -> c: 9 m c;  bn2: 2c;
    strided blocks (first block of stages 2..) add a 1x1 projection c_in -> c and its BN:
    c_in c + 2c.  c_in is the previous stage width for a stage's first block, else c.
  head: Dense c_last -> num_classes with bias: c_last * num_classes + num_classes.
  """
  if block_widths is None:
    block_widths = [w for w, n in zip(stage_widths, blocks_per_stage) for _ in range(n)]
  inner = iter(block_widths)
  total = 49 * in_channels * stem_width + 2 * stem_width
  c_in = stem_width
  for i, (c, n) in enumerate(zip(stage_widths, blocks_per_stage)):
    for j in range(n):
      m = next(inner)
      total += 9 * c_in * m + 2 * m + 9 * m * c + 2 * c
      if i > 0 and j == 0:
        total += c_in * c + 2 * c
      c_in = c
  return total + c_in * num_classes + num_classes


def grnn_param_count(hidden_sizes, input_size=20, num_classes=2):
  """Trainable parameters of GRNN.

  GRU layer with input d and H units: three input gates (kernel d x H + bias H) and three
  hidden gates (kernel H x H + bias H, PyTorch's b_hr, b_hz, b_hn): 3 (d H + H + H H + H)
  = 3 H (d + H + 2). Layer k reads d = hidden_sizes[k - 1] (input_size for the first).
  head: H_last * num_classes + num_classes.
  """
  total, d = 0, input_size
  for h in hidden_sizes:
    total += 3 * h * (d + h + 2)
    d = h
  return total + d * num_classes + num_classes


def _count(params):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


def test_param_count_formula_matches_known_totals():
  # torchvision resnet18 has 11,689,512 parameters with 3 input channels and 1000 classes.
  assert resnet_param_count((64, 128, 256, 512), in_channels=3, num_classes=1000) == 11_689_512
  # GRNN at the authors' widths, worked by hand: 16512 + 24960 + 9408 + 6336 + 66.
  assert grnn_param_count((64, 64, 32, 32)) == 57_282


@pytest.mark.parametrize("fields", [
    {},
    {"stage_widths": (64, 256, 512, 512), "block_widths": (64, 64, 128, 256, 512, 256, 512, 512),
     "stem_width": 32},
])
def test_resnet_param_count_at_authors_shapes(fields):
  model = ResNet18(**fields)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0),
                             jnp.zeros((2, 64000), jnp.float32))
  expected = resnet_param_count(
      fields.get("stage_widths", (64, 128, 256, 512)), stem_width=fields.get("stem_width", 64),
      block_widths=fields.get("block_widths"))
  assert _count(variables["params"]) == expected
  if not fields:
    assert expected == 11_171_266


@pytest.mark.parametrize("hidden_sizes", [(64, 64, 32, 32), (64, 128, 32, 32)])
def test_grnn_param_count_at_authors_shapes(hidden_sizes):
  variables = jax.eval_shape(functools.partial(GRNN(hidden_sizes=hidden_sizes).init, train=False),
                             jax.random.PRNGKey(0), jnp.zeros((2, 64000), jnp.float32))
  assert set(variables) == {"params"}
  assert _count(variables["params"]) == grnn_param_count(hidden_sizes)


# ---------------------------------------------------------------------------------------------
# Shapes and parameter paths.


def test_output_shapes(rng):
  audio = jnp.asarray(_audio())
  resnet = ResNet18(**TINY_RESNET)
  variables = resnet.init(rng, audio, train=False)
  logits, pooled = resnet.apply(variables, audio, train=False, return_embedding=True)
  assert logits.shape == (3, 2) and logits.dtype == jnp.float32
  assert pooled.shape == (3, 16)
  _, _, fmap = resnet.apply(variables, resnet.frontend(audio), train=False,
                            method=ResNet18.from_features)
  assert fmap.shape == (3, 1, 1, 16)  # 16x32 -> stem /4 -> stages /8.

  grnn = GRNN(**TINY_GRNN, num_classes=3)
  params = grnn.init(rng, audio, train=True)
  logits, final = grnn.apply(params, audio, train=True, return_embedding=True)
  assert logits.shape == (3, 3) and final.shape == (3, 3)


def _abstract_init(model, x, method):
  return jax.eval_shape(functools.partial(model.init, train=False, method=method),
                        jax.random.PRNGKey(0), x)


def test_resnet_param_paths_stable_across_widths():
  x = jnp.zeros((2, 16, 32, 1))
  small = _abstract_init(ResNet18(**TINY_RESNET), x, ResNet18.from_features)
  wide = _abstract_init(ResNet18(**{**TINY_RESNET, "stage_widths": (8, 16, 24, 32),
                                    "stem_width": 6,
                                    "block_widths": (3, 9, 16, 5, 24, 30, 32, 1)}),
                        x, ResNet18.from_features)
  for col in ("params", "batch_stats"):
    a, b = _shapes(small[col]), _shapes(wide[col])
    assert set(a) == set(b)
    assert any(a[k] != b[k] for k in a)
  assert "['stage2']['block1']['shortcut_conv']['kernel']" in _shapes(small["params"])
  assert "['stem']['conv']['kernel']" in _shapes(small["params"])
  assert _shapes(wide["params"])["['stage2']['block1']['conv1']['kernel']"] == (3, 3, 8, 16)


def test_grnn_param_paths_stable_across_widths():
  x = jnp.zeros((2, 10, 7))
  small = _abstract_init(GRNN(**TINY_GRNN), x, GRNN.from_features)
  wide = _abstract_init(GRNN(**{**TINY_GRNN, "hidden_sizes": (6, 12, 4, 3)}), x,
                        GRNN.from_features)
  a, b = _shapes(small), _shapes(wide)
  assert set(a) == set(b)
  assert a["['params']['gru2']['hidden_n']['kernel']"] == (5, 5)
  assert b["['params']['gru2']['hidden_n']['kernel']"] == (12, 12)
  assert b["['params']['gru3']['input_z']['kernel']"] == (12, 4)
  assert b["['params']['gru2']['hidden_r']['bias']"] == (12,)


def test_resnet_block_widths_validated():
  with pytest.raises(ValueError, match="block_widths has 3 entries"):
    ResNet18(block_widths=(1, 2, 3)).inner_widths()


def test_widened_unstrided_block_keeps_old_channels(rng):
  """Identity shortcut zero-pads: a widened unstrided block embeds the old one exactly."""
  h = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 6, 4)), jnp.float32)
  small, grown = BasicBlock(4, 4, stride=1), BasicBlock(6, 7, stride=1)
  vs = small.init(rng, h, train=False)
  vs = {"params": _randomize(vs["params"]), "batch_stats": vs["batch_stats"]}
  vg = grown.init(rng, h, train=False)
  # Old values in the leading slice of every tensor, zeros elsewhere (new units are silent).
  embed = lambda new, old: jnp.zeros_like(new).at[tuple(slice(0, n) for n in old.shape)].set(old)
  vg = jax.tree_util.tree_map(embed, vg, vs)
  ys = small.apply(vs, h, train=False)
  yg = grown.apply(vg, h, train=False)
  assert yg.shape == (2, 5, 6, 7)
  np.testing.assert_allclose(yg[..., :4], ys, atol=1e-6)
  np.testing.assert_allclose(yg[..., 4:], 0.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# GRNN numerics.


def _numpy_gru_layer(x, p):
  """Plain step loop of PyTorch's GRU equations, float64."""
  g = {k: (np.asarray(v["kernel"], np.float64), np.asarray(v["bias"], np.float64))
       for k, v in p.items()}
  sig = lambda a: 1.0 / (1.0 + np.exp(-a))
  h = np.zeros((x.shape[0], g["hidden_r"][0].shape[0]))
  out = []
  for t in range(x.shape[1]):
    xt = x[:, t]
    lin = lambda side, gate, v: v @ g[f"{side}_{gate}"][0] + g[f"{side}_{gate}"][1]
    r = sig(lin("input", "r", xt) + lin("hidden", "r", h))
    z = sig(lin("input", "z", xt) + lin("hidden", "z", h))
    n = np.tanh(lin("input", "n", xt) + r * lin("hidden", "n", h))
    h = (1.0 - z) * n + z * h
    out.append(h)
  return np.stack(out, axis=1)


@pytest.mark.parametrize("unroll", [1, 4])
def test_grnn_scan_matches_step_loop(rng, unroll):
  feats = np.random.default_rng(0).normal(size=(3, 11, 7)).astype(np.float32)
  model = GRNN(**TINY_GRNN, unroll=unroll)
  params = _randomize(model.init(rng, feats, train=False, method=GRNN.from_features))
  logits, final = model.apply(params, feats, train=False, method=GRNN.from_features)
  x = feats.astype(np.float64)
  for k in range(4):
    x = _numpy_gru_layer(x, params["params"][f"gru{k + 1}"])
  head = params["params"]["head"]
  expected = x[:, -1] @ np.asarray(head["kernel"], np.float64) + np.asarray(head["bias"])
  np.testing.assert_allclose(final, x[:, -1], atol=1e-5)
  np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_grnn_matches_torch_gru():
  torch = pytest.importorskip("torch")
  ref = _torch_reference()
  audio = _audio()
  model = GRNN(**TINY_GRNN)
  params = _randomize(model.init(jax.random.PRNGKey(0), audio, train=False))
  feats = np.asarray(model.apply(params, audio, method=GRNN.frontend))
  ours = np.asarray(model.apply(params, audio, train=False))
  for cls in (ref.TorchGRNN, ref.TorchLoopGRNN):
    net = ref.load_grnn_from_flax(cls(2, TINY_GRNN["hidden_sizes"], 7), params["params"])
    with torch.no_grad():
      theirs = net(torch.tensor(feats)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
  # The torch.stft front-end used in the benchmark computes the same features.
  lc = ref.TorchLinearCepstrum(**TINY_AUDIO, num_coeffs=7)
  with torch.no_grad():
    np.testing.assert_allclose(lc(torch.tensor(audio)).numpy(), feats, atol=2e-3, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# ResNet numerics and BatchNorm.


def _tiny_resnet_and_torch(rng, feats, **fields):
  torch = pytest.importorskip("torch")
  ref = _torch_reference()
  cfg = {**TINY_RESNET, **fields}
  model = ResNet18(**cfg)
  variables = model.init(rng, feats, train=False, method=ResNet18.from_features)
  variables = dict(variables)
  variables["params"] = _randomize(variables["params"], seed=2, scale=0.4)
  rs = np.random.default_rng(3)
  variables["batch_stats"] = jax.tree_util.tree_map(
      lambda s: jnp.asarray(rs.uniform(0.5, 1.5, s.shape), jnp.float32), variables["batch_stats"])
  net = ref.TorchResNet18(2, cfg["stage_widths"], cfg.get("block_widths"), (2, 2, 2, 2),
                          cfg["stem_width"])
  return torch, ref, model, variables, ref.load_resnet_from_flax(net, variables)


def test_resnet_matches_torch_eval(rng):
  feats = np.random.default_rng(0).normal(size=(2, 16, 32, 1)).astype(np.float32)
  torch, _, model, variables, net = _tiny_resnet_and_torch(
      rng, feats, block_widths=(3, 4, 5, 8, 6, 8, 7, 16))
  logits, _, _ = model.apply(variables, feats, train=False, method=ResNet18.from_features)
  net.eval()
  with torch.no_grad():
    theirs = net(torch.tensor(feats).permute(0, 3, 1, 2)).numpy()
  np.testing.assert_allclose(logits, theirs, atol=1e-4)


def test_resnet_matches_torch_from_audio(rng):
  audio = _audio(batch=2)
  mel = np.asarray(frontends.log_mel(audio, n_mels=16, num_frames=32, **TINY_AUDIO))[..., None]
  torch, ref, model, variables, net = _tiny_resnet_and_torch(rng, mel)
  net.frontend = ref.TorchLogMel(n_mels=16, num_frames=32, **TINY_AUDIO)
  net.eval()
  with torch.no_grad():
    theirs = net(torch.tensor(audio)).numpy()
  np.testing.assert_allclose(model.apply(variables, audio, train=False), theirs, atol=1e-3)


def test_batchnorm_train_vs_eval(rng):
  feats = np.random.default_rng(0).normal(size=(4, 16, 32, 1)).astype(np.float32)
  torch, _, model, variables, net = _tiny_resnet_and_torch(rng, feats)
  apply = lambda x, train: model.apply(variables, x, train=train, method=ResNet18.from_features,
                                       mutable=["batch_stats"] if train else False)

  # Train mode: batch statistics (matches torch train mode), and the running mean moves by
  # momentum 0.1 towards the batch mean exactly as PyTorch's.
  (logits, _, _), updates = apply(feats, True)
  net.train()
  with torch.no_grad():
    theirs = net(torch.tensor(feats).permute(0, 3, 1, 2)).numpy()
  np.testing.assert_allclose(logits, theirs, atol=1e-4)
  np.testing.assert_allclose(updates["batch_stats"]["stem"]["bn"]["mean"],
                             net.stem[1].running_mean.numpy(), atol=1e-5)
  np.testing.assert_allclose(updates["batch_stats"]["stage4"]["block2"]["bn2"]["mean"],
                             net.stages[3][1].bn2.running_mean.numpy(), atol=1e-5)
  changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)),
                                   updates["batch_stats"], variables["batch_stats"])
  assert all(jax.tree_util.tree_leaves(changed))

  # Train mode couples the batch: changing one example changes the others' logits.
  other = feats.copy()
  other[0] *= 3.0
  assert not np.allclose(apply(other, True)[0][0][1:], logits[1:], atol=1e-4)
  # Eval mode uses the running statistics: examples are independent and nothing is updated.
  eval_logits = apply(feats, False)[0]
  assert not np.allclose(eval_logits, logits, atol=1e-3)
  np.testing.assert_allclose(apply(other, False)[0][1:], eval_logits[1:], atol=1e-6)


def test_bfloat16_compute_close_to_float32(rng):
  audio = jnp.asarray(_audio())
  variables = ResNet18(**TINY_RESNET).init(rng, audio, train=False)
  f32 = ResNet18(**TINY_RESNET).apply(variables, audio, train=False)
  bf16 = ResNet18(**TINY_RESNET, dtype=jnp.bfloat16).apply(variables, audio, train=False)
  assert bf16.dtype == jnp.float32
  np.testing.assert_allclose(bf16, f32, atol=0.1 * float(jnp.max(jnp.abs(f32))) + 0.05)


# ---------------------------------------------------------------------------------------------
# Factory.


def test_build_model_passes_fields_and_rejects_typos():
  cfg = ml_collections.ConfigDict({"name": "resnet18", "stage_widths": [8, 16, 16, 32],
                                   "dtype": "bfloat16"})
  model = build_model(cfg)
  assert isinstance(model, ResNet18)
  assert model.stage_widths == (8, 16, 16, 32) and model.dtype == jnp.bfloat16
  grnn = build_model({"name": "grnn", "hidden_sizes": [4, 4, 2, 2]})
  assert isinstance(grnn, GRNN) and grnn.hidden_sizes == (4, 4, 2, 2)
  hash(grnn)
  with pytest.raises(TypeError, match="hiden_sizes"):
    build_model({"name": "grnn", "hiden_sizes": (4, 4, 2, 2)})
  with pytest.raises(KeyError, match="unknown model name"):
    build_model({"name": "resnet34"})
