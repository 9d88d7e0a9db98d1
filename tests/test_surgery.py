"""Surgery invariants over a table of models: growth preserves outputs when asked, prune(grow(p)) == p exactly,
dropin trains only new entries (bit-identical originals under AdamW with weight decay), and loud errors."""

import functools
import importlib
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxplastic import experiment
from jaxplastic import models
from jaxplastic import surgery
from jaxplastic import train as train_lib
from jaxplastic.models import grnn as grnn_lib


class ConvBN(nn.Module):
  """Two conv+BN layers, a residual block and a head: the coupling pattern of ResNet stages."""
  widths: Sequence[int] = (4, 6)

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = x[:, :64].reshape(x.shape[0], 8, 8, 1)
    for i, w in enumerate(self.widths):
      x = nn.Conv(w, (3, 3), name=f"conv{i}")(x)
      x = nn.BatchNorm(use_running_average=not train, name=f"bn{i}")(x)
      x = nn.relu(x)
    y = nn.Conv(self.widths[-1], (3, 3), name="res_conv")(x)
    x = nn.relu(x + nn.BatchNorm(use_running_average=not train, name="res_bn")(y))
    return nn.Dense(2, name="head")(x.mean((1, 2)))


class Attention(nn.Module):
  """A pre-LN transformer block with per-layer heads and FFN width fields, kernels [d, heads, head_dim]."""
  heads: int = 2
  head_dim: int = 4
  ffn: int = 8
  hidden: int = 8
  SURGERY_OUTPUT_AXES = ((r".*/(q|k|v)/kernel", 2),)

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = nn.Dense(self.hidden, name="embed")(x[:, :40].reshape(x.shape[0], 5, 8))
    h = nn.LayerNorm(name="ln1")(x)
    q, k, v = (nn.DenseGeneral((self.heads, self.head_dim), name=n)(h) for n in "qkv")
    att = nn.dot_product_attention(q, k, v)
    x = x + nn.DenseGeneral(self.hidden, axis=(-2, -1), name="out")(att)
    h = nn.LayerNorm(name="ln2")(x)
    x = x + nn.Dense(self.hidden, name="ffn_out")(nn.gelu(nn.Dense(self.ffn, name="ffn_in")(h)))
    return nn.Dense(2, name="head")(x.mean(1))


class Branchy(nn.Module):
  """The parallel-branch layout: `branch` > 0 adds a Dense beside `a`, concatenated into `b`'s input."""
  branch: int = 0

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = x[:, :16]
    h = nn.relu(nn.Dense(8, name="a")(x))
    if self.branch:
      h = jnp.concatenate([h, nn.relu(nn.Dense(self.branch, name="branch")(x))], axis=-1)
    return nn.Dense(2, name="head")(nn.relu(nn.Dense(6, name="b")(h)))


def _grnn(**kw):
  from jaxplastic.models import grnn
  return grnn.GRNN(**kw)


def _resnet(**kw):
  from jaxplastic.models import resnet
  return resnet.ResNet18(**kw)


SMALL_RESNET = dict(stage_widths=(4, 8, 8, 8), stem_width=4, num_frames=16, n_mels=16)
# (name, model factory, small fields, big fields, input samples)
CASES = [
    ("convbn", ConvBN, dict(widths=(4, 6)), dict(widths=(7, 9)), 64),
    ("attention_heads_ffn", Attention, dict(heads=2, ffn=8), dict(heads=3, ffn=12), 40),
    ("grnn_layer2", _grnn, dict(hidden_sizes=(6, 6, 4, 4)), dict(hidden_sizes=(6, 10, 4, 4)), 4096),
    ("resnet_stages23", _resnet, SMALL_RESNET, dict(SMALL_RESNET, stage_widths=(4, 12, 16, 8)), 4096),
    # The authors' ResNet dropin at tiny widths: a parallel BasicBlock beside stages 2 and 3.
    ("resnet_parallel", _resnet, SMALL_RESNET, dict(SMALL_RESNET, branch_widths=(0, 8, 8, 0)), 4096),
    ("branch", Branchy, dict(branch=0), dict(branch=4), 16),
]
# Cases only the dropin-rule tests use.
EXTRA_CASES = [
    # The authors' GRU cell (reset gate before the hidden matrix): same parameters, other recurrence.
    ("grnn_authors_layer2", _grnn, dict(hidden_sizes=(6, 6, 4, 4), cell="authors"),
     dict(hidden_sizes=(6, 10, 4, 4), cell="authors"), 4096),
]


def _case(name):
  for c in CASES + EXTRA_CASES:
    if c[0] == name:
      return c
  raise KeyError(name)


def _variables(model, n, seed=0):
  x = jnp.zeros((2, n))
  return jax.jit(lambda r: model.init({"params": r, "dropout": r}, x, train=False))(jax.random.PRNGKey(seed))


