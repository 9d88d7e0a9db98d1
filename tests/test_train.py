"""Losses against PyTorch and by hand, class weighting, the plateau rule, host progress, the NaN guard and the
BatchNorm-statistics policy of the train step, and the compiled memory of a step."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxplastic import reporting
from jaxplastic import surgery
from jaxplastic import train as train_lib


def test_hinge_losses_by_hand():
  logits = jnp.array([[2.0, 0.5], [0.0, 0.3]])
  labels = jnp.array([0, 0])
  # Row 1: relu(1 - 2 + 0.5) = 0; row 2: relu(1 - 0 + 0.3) = 1.3. Authors: (0 + 1.3) / 2; PyTorch: also / 2 classes.
  assert float(train_lib.hinge(logits, labels, jnp.ones(2))) == pytest.approx(0.65, rel=1e-6)
  assert float(train_lib.multi_margin(logits, labels, jnp.ones(2))) == pytest.approx(0.325, rel=1e-6)
  three = jnp.array([[1.0, 0.2, 0.9]])
  # relu(1 - 1 + 0.2) + relu(1 - 1 + 0.9) = 1.1, summed over the wrong classes.
  assert float(train_lib.hinge(three, jnp.array([0]), jnp.ones(1))) == pytest.approx(1.1, rel=1e-6)
  assert train_lib.LOSSES["hinge"] is train_lib.hinge and train_lib.LOSSES["multi_margin"] is train_lib.multi_margin


@pytest.mark.parametrize("num_classes", [2, 3])
def test_hinge_losses_match_torch_multimargin(num_classes):
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(num_classes)
  logits = rng.standard_normal((16, num_classes)).astype(np.float32) * 2
  labels = rng.integers(0, num_classes, 16)
  ref = torch.nn.MultiMarginLoss(margin=1.0)(torch.from_numpy(logits), torch.from_numpy(labels)).item()
  ours = float(train_lib.multi_margin(jnp.asarray(logits), jnp.asarray(labels), jnp.ones(16)))
  assert ours == pytest.approx(ref, rel=1e-6)
  # The authors' hinge has no 1/classes.
  authors = float(train_lib.hinge(jnp.asarray(logits), jnp.asarray(labels), jnp.ones(16)))
  assert authors == pytest.approx(num_classes * ref, rel=1e-6)
  ref_ce = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
  assert float(train_lib.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.ones(16))) == pytest.approx(
      ref_ce, rel=1e-6)


def test_class_weights_and_mask():
  labels = jnp.array([0, 1, 1, 0])
  w = train_lib.example_weights(labels, jnp.array([1.0, 1.0, 0.0, 1.0]), (0.25, 1.0))
  np.testing.assert_allclose(np.asarray(w), [0.25, 1.0, 0.0, 0.25])
  # Weighted mean: a padded example (mask 0) contributes nothing.
  logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [9.0, -9.0], [0.0, 0.0]])
  loss = float(train_lib.cross_entropy(logits, labels, w))
  per = -jax.nn.log_softmax(logits)[jnp.arange(4), labels]
  assert loss == pytest.approx(float((per * w).sum() / w.sum()), rel=1e-6)


def test_plateau_reduces_after_patience_like_pytorch():
  progress = train_lib.Progress.start(0)
  losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8]
  scales = []
  for loss in losses:
    progress = train_lib.plateau_update(progress, loss, factor=0.5, patience=3)
    scales.append(progress.lr_scale)
  # PyTorch ReduceLROnPlateau(patience=3): the 4th epoch without improvement (index 5) halves the lr.
  assert scales == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
  assert train_lib.plateau_update(progress, 5.0, factor=0.5, patience=0) is progress


def test_progress_json_round_trip_keeps_infinities():
  progress = train_lib.Progress.start(12)
  assert progress.best_dev_eer == float("inf") and progress.step_in_epoch == 0
  obj = json.loads(json.dumps(progress.to_json(), allow_nan=False))  # strict JSON: no Infinity tokens
  assert obj["best_dev_eer"] is None
  assert train_lib.Progress.from_json(obj) == progress
  progress.step += 3
  progress.best_dev_eer, progress.best_step = 12.5, 15
  assert train_lib.Progress.from_json(progress.to_json()) == progress
  assert progress.step_in_epoch == 3


class _Tiny(nn.Module):
  @nn.compact
  def __call__(self, x, *, train):
    return nn.Dense(2, name="head")(x[:, :4])


def test_nonfinite_loss_leaves_state_untouched():
  model = _Tiny()
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)), train=False)["params"]
  tx = optax.adam(0.1)
  state = train_lib.create_state(params, {}, {}, tx)
  step = jax.jit(lambda s, b: train_lib.train_step(s, b, model=model, tx=tx, partition=surgery.Partition.everything(),
                                                   plan=None, loss_name="ce", class_weights=None,
                                                   base_rng=jax.random.PRNGKey(0)))
  good = {"audio": jnp.ones((2, 8)), "label": jnp.array([0, 1]), "mask": jnp.ones(2)}
  bad = dict(good, audio=good["audio"].at[0, 0].set(jnp.nan))
  before = jax.device_get(state.params)
  state, m = step(state, bad)
  assert int(m["nonfinite"]) == 1 and int(state.step) == 1
  for a, b in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  state, m = step(state, good)
  assert int(m["nonfinite"]) == 0
  assert not np.array_equal(np.asarray(before["head"]["kernel"]), np.asarray(state.params["head"]["kernel"]))


class _BN(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x, *, train):
    h = nn.BatchNorm(use_running_average=not train, momentum=0.5, name="bn")(nn.Dense(self.width, name="fc")(x))
    return nn.Dense(2, name="head")(nn.relu(h))


@pytest.mark.parametrize("batch_stats", ["update", "freeze"])
def test_dropin_batch_stats_update_or_freeze(batch_stats):
  x = jax.random.normal(jax.random.PRNGKey(3), (4, 8))
  small, big = _BN(4), _BN(6)
  v_small = surgery._to_dict(small.init(jax.random.PRNGKey(0), x, train=False))
  fresh = surgery._to_dict(big.init(jax.random.PRNGKey(1), x, train=False))
  plan = surgery.make_plan(v_small, fresh)
  v_big = surgery.grow(v_small, fresh, plan)
  part = surgery.Partition.new_slices(plan, batch_stats=batch_stats)
  trainable, frozen = part.split(v_big["params"])
  tx = optax.adam(1e-2)
  state = train_lib.create_state(trainable, frozen, {"batch_stats": v_big["batch_stats"]}, tx)
  step = jax.jit(lambda s, b: train_lib.train_step(s, b, model=big, tx=tx, partition=part, plan=plan,
                                                   loss_name="ce", class_weights=None,
                                                   base_rng=jax.random.PRNGKey(0)))
  batch = {"audio": x, "label": jnp.array([0, 1, 0, 1]), "mask": jnp.ones(4)}
  for _ in range(2):
    state, _ = step(state, batch)
  for name in ("mean", "var"):
    old = np.asarray(v_small["batch_stats"]["bn"][name])
    now = np.asarray(state.model_state["batch_stats"]["bn"][name])
    assert now.shape == (6,)
    assert np.any(now[4:] != np.asarray(v_big["batch_stats"]["bn"][name])[4:])  # new channels always move
    if batch_stats == "freeze":
      np.testing.assert_array_equal(now[:4], old)  # original channels' statistics bit-identical
    else:
      assert np.all(now[:4] != old)  # the authors': every running buffer keeps updating
  with pytest.raises(surgery.SurgeryError, match="batch_stats"):
    surgery.Partition.new_slices(plan, batch_stats="momentum")


def test_compiled_memory_counts_arguments_outputs_temporaries_and_donation():
  step = jax.jit(lambda s, x: (s + x.sum(), jnp.tanh(x @ x.T).sum()), donate_argnums=0)
  s, x = jnp.zeros((1000,), jnp.float32), jnp.ones((64, 128), jnp.float32)
  mem = reporting.compiled_memory(step, s, x)
  assert mem["argument_bytes"] == 4 * (1000 + 64 * 128)
  assert mem["alias_bytes"] == 4 * 1000  # the donated state's buffer is reused for the new state
  assert mem["peak_bytes"] == (mem["argument_bytes"] + mem["output_bytes"] + mem["temp_bytes"]
                               - mem["alias_bytes"])
  # Shapes alone decide: a bigger step reports more, whatever ran before it in this process.
  bigger = reporting.compiled_memory(step, jnp.zeros((4000,)), x)
  assert bigger["peak_bytes"] > mem["peak_bytes"] == reporting.compiled_memory(step, s, x)["peak_bytes"]
