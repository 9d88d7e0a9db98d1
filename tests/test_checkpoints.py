"""Checkpoints: orbax round trip of a grown (dropin) state, shape mismatches named, exports checked, saves keyed by
step and never overwritten."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxplastic import checkpoints
from jaxplastic import surgery
from jaxplastic import train as train_lib


def _state(width, grown_to=None):
  params = {"fc": {"kernel": jnp.arange(3 * width, dtype=jnp.float32).reshape(3, width),
                   "bias": jnp.ones((width,))}}
  if grown_to is None:
    return train_lib.create_state(params, {}, {}, optax.adam(1e-3)), None
  big = {"fc": {"kernel": jnp.zeros((3, grown_to)), "bias": jnp.zeros((grown_to,))}}
  plan = surgery.make_plan({"params": params}, {"params": big})
  part = surgery.Partition.new_slices(plan)
  grown = surgery.grow({"params": params}, {"params": big}, plan)
  trainable, frozen = part.split(grown["params"])
  return train_lib.create_state(trainable, frozen, {}, optax.adam(1e-3)), part


def test_grown_state_round_trip(tmp_path):
  state, part = _state(4, grown_to=6)
  ck = checkpoints.StageCheckpoints(str(tmp_path), 1, "dropin")
  try:
    ck.save("latest", state, {"stage": "dropin", "model": {"width": 6}})
    restored, meta = ck.restore("latest", state)
  finally:
    ck.close()
  assert meta["model"] == {"width": 6}
  for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  full = part.merge(restored.params, restored.frozen)
  assert full["fc"]["kernel"].shape == (3, 6)


def test_restore_into_wrong_widths_names_the_tensor(tmp_path):
  state, _ = _state(4)
  ck = checkpoints.StageCheckpoints(str(tmp_path), 0, "baseline")
  try:
    ck.save("latest", state, {"stage": "baseline"})
    wrong, _ = _state(5)
    with pytest.raises(checkpoints.CheckpointError, match="fc.*kernel"):
      ck.restore("latest", wrong)
  finally:
    ck.close()


def test_export_checks_format_and_shapes(tmp_path):
  variables = {"params": {"fc": {"kernel": np.ones((3, 4), np.float32)}}}
  path = str(tmp_path / "model")
  checkpoints.export_model(path, model_fields={"name": "x", "width": 4}, variables=variables,
                           info={"threshold": 0.5})
  meta, loaded = checkpoints.load_export(path)
  assert meta["threshold"] == 0.5 and meta["model"]["width"] == 4
  np.testing.assert_array_equal(loaded["params"]["fc"]["kernel"], variables["params"]["fc"]["kernel"])
  with open(os.path.join(path, "model.json")) as f:
    meta = json.load(f)
  meta["shapes"]["params/fc/kernel"] = [3, 5]
  with open(os.path.join(path, "model.json"), "w") as f:
    json.dump(meta, f)
  with pytest.raises(checkpoints.CheckpointError, match="params/fc/kernel"):
    checkpoints.load_export(path)
  meta["format"] = "jaxplastic-model/0"
  with open(os.path.join(path, "model.json"), "w") as f:
    json.dump(meta, f)
  with pytest.raises(checkpoints.CheckpointError, match="format"):
    checkpoints.load_export(path)
  with pytest.raises(checkpoints.CheckpointError, match="not an exported"):
    checkpoints.load_export(str(tmp_path / "nothing"))


def test_saves_are_keyed_by_the_given_step_and_never_overwritten(tmp_path):
  state, _ = _state(4)
  ck = checkpoints.StageCheckpoints(str(tmp_path), 0, "baseline")
  try:
    assert ck.step("best") is None and not ck.has("best")
    ck.save("best", state, {"progress": {"step": 7}}, step=7)
    other = state.replace(params=jax.tree_util.tree_map(lambda x: x + 1, state.params))
    ck.save("best", other, {"progress": {"step": 7}, "note": "second"}, step=7)  # same step: left as it was
    assert ck.step("best") == 7 and "note" not in ck.meta("best")
    restored, _ = ck.restore("best", state)
    np.testing.assert_array_equal(np.asarray(restored.params["fc"]["kernel"]),
                                  np.asarray(state.params["fc"]["kernel"]))
    with pytest.raises(ValueError, match="latest' or 'best"):
      ck.save("newest", state, {})
  finally:
    ck.close()
