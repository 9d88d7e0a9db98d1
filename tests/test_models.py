"""Tests for the ResNet-18 and GRNN models: shapes, stable parameter paths, closed-form parameter
counts, the GRU scan against a step loop and against torch.nn.GRU, ResNet against PyTorch, and
BatchNorm train/eval behaviour."""
import functools
import importlib.util
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxplastic import frontends
from jaxplastic import surgery
from jaxplastic.models import GRNN, ResNet18, build_model
from jaxplastic.models import grnn as grnn_lib
from jaxplastic.models.grnn import GRULayer
from jaxplastic.models.resnet import BasicBlock, max_pool

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
                       block_widths=None, num_classes=2, in_channels=1, branch_widths=None):
  """Trainable parameters of ResNet18 (the 'params' collection; BN statistics excluded).

  stem: 7x7 conv without bias, in_channels -> s (49 * in_channels * s), BN scale+bias (2s).
  block with input c_in, inner width m, output c (BasicBlock, convs without bias):
    conv1 3x3 c_in -> m: 9 c_in m;  bn1: 2m;  conv2 3x3 m -> c: 9 m c;  bn2: 2c;
    strided blocks (first block of stages 2..) add a 1x1 projection c_in -> c and its BN:
    c_in c + 2c.  c_in is the previous stage's output width for a stage's first block, else c.
  branch of width b beside a stage with input c_in: a projected block c_in -> b -> b,
    9 c_in b + 2b + 9 b b + 2b + c_in b + 2b; the stage's output width becomes c + b.
  head: Dense c_last -> num_classes with bias: c_last * num_classes + num_classes.
  """
  if block_widths is None:
    block_widths = [w for w, n in zip(stage_widths, blocks_per_stage) for _ in range(n)]
  branch_widths = branch_widths or (0,) * len(stage_widths)
  inner = iter(block_widths)
  total = 49 * in_channels * stem_width + 2 * stem_width
  c_in = stem_width
  for i, (c, n, b) in enumerate(zip(stage_widths, blocks_per_stage, branch_widths)):
    if b:
      total += 9 * c_in * b + 9 * b * b + c_in * b + 6 * b
    for j in range(n):
      m = next(inner)
      total += 9 * c_in * m + 2 * m + 9 * m * c + 2 * c
      if i > 0 and j == 0:
        total += c_in * c + 2 * c
      c_in = c
    c_in = c + b
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
    {"branch_widths": (0, 128, 256, 0)},
    {"branch_widths": (8, 0, 16, 24), "stage_widths": (64, 256, 512, 512)},
])
def test_resnet_param_count_at_authors_shapes(fields):
  model = ResNet18(**fields)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0),
                             jnp.zeros((2, 64000), jnp.float32))
  expected = resnet_param_count(
      fields.get("stage_widths", (64, 128, 256, 512)), stem_width=fields.get("stem_width", 64),
      block_widths=fields.get("block_widths"), branch_widths=fields.get("branch_widths"))
  assert _count(variables["params"]) == expected
  if not fields:
    assert expected == 11_171_266
  if fields == {"branch_widths": (0, 128, 256, 0)}:
    assert expected == 14_286_530


def _resnet_shapes(**fields):
  return surgery.abstract_variables(ResNet18(**fields), (2, 64000))


