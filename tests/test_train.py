"""Losses against PyTorch, class weighting, the plateau rule, and the NaN guard of the train step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxplastic import surgery
from jaxplastic import train as train_lib


def test_hinge_matches_torch_multimargin():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((16, 2)).astype(np.float32) * 2
  labels = rng.integers(0, 2, 16)
  ref = torch.nn.MultiMarginLoss(margin=1.0)(torch.from_numpy(logits), torch.from_numpy(labels)).item()
  ours = float(train_lib.multiclass_hinge(jnp.asarray(logits), jnp.asarray(labels), jnp.ones(16)))
  assert ours == pytest.approx(ref, rel=1e-6)
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
  state = train_lib.create_state({"w": jnp.zeros(2)}, {}, {}, optax.adam(1e-3))
  losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8]
  scales = []
  for loss in losses:
    state = train_lib.plateau_update(state, loss, factor=0.5, patience=3)
    scales.append(float(state.lr_scale))
  # PyTorch ReduceLROnPlateau(patience=3): the 4th epoch without improvement (index 5) halves the lr.
  assert scales == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
  assert train_lib.plateau_update(state, 5.0, factor=0.5, patience=0) is state


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