def _grow(name, init="function_preserving"):
  _, make, small_f, big_f, n = _case(name)
  small, big = make(**small_f), make(**big_f)
  v_small = surgery._to_dict(_variables(small, n, 0))
  fresh = surgery._to_dict(_variables(big, n, 1))
  plan = surgery.make_plan(v_small, fresh)
  rules = tuple(getattr(type(big), "SURGERY_OUTPUT_AXES", ()))
  v_big = surgery.grow(v_small, fresh, plan, init=init, output_axes=rules)
  return small, big, v_small, v_big, plan, n


def _apply(model, variables, x):
  return jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)


def _inputs(n, b=3):
  return jax.random.normal(jax.random.PRNGKey(7), (b, n)) * 0.3


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_function_preserving_growth_keeps_outputs(name):
  small, big, v_small, v_big, plan, n = _grow(name)
  assert plan.grown, "the case must grow something"
  x = _inputs(n)
  y_small = _apply(small, v_small, x)
  y_big = _apply(big, v_big, x)
  assert float(jnp.max(jnp.abs(y_small - y_big))) <= 1e-5


@pytest.mark.parametrize("name", ["convbn", "grnn_layer2"])
def test_random_growth_changes_outputs(name):
  """The authors' random init of new slices does change the function (so the preserving test can fail)."""
  small, big, v_small, v_big, _, n = _grow(name, init="random")
  x = _inputs(n)
  assert float(jnp.max(jnp.abs(_apply(small, v_small, x) - _apply(big, v_big, x)))) > 1e-4


@pytest.mark.parametrize("name", [c[0] for c in CASES])
@pytest.mark.parametrize("init", ["random", "function_preserving"])
def test_prune_of_grow_is_identity(name, init):
  _, _, v_small, v_big, plan, _ = _grow(name, init)
  back = surgery.prune(v_big, surgery.make_plan(v_small, v_big, what="prune"))
  a, b = surgery.flatten(v_small), surgery.flatten(back)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
    assert a[k].dtype == b[k].dtype


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_partition_round_trip_and_counts(name):
  _, _, v_small, v_big, plan, _ = _grow(name)
  part = surgery.Partition.new_slices(plan)
  trainable, frozen = part.split(v_big["params"])
  merged = part.merge(trainable, frozen)
  for k, v in surgery.flatten(v_big["params"]).items():
    np.testing.assert_array_equal(np.asarray(v), np.asarray(surgery.flatten(merged)[k]))
  n_big = surgery.count(v_big["params"])
  n_small = surgery.count(v_small["params"])
  # Trainable entries are exactly those the growth added; frozen ones exactly the originals.
  assert surgery.count(trainable) == n_big - n_small
  assert surgery.count(frozen) == n_small


def _train_three_steps(state, model, tx, part, plan, n, loss_name):
  step = jax.jit(lambda s, b: train_lib.train_step(s, b, model=model, tx=tx, partition=part, plan=plan,
                                                   loss_name=loss_name, class_weights=None,
                                                   base_rng=jax.random.PRNGKey(0)))
  batch = {"audio": _inputs(n, 4), "label": jnp.array([0, 1, 0, 1]), "mask": jnp.ones(4)}
  for _ in range(3):
    state, _ = step(state, batch)
  return state


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_dropin_adamw_keeps_originals_bit_identical(name):
  _, big, v_small, v_big, plan, n = _grow(name, init="random")
  part = surgery.Partition.new_slices(plan, train_patterns=("head/.*",))
  trainable, frozen = part.split(v_big["params"])
  model_state = {k: v for k, v in v_big.items() if k != "params"}
  tx = optax.adamw(1e-2, weight_decay=0.1)
  state = train_lib.create_state(trainable, frozen, model_state, tx)
  # Optimizer state is exactly Adam's two moments per trainable entry plus the scalar count.
  assert surgery.count(state.opt_state) == 2 * surgery.count(trainable) + 1
  state = _train_three_steps(state, big, tx, part, plan, n, "ce")
  after = surgery.flatten(part.merge(state.params, state.frozen))
  before = surgery.flatten(v_big["params"])
  small = surgery.flatten(v_small["params"])
  moved_new = 0
  for k, old in small.items():
    lead = tuple(slice(0, s) for s in old.shape)
    if k.startswith("head/"):
      continue
    np.testing.assert_array_equal(np.asarray(after[k])[lead], np.asarray(old), err_msg=k)
    moved_new += int(np.any(np.asarray(after[k]) != np.asarray(before[k])))
  assert moved_new > 0, "no new slice changed"


# ----------------------------------------------------------------------------------------------------------------
# Dropin rules: isolated recurrent blocks, frozen grown slices, trainable originals, BatchNorm statistics, optax.

# GRNN's hidden->hidden kernels [H, H], matched as SURGERY_OUTPUT_AXES rules are (paths carry the collection).
RECURRENT = grnn_lib.GRNN.SURGERY_RECURRENT
HIDDEN = [f"gru2/hidden_{g}/kernel" for g in "rzn"]