def test_resnet_authors_branches_are_added_and_next_stages_grow_their_inputs():
  """The authors' dropin: parallel blocks beside stages 2 and 3 (64 -> 128 and 256 -> 256, both
  stride 2), concatenated after the stage outputs; the plan adds exactly the branches and grows
  exactly the input-channel axis of stage 3/4's first block (conv1, shortcut)."""
  baseline, branched = _resnet_shapes(), _resnet_shapes(branch_widths=(0, 128, 256, 0))
  plan = surgery.make_plan(baseline, branched)
  params = {p: s for p, s in plan.big.items() if p.startswith("params/")}
  branch_count = lambda i: sum(int(np.prod(s)) for p, s in params.items()  # noqa: E731
                               if p.startswith(f"params/branch{i}/"))
  assert branch_count(2) == 230_144 and branch_count(3) == 1_246_720
  assert params["params/branch2/conv1/kernel"] == (3, 3, 64, 128)
  assert params["params/branch2/shortcut_conv/kernel"] == (1, 1, 64, 128)
  assert params["params/branch3/conv1/kernel"] == (3, 3, 256, 256)
  assert set(plan.added) == {p for p in plan.big if p.split("/")[1] in ("branch2", "branch3")}
  assert {p.split("/")[0] for p in plan.added} == {"params", "batch_stats"}
  expected_grown = {f"params/stage{i}/block1/{conv}/kernel" for i in (3, 4)
                    for conv in ("conv1", "shortcut_conv")}
  assert set(plan.grown) == expected_grown
  assert all(axes == (2,) for axes in plan.grown.values())  # HWIO: the input-channel axis
  grown = sum(int(np.prod(plan.big[p])) - int(np.prod(plan.small[p])) for p in plan.grown)
  assert grown == 1_638_400
  assert surgery.count(branched["params"]) == 14_286_530 == (
      11_171_266 + branch_count(2) + branch_count(3) + grown)
  # Widening stays the generic alternative: stage widths grow in place, nothing is added.
  widened = surgery.make_plan(baseline, _resnet_shapes(stage_widths=(64, 256, 512, 512)))
  assert not widened.added and "params/stage2/block1/conv1/kernel" in widened.grown


def test_resnet_branches_keep_the_original_channels_leading(rng):
  """Growing a trained baseline into the branched model with the new input slices zeroed keeps
  its logits exactly: only possible if the branch channels come after the originals."""
  feats = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 32, 1)), jnp.float32)
  small = ResNet18(**TINY_RESNET)
  big = ResNet18(**TINY_RESNET, branch_widths=(2, 3, 4, 0))
  init = lambda m, seed: surgery._to_dict(m.init(  # noqa: E731
      jax.random.PRNGKey(seed), feats, train=False, method=ResNet18.from_features))
  v_small = init(small, 0)
  v_small["params"] = _randomize(v_small["params"], seed=2, scale=0.4)
  fresh = init(big, 1)
  plan = surgery.make_plan(v_small, fresh)
  apply = lambda m, v: m.apply(v, feats, train=False, method=ResNet18.from_features)[0]  # noqa
  y_small = apply(small, v_small)
  preserved = apply(big, surgery.grow(v_small, fresh, plan, init="function_preserving"))
  np.testing.assert_allclose(preserved, y_small, atol=1e-5)
  # The authors' random new slices read the branches, so the function changes.
  assert np.abs(apply(big, surgery.grow(v_small, fresh, plan)) - y_small).max() > 1e-3


@pytest.mark.parametrize("weight_init", ["torchvision", "pytorch"])
def test_resnet_weight_init(rng, weight_init):
  model = ResNet18(**{**TINY_RESNET, "stage_widths": (8, 16, 32, 64)}, weight_init=weight_init)
  params = model.init(rng, jnp.zeros((1, 16, 32, 1)), train=False,
                      method=ResNet18.from_features)["params"]
  kernel = np.asarray(params["stage4"]["block1"]["conv1"]["kernel"])  # 3x3, 32 -> 64
  bias = np.asarray(params["head"]["bias"])
  if weight_init == "torchvision":  # kaiming_normal_(fan_out, relu): std sqrt(2 / (9 * 64))
    assert abs(kernel.std() / np.sqrt(2.0 / (9 * 64)) - 1.0) < 0.05
    assert np.abs(kernel).max() > 2.5 * kernel.std()  # normal tails
    np.testing.assert_array_equal(bias, 0.0)
  else:  # nn.Conv2d default: U(+-1/sqrt(9 * 32)), std bound / sqrt(3); nn.Linear bias likewise
    bound = 1.0 / np.sqrt(9 * 32)
    assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.99 * bound
    assert abs(kernel.std() / (bound / np.sqrt(3.0)) - 1.0) < 0.05
    assert np.all(np.abs(bias) <= 1.0 / np.sqrt(64)) and np.all(bias != 0.0)
  with pytest.raises(ValueError, match="weight_init"):
    ResNet18(weight_init="xavier").inner_widths()
  with pytest.raises(ValueError, match="branch_widths"):
    ResNet18(branch_widths=(0, 128, 256)).inner_widths()


def test_resnet_mel_fields_select_the_filterbank():
  audio = _audio(batch=2)
  htk = ResNet18(**TINY_RESNET, mel_htk=True, mel_norm=None)
  ours = np.asarray(htk.apply({}, jnp.asarray(audio), method=ResNet18.frontend))
  ref = np.asarray(frontends.log_mel(audio, n_mels=16, num_frames=32, htk=True, mel_norm=None,
                                     **TINY_AUDIO))
  np.testing.assert_array_equal(ours[..., 0], ref)
  slaney = ResNet18(**TINY_RESNET).apply({}, jnp.asarray(audio), method=ResNet18.frontend)
  assert np.abs(np.asarray(slaney) - ours).max() > 0.1


def test_grnn_features_field_selects_the_frontend():
  audio = jnp.asarray(_audio(batch=2))
  lc = GRNN(**TINY_GRNN).apply({}, audio, method=GRNN.frontend)
  np.testing.assert_array_equal(np.asarray(lc), np.asarray(frontends.linear_cepstrum(
      audio, num_coeffs=7, **TINY_AUDIO)))
  model = GRNN(**TINY_GRNN, features="lfcc", win_length=48, num_filters=9)
  ours = np.asarray(model.apply({}, audio, method=GRNN.frontend))
  ref = np.asarray(frontends.lfcc(audio, num_filters=9, num_coeffs=7, win_length=48, **TINY_AUDIO))
  assert ours.shape[-1] == 3 * 7
  np.testing.assert_array_equal(ours, ref)
  # The first GRU layer reads 3 * num_coeffs inputs.
  variables = model.init(jax.random.PRNGKey(0), audio, train=False)
  assert variables["params"]["gru1"]["input_r"]["kernel"].shape == (21, 6)
  # deltas=False: the static coefficients alone, and the first layer reads num_coeffs inputs.
  static = GRNN(**TINY_GRNN, features="lfcc", win_length=48, num_filters=9, deltas=False)
  np.testing.assert_array_equal(np.asarray(static.apply({}, audio, method=GRNN.frontend)), ref[..., :7])
  variables = static.init(jax.random.PRNGKey(0), audio, train=False)
  assert variables["params"]["gru1"]["input_r"]["kernel"].shape == (7, 6)
  with pytest.raises(ValueError, match="features"):
    GRNN(**TINY_GRNN, features="mfcc").apply({}, audio, method=GRNN.frontend)


def test_grnn_pooling_reads_the_final_or_the_mean_state():
  """pooling='last' feeds the head the top layer's final state, 'mean' its states averaged over time; the
  parameters are the same, so one set of variables serves both."""
  audio = jnp.asarray(_audio(batch=2))
  last = GRNN(**TINY_GRNN)
  variables = last.init(jax.random.PRNGKey(0), audio, train=False)
  feats = last.apply({}, audio, method=GRNN.frontend)
  x = jnp.swapaxes(feats, 0, 1)
  for k, layer in enumerate(("gru1", "gru2", "gru3", "gru4")):
    p = variables["params"][layer]
    cat = lambda side, i: jnp.concatenate([p[f"{side}_{g}"]["kernel" if i == 0 else "bias"] for g in "rzn"], -1)
    x = grnn_lib.gru_scan(x, cat("input", 0), cat("input", 1), cat("hidden", 0), cat("hidden", 1), cell="pytorch")
  head = variables["params"]["head"]
  for pooling, state in (("last", x[-1]), ("mean", x.mean(axis=0))):
    logits, pooled = GRNN(**TINY_GRNN, pooling=pooling).apply(variables, audio, train=False, return_embedding=True)
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(state), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(state @ head["kernel"] + head["bias"]), rtol=1e-5,
                               atol=1e-6)
  assert np.abs(np.asarray(x[-1] - x.mean(axis=0))).max() > 1e-3  # the two differ on this input
  with pytest.raises(ValueError, match="pooling"):
    GRNN(**TINY_GRNN, pooling="max").apply(variables, audio, train=False)


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