def _dropin(name, **rules):
  """Grows a case (random new slices), partitions it with `rules` and trains three AdamW steps with weight decay."""
  _, big, v_small, v_big, plan, n = _grow(name, init="random")
  part = surgery.Partition.new_slices(plan, **rules)
  trainable, frozen = part.split(v_big["params"])
  tx = optax.adamw(1e-2, weight_decay=0.1)
  state = train_lib.create_state(trainable, frozen, {k: v for k, v in v_big.items() if k != "params"}, tx)
  state = _train_three_steps(state, big, tx, part, plan, n, "hinge" if name.startswith("grnn") else "ce")
  return plan, part, v_small, v_big, trainable, state, surgery.flatten(part.merge(state.params, state.frozen))


def _lead(x, shape):
  return np.asarray(x)[tuple(slice(0, s) for s in shape)]


@pytest.mark.parametrize("name", ["grnn_layer2", "grnn_authors_layer2"])
def test_gru_isolation_keeps_the_new_to_old_block_zero_and_frozen(name):
  """The authors' GRU: old units of the grown layer never read the new ones, through AdamW with weight decay, in
  either cell's equations."""
  plan, part, v_small, v_big, trainable, state, after = _dropin(name, recurrent=RECURRENT, old_reads_new=False)
  old, new = plan.small["params/gru2/hidden_r/kernel"][0], plan.big["params/gru2/hidden_r/kernel"][0]
  before = surgery.flatten(v_big["params"])
  for k in HIDDEN:
    assert np.asarray(after[k])[old:, :old].shape == (new - old, old) == (4, 6)
    assert np.all(np.asarray(before[k])[old:, :old] != 0), "the random grow filled the block; split must zero it"
    assert np.all(np.asarray(after[k])[old:, :old] == 0), k
    assert surgery.flatten(state.frozen)[f"{k}/zero_axis0"].shape == (4, 6)
    assert np.any(np.asarray(after[k])[:, old:] != np.asarray(before[k])[:, old:]), f"{k}: new units did not train"
  for k, v in surgery.flatten(v_small["params"]).items():
    np.testing.assert_array_equal(_lead(after[k], v.shape), np.asarray(v), err_msg=k)
  # Trainable: every new parameter except the three new->old blocks.
  added = surgery.count(v_big["params"]) - surgery.count(v_small["params"])
  assert surgery.count(trainable) == added - 3 * 4 * 6
  # So the grown layer's old units compute exactly what the small model's do.
  small, big = _grnn(**_case(name)[2]), _grnn(**_case(name)[3])
  x = _inputs(4096)
  capture = lambda m, v: m.apply(v, x, train=False, capture_intermediates=True)[1]["intermediates"]["gru2"]
  h_small = capture(small, v_small)["__call__"][0]
  h_big = capture(big, {"params": surgery.unflatten(after)})["__call__"][0]
  np.testing.assert_allclose(np.asarray(h_big)[..., :old], np.asarray(h_small), rtol=0, atol=1e-6)


def test_gru_isolation_trainable_count_at_the_authors_shapes():
  """GRNN (64, 64, 32, 32) -> (64, 128, 32, 32), shapes only: 55,680 new parameters, 3 x 64 x 64 of them isolated."""
  small = surgery.abstract_variables(_grnn(hidden_sizes=(64, 64, 32, 32)), (1, 4096))
  big = surgery.abstract_variables(_grnn(hidden_sizes=(64, 128, 32, 32)), (1, 4096))
  part = surgery.Partition.new_slices(surgery.make_plan(small, big), recurrent=RECURRENT, old_reads_new=False)
  trainable, frozen = jax.eval_shape(part.split, big["params"])  # split traces: jnp slicing, no host copy
  added = surgery.count(big["params"]) - surgery.count(small["params"])
  assert added == 55_680
  assert surgery.count(trainable) == added - 3 * 64 * 64 == 43_392
  assert surgery.count(trainable) + surgery.count(frozen) == surgery.count(big["params"])


def test_grown_slices_freeze_trains_only_added_tensors():
  """The authors' parallel branch: only the branch trains; the reader's new input rows stay at their grown init."""
  plan, _, _, v_big, trainable, _, after = _dropin("branch", grown_slices="freeze")
  assert plan.added == ("params/branch/bias", "params/branch/kernel")
  assert dict(plan.grown) == {"params/b/kernel": (0,)}
  assert surgery.count(trainable) == 16 * 4 + 4
  before = surgery.flatten(v_big["params"])
  assert np.all(np.asarray(before["b/kernel"])[8:] != 0), "the frozen new rows must be the random init"
  for k, v in before.items():
    if k.startswith("branch/"):
      assert np.any(np.asarray(after[k]) != np.asarray(v)), k
    else:  # originals and the grown rows, bit for bit
      np.testing.assert_array_equal(np.asarray(after[k]), np.asarray(v), err_msg=k)
  # The default "train" trains the rows that read the branch too.
  assert surgery.count(surgery.Partition.new_slices(plan).split(v_big["params"])[0]) == 16 * 4 + 4 + 4 * 6


# The authors' ResNet-18 dropin: block 1 of stages 3 and 4 reads the branches through new input channels of its
# conv1 and shortcut kernels [kh, kw, in, out].
BRANCH_READERS = sorted(f"stage{i}/block1/{c}/kernel" for i in (3, 4) for c in ("conv1", "shortcut_conv"))


def _resnet_plan(**big_fields):
  """Grow plan from the default ResNet-18 to `big_fields`, from shapes at 64,000 samples (nothing is compiled)."""
  big = surgery.abstract_variables(_resnet(**big_fields), (1, 64000))
  return surgery.make_plan(surgery.abstract_variables(_resnet(), (1, 64000)), big), big


def test_resnet_parallel_layout_counts_at_the_authors_widths():
  """Branches beside stages 2 and 3 (128, 256 channels): 14,286,530 parameters, 1,476,864 in the branches, 1,638,400
  in the new input slices that read them; only the branches train with grown_slices="freeze"."""
  plan, big = _resnet_plan(branch_widths=(0, 128, 256, 0))
  numel = lambda p, shapes: int(np.prod(shapes["params/" + p]))
  added = [p[len("params/"):] for p in plan.added if p.startswith("params/")]
  grown = {p[len("params/"):]: a for p, a in plan.grown.items() if p.startswith("params/")}
  assert surgery.count(big["params"]) == 14_286_530
  # Per branch: conv1, conv2, shortcut_conv kernels and the scale and bias of bn1, bn2, shortcut_bn.
  assert {p.split("/")[0] for p in added} == {"branch2", "branch3"} and len(added) == 2 * 9
  assert sum(numel(p, plan.big) for p in added) == 1_476_864
  assert grown == {p: (2,) for p in BRANCH_READERS}  # only their input axis grows
  assert sum(numel(p, plan.big) - numel(p, plan.small) for p in grown) == 1_638_400
  for grown_slices, expected in (("freeze", 1_476_864), ("train", 1_476_864 + 1_638_400)):
    trainable, frozen = jax.eval_shape(surgery.Partition.new_slices(plan, grown_slices=grown_slices).split,
                                       big["params"])
    assert surgery.count(trainable) == expected == {"freeze": 1_476_864, "train": 3_115_264}[grown_slices]
    assert surgery.count(trainable) + surgery.count(frozen) == 14_286_530
  # Our generic alternative, stages 2 and 3 widened in place: every new slice trains.
  plan, big = _resnet_plan(stage_widths=(64, 256, 512, 512))
  assert not plan.added
  trainable, _ = jax.eval_shape(surgery.Partition.new_slices(plan).split, big["params"])
  assert surgery.count(trainable) == 9_015_040 and surgery.count(big["params"]) == 20_186_306


@pytest.mark.parametrize("grown_slices", ["freeze", "train"])
def test_resnet_parallel_dropin_trains_the_branches_and_keeps_the_rest(grown_slices):
  """The real ResNet-18 at tiny widths, branches beside stages 2 and 3, three AdamW steps with weight decay: the
  branches move; the new input slices reading them stay bit-identical to their random init ("freeze", the
  authors') or move ("train"); every original entry stays bit-identical."""
  plan, _, v_small, v_big, trainable, _, after = _dropin("resnet_parallel", grown_slices=grown_slices)
  before, small = surgery.flatten(v_big["params"]), surgery.flatten(v_small["params"])
  added = sorted(p[len("params/"):] for p in plan.added if p.startswith("params/"))
  readers = sorted(p[len("params/"):] for p in plan.grown if p.startswith("params/"))
  assert readers == BRANCH_READERS and {p.split("/")[0] for p in added} == {"branch2", "branch3"}
  new_entries = sum(before[p].size - small[p].size for p in readers)
  assert surgery.count(trainable) == sum(before[p].size for p in added) + (grown_slices == "train") * new_entries
  for p in added:
    assert np.any(np.asarray(after[p]) != np.asarray(before[p])), f"{p}: the branch did not train"
  for p in readers:
    old_in = small[p].shape[2]
    init, got = np.asarray(before[p])[:, :, old_in:], np.asarray(after[p])[:, :, old_in:]
    assert init.size > 0 and np.all(init != 0), "the new input slices must hold their random init"
    if grown_slices == "freeze":
      np.testing.assert_array_equal(got, init, err_msg=p)
    else:
      assert np.any(got != init), f"{p}: the new input slices did not train"
  for p, v in small.items():
    np.testing.assert_array_equal(_lead(after[p], v.shape), np.asarray(v), err_msg=p)