MAX_POOL = dict(window=(3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_matches_xla_and_torch_including_ties(ties):
  """Forward and gradient equal nn.max_pool's (XLA select_and_scatter) and torch's MaxPool2d;
  with ties (integer-valued inputs) each window's gradient goes to its first maximum."""
  torch = pytest.importorskip("torch")
  rs = np.random.default_rng(0)
  x = rs.normal(0, 1.5, (2, 9, 12, 3)).astype(np.float32)  # odd H: the last window is cut
  if ties:
    x = np.round(x)
  g = rs.normal(size=(2, 5, 6, 3)).astype(np.float32)

  @jax.jit
  def both(x, g):
    ours = jax.vjp(lambda v: max_pool(v, **MAX_POOL), x)
    xla = jax.vjp(lambda v: nn.max_pool(v, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))), x)
    return ours[0], xla[0], ours[1](g)[0], xla[1](g)[0]

  y, y_xla, dx, dx_xla = both(x, g)
  np.testing.assert_array_equal(y, y_xla)
  np.testing.assert_allclose(dx, dx_xla, atol=1e-6)
  xt = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
  torch.nn.functional.max_pool2d(xt, 3, 2, 1).backward(torch.tensor(g).permute(0, 3, 1, 2))
  np.testing.assert_allclose(dx, xt.grad.permute(0, 2, 3, 1).numpy(), atol=1e-6)
  # Every window routes its whole gradient to exactly one input.
  np.testing.assert_allclose(float(jnp.sum(dx)), float(np.sum(g)), rtol=1e-5)


def test_max_pool_tie_goes_to_the_first_maximum_in_row_major_order():
  """A constant 4 x 4 image: all taps of every window tie (padding is -inf), so output (i, j)'s
  gradient lands on its window's first real tap, input (i, j)... and nowhere else."""
  g = jnp.arange(1.0, 5.0).reshape(1, 2, 2, 1)
  dx = jax.jit(lambda x, g: jax.vjp(lambda v: max_pool(v, **MAX_POOL), x)[1](g)[0])(
      jnp.zeros((1, 4, 4, 1)), g)
  expected = np.zeros((1, 4, 4, 1), np.float32)
  expected[0, :2, :2, 0] = [[1.0, 2.0], [3.0, 4.0]]
  np.testing.assert_array_equal(dx, expected)


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


def _numpy_gru_layer(x, p, cell="pytorch"):
  """Plain step loop of PyTorch's or the authors' GRU equations, float64."""
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
    if cell == "pytorch":
      n = np.tanh(lin("input", "n", xt) + r * lin("hidden", "n", h))
      h = (1.0 - z) * n + z * h
    else:  # reset before the hidden matrix; z gates the new state
      n = np.tanh(lin("input", "n", xt) + lin("hidden", "n", r * h))
      h = (1.0 - z) * h + z * n
    out.append(h)
  return np.stack(out, axis=1)


@pytest.mark.parametrize("unroll, cell", [(1, "pytorch"), (4, "pytorch"), (1, "authors"),
                                          (4, "authors")])
def test_grnn_scan_matches_step_loop(rng, unroll, cell):
  feats = np.random.default_rng(0).normal(size=(3, 11, 7)).astype(np.float32)
  model = GRNN(**TINY_GRNN, unroll=unroll, cell=cell)
  params = _randomize(model.init(rng, feats, train=False, method=GRNN.from_features))
  logits, final = model.apply(params, feats, train=False, method=GRNN.from_features)
  x = feats.astype(np.float64)
  for k in range(4):
    x = _numpy_gru_layer(x, params["params"][f"gru{k + 1}"], cell)
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
  # The authors' cell against its nn.Linear-per-gate torch loop; it is a different function.
  authors = GRNN(**TINY_GRNN, cell="authors")
  ours_authors = np.asarray(authors.apply(params, audio, train=False))
  net = ref.load_grnn_from_flax(ref.TorchLoopGRNN(2, TINY_GRNN["hidden_sizes"], 7, cell="authors"),
                                params["params"])
  with torch.no_grad():
    np.testing.assert_allclose(ours_authors, net(torch.tensor(feats)).numpy(), atol=1e-5)
  assert np.abs(ours_authors - ours).max() > 1e-3
  # The torch.stft front-end used in the benchmark computes the same features.
  lc = ref.TorchLinearCepstrum(**TINY_AUDIO, num_coeffs=7)
  with torch.no_grad():
    np.testing.assert_allclose(lc(torch.tensor(audio)).numpy(), feats, atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("cell", ["pytorch", "authors"])
def test_gru_old_units_never_read_new_ones_when_recurrent_block_is_zero(cell):
  """With the [new rows, old columns] block of every SURGERY_RECURRENT kernel at zero, old units'
  states do not depend on anything about the new units; with the block nonzero they do."""
  old, new, fan_in = 5, 3, 4
  layer = GRULayer(fan_in, old + new, cell=cell)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(9, 2, fan_in)), jnp.float32)
  params = surgery.flatten(_randomize(layer.init(jax.random.PRNGKey(0), x)["params"], scale=0.6))
  # The regexes name exactly the three hidden kernels of each GRNN layer.
  grnn_paths = surgery.flatten(jax.eval_shape(functools.partial(
      GRNN(**TINY_GRNN).init, train=False, method=GRNN.from_features), jax.random.PRNGKey(0),
      jnp.zeros((2, 10, 7))))
  recurrent = surgery.match_patterns(grnn_paths, GRNN.SURGERY_RECURRENT, "recurrent")
  assert recurrent == {f"params/gru{k}/hidden_{g}/kernel" for k in range(1, 5) for g in "rzn"}

  def perturb(p, seed):
    """New values for every entry that belongs to a new unit, except the isolation block."""
    rs, out = np.random.default_rng(seed), {}
    for path, v in p.items():
      v = np.array(v)
      noise = rs.normal(0, 0.6, v.shape).astype(np.float32)
      region = np.zeros(v.shape, bool)
      region[..., old:] = True  # new output units: every gate's new columns and biases
      if path.startswith("hidden_") and path.endswith("kernel"):
        region[old:, :old] = False  # the isolation block stays as it is
      out[path] = np.where(region, noise, v)
    return out

  def states(p):
    return np.asarray(layer.apply({"params": surgery.unflatten(p)}, x))

  isolated = {k: (np.asarray(v) * (1 - np.pad(np.ones((new, old)), ((old, 0), (0, new))))
                  if k.startswith("hidden_") and k.endswith("kernel") else np.asarray(v))
              for k, v in params.items()}
  assert all(np.all(isolated[f"hidden_{g}/kernel"][old:, :old] == 0) for g in "rzn")
  base = states(isolated)
  np.testing.assert_array_equal(states(perturb(isolated, 11))[..., :old], base[..., :old])
  assert np.abs(states(perturb(isolated, 11))[..., old:] - base[..., old:]).max() > 1e-2
  # Without isolation, old units read the new ones.
  assert np.abs(states(perturb(params, 11))[..., :old] - states(params)[..., :old]).max() > 1e-3


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
                          cfg["stem_width"], branch_widths=cfg.get("branch_widths"))
  return torch, ref, model, variables, ref.load_resnet_from_flax(net, variables)


@pytest.mark.parametrize("branch_widths", [None, (2, 3, 4, 5)])
def test_resnet_matches_torch_eval(rng, branch_widths):
  """Also with a parallel branch beside every stage: stride, projection and concat order."""
  feats = np.random.default_rng(0).normal(size=(2, 16, 32, 1)).astype(np.float32)
  extra = {"branch_widths": branch_widths} if branch_widths else {}
  torch, _, model, variables, net = _tiny_resnet_and_torch(
      rng, feats, block_widths=(3, 4, 5, 8, 6, 8, 7, 16), **extra)
  logits, pooled, _ = model.apply(variables, feats, train=False, method=ResNet18.from_features)
  assert pooled.shape == (2, 16 + (branch_widths or (0,))[-1])
  net.eval()
  with torch.no_grad():
    theirs = net(torch.tensor(feats).permute(0, 3, 1, 2)).numpy()
  np.testing.assert_allclose(logits, theirs, atol=1e-4)


@pytest.mark.parametrize("mel", [{}, {"mel_htk": True, "mel_norm": None}])
def test_resnet_matches_torch_from_audio(rng, mel):
  audio = _audio(batch=2)
  htk, norm = mel.get("mel_htk", False), mel.get("mel_norm", "slaney")
  feats = np.asarray(frontends.log_mel(audio, n_mels=16, num_frames=32, htk=htk, mel_norm=norm,
                                       **TINY_AUDIO))[..., None]
  torch, ref, model, variables, net = _tiny_resnet_and_torch(rng, feats, **mel)
  net.frontend = ref.TorchLogMel(n_mels=16, num_frames=32, htk=htk, mel_norm=norm, **TINY_AUDIO)
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