def test_originals_train_with_isolation():
  """The authors' "dropin unfrozen" GRNN: everything trains except the new->old blocks, which stay zero."""
  plan, _, _, v_big, trainable, _, after = _dropin(
      "grnn_layer2", recurrent=RECURRENT, old_reads_new=False, originals="train")
  assert surgery.count(trainable) == surgery.count(v_big["params"]) - 3 * 4 * 6
  before = surgery.flatten(v_big["params"])
  for k in HIDDEN:
    assert np.all(np.asarray(after[k])[6:, :6] == 0), k
  for k in ["gru1/hidden_r/kernel", "head/kernel"] + HIDDEN:
    assert np.any(np.asarray(after[k])[:6, :2] != np.asarray(before[k])[:6, :2]), f"{k}: original did not train"
  everything = surgery.Partition.new_slices(plan, originals="train")
  assert surgery.count(everything.split(v_big["params"])[0]) == surgery.count(v_big["params"])


@pytest.mark.parametrize("policy", ["update", "freeze"])
def test_batch_stats_policy(policy):
  """"update" (the authors') moves every running statistic; "freeze" keeps original channels' bit-identical."""
  _, _, v_small, _, _, state, _ = _dropin("convbn", batch_stats=policy)
  stats = surgery.flatten({k: v for k, v in v_small.items() if k != "params"})
  assert len(stats) == 6
  after = surgery.flatten(state.model_state)
  moved = sorted(k for k, v in stats.items() if np.any(_lead(after[k], v.shape) != np.asarray(v)))
  assert moved == ([] if policy == "freeze" else sorted(stats))


def test_dropin_optimizer_matches_the_trainer_split_bit_for_bit():
  """A user's own loop over `split_tree` with `dropin_optimizer` == the trainer's split, and no state for originals."""
  _, big, _, v_big, plan, n = _grow("grnn_layer2", init="random")
  part = surgery.Partition.new_slices(plan, train_patterns=("head/.*",), recurrent=RECURRENT, old_reads_new=False)
  tx = optax.adamw(1e-2, weight_decay=0.1)
  trainable, frozen = part.split(v_big["params"])
  state = _train_three_steps(train_lib.create_state(trainable, frozen, {}, tx), big, tx, part, plan, n, "hinge")
  trainer = surgery.flatten(part.merge(state.params, state.frozen))

  tree = part.split_tree(v_big["params"])
  opt = surgery.dropin_optimizer(optax.adamw(1e-2, weight_decay=0.1))
  opt_state = opt.init(tree)
  batch = {"audio": _inputs(n, 4), "label": jnp.array([0, 1, 0, 1]), "mask": jnp.ones(4)}

  @jax.jit
  def step(tree, opt_state):
    def loss_fn(tree):
      logits = big.apply({"params": part.merge_tree(tree)}, batch["audio"], train=True)
      weights = train_lib.example_weights(batch["label"], batch["mask"], None)
      return train_lib.LOSSES["hinge"](logits, batch["label"], weights)  # as the trainer computes it
    updates, opt_state = opt.update(jax.grad(loss_fn)(tree), opt_state, tree)
    return optax.apply_updates(tree, updates), opt_state

  for _ in range(3):
    tree, opt_state = step(tree, opt_state)
  user = surgery.flatten(part.merge_tree(tree))
  assert user.keys() == trainer.keys()
  for k in user:
    np.testing.assert_array_equal(np.asarray(user[k]), np.asarray(trainer[k]), err_msg=k)
  for a, b in zip(jax.tree_util.tree_leaves(tree["frozen"]), jax.tree_util.tree_leaves(frozen)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Adam's two moments for each trainable entry plus its step count; nothing for the frozen blocks.
  assert surgery.count(opt_state) == 2 * surgery.count(trainable) + 1 == surgery.count(state.opt_state)
  assert surgery.nbytes(opt_state) == surgery.nbytes(state.opt_state)
  assert surgery.count(tree["frozen"]) > surgery.count(trainable) > 0


def _shape_plan(name):
  """The grow plan of a case from shapes alone (nothing compiled)."""
  _, make, small_f, big_f, n = _case(name)
  return surgery.make_plan(*(surgery.abstract_variables(make(**f), (1, n)) for f in (small_f, big_f)))


def test_dropin_rule_errors_name_what_they_looked_for():
  plan = _shape_plan("grnn_layer2")
  new = surgery.Partition.new_slices
  with pytest.raises(surgery.SurgeryError, match="none were given"):
    new(plan, old_reads_new=False)
  with pytest.raises(surgery.SurgeryError, match="no grown tensor matches.*gru1"):  # the old configs' mistake
    new(plan, recurrent=(r"params/gru1/hidden_[rzn]/kernel",), old_reads_new=False)
  with pytest.raises(surgery.SurgeryError, match="matches no tensor"):  # paths carry the collection
    new(plan, recurrent=(r"gru\d+/hidden_[rzn]/kernel",), old_reads_new=False)
  with pytest.raises(surgery.SurgeryError, match="both its input and output.*gru3/input_r"):
    new(plan, recurrent=(r"params/gru3/input_r/kernel",), old_reads_new=False)
  with pytest.raises(surgery.SurgeryError, match="isolated"):
    new(plan, train_patterns=(r"gru2/hidden_r/kernel",), recurrent=RECURRENT, old_reads_new=False)
  with pytest.raises(surgery.SurgeryError, match="'head/.*' matches only tensors that already train"):
    new(plan, train_patterns=("head/.*",), originals="train")
  with pytest.raises(surgery.SurgeryError, match="adds none"):
    new(plan, grown_slices="freeze")
  for option in ({"grown_slices": "frozen"}, {"originals": "all"}, {"batch_stats": "frozen"}):
    with pytest.raises(surgery.SurgeryError, match="must be one of"):
      new(plan, **option)
  with pytest.raises(surgery.SurgeryError, match="'branch/.*' matches only tensors that already train"):
    new(_shape_plan("branch"), train_patterns=("branch/.*",))
  with pytest.raises(surgery.SurgeryError, match="split_tree"):
    surgery.Partition.labels({"params": {}})

def test_importance_prune_keeps_selected_units_exactly():
  _, make, small_f, big_f, n = _case("convbn")
  v_big = surgery._to_dict(_variables(make(**big_f), n, 3))
  v_small_shape = surgery.abstract_variables(make(**small_f), (1, n))
  plan = surgery.make_plan(v_small_shape, v_big, what="prune")
  groups = surgery.width_groups(lambda f: make(**f), small_f, big_f, (1, n))
  assert set(groups) == {"widths[0]", "widths[1]"}
  with pytest.raises(surgery.SurgeryError, match="distinct"):
    surgery.prune(v_big, plan, keep={"widths[0]": np.array([0, 0, 5, 6])}, groups=groups)
  keep = {"widths[0]": np.array([0, 2, 5, 6]), "widths[1]": np.array([1, 2, 3, 4, 5, 8])}
  pruned = surgery.prune(v_big, plan, keep=keep, groups=groups)
  k1 = np.asarray(v_big["params"]["conv1"]["kernel"])
  np.testing.assert_array_equal(np.asarray(pruned["params"]["conv1"]["kernel"]),
                                k1[:, :, [0, 2, 5, 6]][..., [1, 2, 3, 4, 5, 8]])
  np.testing.assert_array_equal(np.asarray(pruned["batch_stats"]["bn0"]["mean"]),
                                np.asarray(v_big["batch_stats"]["bn0"]["mean"])[[0, 2, 5, 6]])
  # The pruned model runs at the small widths.
  _apply(make(**small_f), pruned, _inputs(n))
  # Importance scores pick the units with the largest weights.
  boosted = jax.tree_util.tree_map(lambda x: x, v_big)
  boosted["params"]["conv0"]["kernel"] = boosted["params"]["conv0"]["kernel"].at[..., 6].multiply(100.0)
  keep_auto = surgery.keep_most_important(surgery.unit_importance(boosted, groups), plan, groups)
  assert 6 in keep_auto["widths[0]"] and len(keep_auto["widths[0]"]) == 4


def test_errors_are_loud_and_nothing_is_modified():
  _, make, small_f, big_f, n = _case("convbn")
  v_small = surgery._to_dict(_variables(make(**small_f), n))
  v_big = surgery._to_dict(_variables(make(**big_f), n))
  with pytest.raises(surgery.SurgeryError, match="shrinks"):
    surgery.make_plan(v_big, v_small, what="grow")
  with pytest.raises(surgery.SurgeryError, match="grows"):
    surgery.make_plan(v_big, v_small, what="prune")
  plan = surgery.make_plan(v_small, v_big)
  bad = jax.tree_util.tree_map(lambda x: x, v_small)
  bad["params"]["conv1"]["kernel"] = jnp.zeros((3, 3, 4, 5))
  snapshot = {k: np.asarray(v).copy() for k, v in surgery.flatten(v_small).items()}
  with pytest.raises(surgery.SurgeryError, match="conv1/kernel"):
    surgery.grow(bad, v_big, plan)
  for k, v in surgery.flatten(v_small).items():
    np.testing.assert_array_equal(np.asarray(v), snapshot[k])
  with pytest.raises(surgery.SurgeryError, match="matches no tensor"):
    surgery.Partition.new_slices(plan, train_patterns=("nothing/.*",))
  with pytest.raises(surgery.SurgeryError, match="init"):
    surgery.grow(v_small, v_big, plan, init="zeros")


def test_parameter_counts_closed_form():
  """ConvBN params: conv_i = 9*in*out + out, bn_i = 2*out, res = 9*w^2 + w + 2*w, head = 2*w + 2."""
  def closed(w0, w1):
    conv = 9 * 1 * w0 + w0 + 9 * w0 * w1 + w1
    bn = 2 * w0 + 2 * w1
    res = 9 * w1 * w1 + w1 + 2 * w1
    return conv + bn + res + 2 * w1 + 2
  for w in [(4, 6), (7, 9)]:
    shapes = surgery.abstract_variables(ConvBN(widths=w), (1, 64))
    assert surgery.count(shapes["params"]) == closed(*w)


# ----------------------------------------------------------------------------------------------------------------
# The paper configs: every stage's partition from shapes at the authors' widths, as the driver builds it.


@functools.lru_cache(maxsize=None)
def _shapes_of(items: tuple, num_samples: int):
  return surgery.abstract_variables(experiment.build(dict(items)), (1, num_samples))


def _stage_partition(config, index):
  """(partition, grown shapes) of stage `index`, by the rules of `experiment._build`, from shapes alone."""
  stages = list(config.stages)
  st, by_name = stages[index], {s.name: s for s in stages}
  shapes = lambda f: _shapes_of(tuple(sorted(f.items())), config.data.num_samples)
  fields = experiment.model_fields(config.model, st.widths)
  spec, big = models.spec_of(fields), shapes(fields)

  def plan():
    source = by_name[st.start_from or stages[index - 1].name]
    return surgery.make_plan(shapes(experiment.model_fields(config.model, source.widths)), big)

  if st.trainable == "new":
    part = surgery.Partition.new_slices(plan(), train_patterns=config.dropin.train_patterns,
                                        recurrent=spec.recurrent, old_reads_new=config.dropin.old_reads_new,
                                        grown_slices=config.dropin.grown_slices,
                                        batch_stats=config.dropin.batch_stats)
  elif st.kind == "grow" and not config.dropin.old_reads_new:
    part = surgery.Partition.new_slices(plan(), recurrent=spec.recurrent, old_reads_new=False, originals="train")
  elif spec.frozen_patterns(experiment.build(fields)):
    part = surgery.Partition.fixed(big["params"], spec.frozen_patterns(experiment.build(fields)))
  else:
    part = surgery.Partition.everything()
  return part, big


# (config, argument, stage name -> (total, trainable)) at the authors' widths; each la_ docstring states the
# dropin stage's numbers. pa_ and for_ variants change only the corpus.
PAPER_DROPIN = [
    ("resnet_dropin", "parallel", {"dropin": (14_286_530, 1_476_864), "dropin_unfrozen": (14_286_530, 14_286_530)}),
    ("resnet_dropin", "parallel_train", {"dropin": (14_286_530, 3_115_264)}),
    ("resnet_dropin", "widen", {"dropin": (20_186_306, 9_015_040), "dropin_unfrozen": (20_186_306, 20_186_306)}),
    # GRNN: everything new but the 3 x 64 x 64 new->old recurrent blocks; unfrozen: everything but those blocks.
    ("grnn_dropin", "", {"dropin": (112_962, 43_392), "dropin_unfrozen": (112_962, 112_962 - 12_288)}),
    # Wav2Vec 2.0 base: parallel layer + merge (8,268,288) + fresh head (197,378); unfrozen: all but the frozen
    # conv feature encoder (4,200,448).
    ("wav2vec", "parallel", {"dropin": (102_837_378, 8_465_666), "dropin_unfrozen": (102_837_378, 98_636_930)}),
    ("wav2vec", "widen", {"dropin": (101_652_354, 7_280_642)}),
]


@pytest.mark.parametrize("corpus", ["la", "pa", "for"])
@pytest.mark.parametrize("name,arg,expected", PAPER_DROPIN, ids=[f"{n}:{a}" for n, a, _ in PAPER_DROPIN])
def test_paper_dropin_configs_train_the_documented_parameters(corpus, name, arg, expected):
  module = importlib.import_module(f"configs.{corpus}_{name}")
  config = module.get_config(arg) if arg else module.get_config()
  if corpus == "la":  # pa_ and for_ differ only in data.corpus; validating a W2V config costs an eval_shape
    experiment.validate(_with_checkpoint(config))
  for index, st in enumerate(config.stages):
    if st.name not in expected:
      continue
    part, big = _stage_partition(config, index)
    trainable, frozen = jax.eval_shape(part.split, big["params"])
    total, want = expected[st.name]
    assert (surgery.count(big["params"]), surgery.count(trainable)) == (total, want), st.name
    assert surgery.count(frozen) == total - want
    if st.reinit:  # a fresh tensor must train (the driver refuses the stage otherwise)
      assert surgery.match_patterns(surgery.flatten(big["params"]), st.reinit, "reinit") <= set(part.whole_trainable)
  doc = importlib.import_module(f"configs.la_{name}").__doc__
  assert f"{expected['dropin'][1]:,}" in doc and f"{expected['dropin'][0]:,}" in doc, "the docstring's count"


def test_paper_wav2vec_configs_use_the_authors_settings():
  """Wav2Vec base dropin: parallel layer beside index 5, fresh head, unfrozen from the pretrained checkpoint,
  SpecAugment at transformers' defaults; LoRA: head frozen, 98,304 trainable; small plasticity: the projector
  layout, LayerDrop 0, lr thirds, last hand-off, no clipping, no plateau steps."""
  config = importlib.import_module("configs.la_wav2vec").get_config()
  grown = experiment.model_fields(config.model, config.stages[1].widths)
  assert grown["parallel_layers"] == (0,) * 5 + (1,) + (0,) * 6 and config.stages[1].reinit == ("head/.*",)
  assert (config.model.mask_time_prob, config.model.mask_time_length, config.model.mask_time_min_masks) == (0.05, 10, 2)
  assert config.stages[2].start_point == "init" and config.stages[2].trainable == "all"
  part, big = _stage_partition(_with_checkpoint(config), 1)
  plan = surgery.make_plan(_shapes_of(tuple(sorted(experiment.model_fields(config.model).items())), 64000), big)
  added = {p[len("params/"):] for p in plan.added}
  assert not plan.grown and {p.split("/")[1] for p in added} == {"parallel5", "merge5"}
  assert sum(int(np.prod(plan.big["params/" + p])) for p in added) == 8_268_288
  # Exactly the parallel layer, its merge and the fresh head train; every original tensor is frozen whole.
  head = {p for p in surgery.flatten(big["params"]) if p.startswith("head/")}
  assert set(part.whole_trainable) == added | head and not part.layout
  lora = importlib.import_module("configs.la_wav2vec_small_lora").get_config()
  part, big = _stage_partition(lora, 1)
  assert lora.dropin.train_patterns == () and surgery.count(jax.eval_shape(part.split, big["params"])[0]) == 98_304
  small = importlib.import_module("configs.la_wav2vec_small_plasticity").get_config()
  grown = experiment.model_fields(small.model, small.stages[1].widths)
  assert (grown["layer_hidden"][:3], grown["num_heads"][:3], grown["ffn_dims"][:3], grown["layerdrop"]) == (
      (256, 768, 256), (4, 12, 4), (512, 2048, 512), 0.0)
  assert [(st.learning_rate, st.start_point) for st in small.stages] == [(1e-4, "best"), (5e-5, "last"),
                                                                         (1e-5, "last")]
  assert small.optim.grad_clip_norm == 0.0 and small.optim.plateau_patience == 0
  plan = surgery.make_plan(_shapes_of(tuple(sorted(experiment.model_fields(small.model).items())), 64000),
                           _shapes_of(tuple(sorted(grown.items())), 64000))
  assert sorted(p.split("/")[2] for p in plan.added) == ["proj_in1"] * 2 + ["proj_out1"] * 2


def _with_checkpoint(config):
  """A config whose required pretrained checkpoint is named (validate refuses an empty one; nothing is read)."""
  if config.model.get("pretrained") == "":
    config.model.pretrained = "/pretrained/wav2vec2-base"
  return config


@pytest.mark.parametrize("layout", ["widen", "parallel"])
def test_paper_grid_resnet_sweep_cells_build_their_dropin_partition(tmp_path, layout):
  """Every ResNet-18 sweep point of configs/grid_la.py (stage k widened, or the authors' branch of stage k's width
  beside stage k with only the branch training) gives a dropin partition the driver accepts: the branch layout
  trains exactly the added tensors, the widening every new entry."""
  from configs import grid_la  # pylint: disable=g-import-not-at-top
  from jaxplastic import grid  # pylint: disable=g-import-not-at-top
  g = grid_la.get_config(f"la,sweep,{layout}")
  cells = [(m, me) for m, me, s in grid.expand(g) if m == "resnet18" and me.startswith("sweep_k") and s == 42]
  assert len(cells) == 4
  for model, method in cells:
    config = grid.cell_config(g, str(tmp_path), model, method, 42)
    experiment.validate(config)
    part, big = _stage_partition(config, 1)
    plan = surgery.make_plan(_shapes_of(tuple(sorted(experiment.model_fields(config.model).items())), 64000), big)
    k = int(method[len("sweep_k"):])
    if layout == "parallel":
      assert config.dropin.grown_slices == "freeze" and {p.split("/")[1] for p in plan.added} == {f"branch{k + 1}"}
      want = sum(int(np.prod(plan.big[p])) for p in plan.added if p.startswith("params/"))  # BN statistics are not trained
    else:
      assert config.dropin.grown_slices == "train" and not plan.added
      want = surgery.count(big["params"]) - sum(int(np.prod(s)) for p, s in plan.small.items()
                                                if p.startswith("params/"))
    assert surgery.count(jax.eval_shape(part.split, big["params"])[0]) == want, method
