"""Sharded training, surgery and checkpoints on 4 simulated CPU devices, against one device.

The 4-device checks run in ONE subprocess (XLA_FLAGS=--xla_force_host_platform_device_count=4; this process keeps the
single device tests/conftest.py gives the rest of the suite). It writes what it measured to JSON; the assertions and
their tolerances are here. Layouts: "single" (a mesh of one device), "data4" (data=4, parameters replicated) and
"fsdp" (data=2 x fsdp=2 with fsdp_min_size=16, so almost every tensor is sharded).

Tolerance: float32 sums over the batch are reordered when the batch is split over devices (per-device partial sums, then
an all-reduce), so the state after a few steps agrees to rounding, not bit for bit. It is compared leaf by leaf,
relative to the leaf's largest entry (`_rel_diff`: max |a - b| / max(max |b|, 1e-3)), over parameters, BatchNorm
statistics and optimizer moments. GRNN and Wav2Vec 2.0: RTOL = 2e-5 (measured: 3e-6). ResNet-18: RTOL_RESNET = 1e-3
(measured: 4e-5 on the development machine, 2.5e-4 on another 2-core machine of the same kind, whose CPU differs; 2e-4
was too tight there); its BatchNorm backward over 8 noise rows is ill-conditioned: on ONE device, merely compiling the
same step with and without XLA's optimisations moves the state by 1.5e-4 after one step. The steps use SGD with
momentum: Adam's first update is lr * sign(g), so a gradient entry that cancels to within rounding (e.g. a bias feeding
BatchNorm) could flip sign and move by a whole lr; SGD keeps the state difference proportional to the gradient
difference. A wrongly sharded batch or a missing gradient all-reduce changes the state by O(1) relative (checked by
breaking them). Everything that involves no float reduction (surgery, the dropin partition, checkpoint restore, frozen
originals) is compared bit for bit.
"""

import functools
import json
import os
import subprocess
import sys
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from jaxplastic import checkpoints  # noqa: E402
from jaxplastic import distributed  # noqa: E402
from jaxplastic import experiment  # noqa: E402
from jaxplastic import models  # noqa: E402
from jaxplastic import sharding  # noqa: E402
from jaxplastic import surgery  # noqa: E402
from jaxplastic import train as train_lib  # noqa: E402

# The state on 4 devices vs 1 after STEPS SGD steps: `_rel_diff` (see the module docstring). The steps move the
# parameters by over 1e-2 relative (checked), hundreds of times more.
RTOL = 2e-5
RTOL_RESNET = 1e-3
# bfloat16 compute on 4 devices (FSDP) vs float32 on 1: each tensor's change over the steps agrees with its float32
# change to this fraction of the largest float32 change (`_update_diff`). Measured: 0.08; bfloat16 on ONE device is
# itself 0.06-0.12 off the float32 update (8-bit mantissas through the MFCC front end and the GRU recurrence).
RTOL_BF16 = 0.25
STEPS = 2
BATCH = 8

GRNN = dict(name="grnn", hidden_sizes=(8, 8, 4, 4), num_classes=2, n_fft=1024, hop_length=512, num_coeffs=20,
            unroll=1, dtype="float32")
GRNN_GROWN = dict(GRNN, hidden_sizes=(8, 12, 4, 4))
RESNET = dict(name="resnet18", stage_widths=(4, 8, 8, 8), stem_width=4, num_frames=16, n_mels=16)
WAV2VEC = dict(name="wav2vec2", hidden_size=16, num_layers=2, num_heads=(2, 2), head_dim=(8, 8), ffn_dims=(32, 32),
               conv_dims=(8, 8, 8), conv_kernels=(10, 8, 8), conv_strides=(5, 4, 4), num_conv_pos_embeddings=8,
               num_conv_pos_embedding_groups=2, head_hidden=8, layerdrop=0.0, freeze_feature_encoder=False)
# name -> (model fields, samples per utterance)
MODELS = {"resnet18": (RESNET, 4096), "grnn": (GRNN, 4096), "wav2vec2": (WAV2VEC, 1600)}
# SGD learning rates: ResNet-18's BatchNorm gradients on noise are ~20, so it takes a smaller step.
LEARNING_RATES = {"resnet18": 0.002, "grnn": 0.05, "wav2vec2": 0.05}


def _optim(learning_rate=0.05):
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(dict(name="sgd", learning_rate=learning_rate, weight_decay=0.0,
                                        grad_clip_norm=0.0))


def _batches(num_samples, count=STEPS, seed=0):
  rng = np.random.default_rng(seed)
  return [{"audio": (rng.standard_normal((BATCH, num_samples)) * 0.1).astype(np.float32),
           "label": (np.arange(BATCH) % 2).astype(np.int32), "mask": np.ones(BATCH, np.float32)}
          for _ in range(count)]


def _save_with_expected(directory, stage_index, stage, state, model):
  """Saves `state` as the stage's latest checkpoint and its leaves as expected.npz beside it."""
  ck = checkpoints.StageCheckpoints(directory, stage_index, stage)
  try:
    ck.save("latest", state, {"stage": stage, "model": model})
  finally:
    ck.close()
  np.savez(os.path.join(directory, "expected.npz"), **_flat(state))


def _flat(tree):
  """'/'-joined leaf paths -> numpy (gathered)."""
  leaves = jax.tree_util.tree_flatten_with_path(sharding.to_host(tree))[0]
  return {jax.tree_util.keystr(k, simple=True, separator="/"): np.asarray(v) for k, v in leaves}


def _state(fields, layout, variables, partition=None):
  """The driver's stage state: split, optimizer init and copies under the mesh."""
  tx = train_lib.make_optimizer(_optim(LEARNING_RATES[fields["name"]]))
  part = partition or surgery.Partition.everything()
  variables = sharding.put(variables, layout)
  params = variables["params"]
  model_state = {k: v for k, v in variables.items() if k != "params"}
  state = sharding.apply(lambda p, m: train_lib.create_state(*part.split(p), m, tx), layout, params, model_state)
  return state, tx, part


def _train(fields, layout, variables, num_samples, *, partition=None, plan=None, steps=STEPS, seed=0):
  model = experiment.build(fields)
  state, tx, part = _state(fields, layout, variables, partition)
  train_fn, _ = train_lib.jit_steps(model=model, tx=tx, partition=part, plan=plan, loss_name="ce",
                                    class_weights=None, base_rng=jax.random.PRNGKey(1), layout=layout, state=state)
  for batch in _batches(num_samples, steps, seed):
    state, metrics = train_fn(state, sharding.global_batch(batch, layout))
  return state, train_fn, metrics


def _max_diff(a, b):
  fa, fb = _flat(a), _flat(b)
  assert fa.keys() == fb.keys()
  return max(float(np.max(np.abs(fa[k].astype(np.float64) - fb[k]))) if fa[k].size else 0.0 for k in fa)


def _rel_diff(a, b):
  """Over the leaves: max |a - b| relative to the leaf's largest |b| (at least 1e-3)."""
  fa, fb = _flat(a), _flat(b)
  assert fa.keys() == fb.keys()
  return max(float(np.max(np.abs(fa[k].astype(np.float64) - fb[k])) / max(float(np.max(np.abs(fb[k]))), 1e-3))
             for k in fa if fb[k].size)


def _update_diff(params, ref, init):
  """Over the tensors: max |(params - init) - (ref - init)| relative to the largest |ref - init| of the tensor."""
  fa, fb, fi = _flat(params), _flat(ref), _flat(init)
  assert fa.keys() == fb.keys() == fi.keys()
  return max(float(np.max(np.abs(fa[k].astype(np.float64) - fb[k])) / np.max(np.abs(fb[k].astype(np.float64) - fi[k])))
             for k in fa if fb[k].size)


def _bitwise(a, b):
  fa, fb = _flat(a), _flat(b)
  return fa.keys() == fb.keys() and all(fa[k].dtype == fb[k].dtype and np.array_equal(fa[k], fb[k]) for k in fa)


def _num_sharded(tree):
  return sum(any(p is not None for p in getattr(x.sharding, "spec", ())) for x in jax.tree_util.tree_leaves(tree))


def _layouts():
  devices = jax.devices()
  assert len(devices) == 4, devices
  return {"single": sharding.Layout(sharding.make_mesh(1, 1, devices[:1])),
          "data4": sharding.Layout(sharding.make_mesh(4, 1)),
          "fsdp": sharding.Layout(sharding.make_mesh(2, 2), fsdp_min_size=16)}


def _grown_dropin(layout):
  """The GRNN baseline (key 0) grown to GRNN_GROWN (fresh slices from key 1) under `layout`, with its dropin
  partition (old units never read new ones, the authors' GRU)."""
  n = MODELS["grnn"][1]
  small = experiment.init_variables(experiment.build(GRNN), jax.random.PRNGKey(0), n, layout)
  fresh = experiment.init_variables(experiment.build(GRNN_GROWN), jax.random.PRNGKey(1), n, layout)
  plan = surgery.make_plan(small, fresh)
  grown = sharding.apply(functools.partial(surgery.grow, plan=plan, init="random"), layout, small, fresh)
  part = surgery.Partition.new_slices(plan, recurrent=models.spec_of("grnn").recurrent, old_reads_new=False)
  return small, fresh, grown, plan, part


# ----------------------------------------------------------------------------------------------------------------
# The 4-device worker (runs in the subprocess).


def _check_train(layouts, refs):
  """Training steps: 4 devices (replicated, FSDP) vs 1, three models; fills `refs` with the 1-device runs."""
  out = {}
  for name, (fields, n) in MODELS.items():
    init = experiment.init_variables(experiment.build(fields), jax.random.PRNGKey(0), n, layouts["single"])
    ref, _, _ = _train(fields, layouts["single"], init, n)
    refs[name] = init, ref
    res = {"moved": _rel_diff(ref.params, sharding.put(init["params"], layouts["single"]))}
    for lname in ("data4", "fsdp"):
      state, _, metrics = _train(fields, layouts[lname], init, n)
      leaves = jax.tree_util.tree_leaves(state)
      res[lname] = {"rel_diff": _rel_diff(state, ref), "sharded_leaves": _num_sharded(state),
                    "large_leaves": sum(x.size >= layouts[lname].fsdp_min_size for x in leaves),
                    "leaves": len(leaves), "loss_finite": bool(np.isfinite(float(metrics["loss"]))),
                    "shardings_kept": all(x.sharding == s for x, s in zip(
                        leaves, jax.tree_util.tree_leaves(layouts[lname].tree(state))))}
    out[name] = res
  return out


def _check_bf16(layouts, refs):
  """bfloat16 compute with float32 parameters and optimizer state, on 4 devices (FSDP), against float32 on 1."""
  fields, n = dict(GRNN, dtype="bfloat16"), MODELS["grnn"][1]
  init, ref = refs["grnn"]
  state, train_fn, _ = _train(fields, layouts["fsdp"], init, n)
  hlo = train_fn.lower(state, sharding.global_batch(_batches(n, 1)[0], layouts["fsdp"])).as_text()
  return {"update_diff": _update_diff(state.params, ref.params, init["params"]), "rel_diff": _rel_diff(state, ref),
          "state_dtypes": sorted({str(x.dtype) for x in jax.tree_util.tree_leaves(state)}),
          "bf16_ops": hlo.count("bf16"), "sharded_leaves": _num_sharded(state)}


def _check_surgery(layouts):
  """Surgery under the FSDP mesh vs on one device, a dropin stage's steps, and a plasticity prune."""
  fsdp, single = layouts["fsdp"], layouts["single"]
  # Grow, split, prune of the grown model: bit for bit.
  small_h, fresh_h, grown_h, plan, part = _grown_dropin(single)
  small_s, fresh_s, grown_s, _, _ = _grown_dropin(fsdp)
  split_h = sharding.apply(part.split, single, grown_h["params"])
  split_s = sharding.apply(part.split, fsdp, grown_s["params"])
  prune_plan = surgery.make_plan(small_h, grown_h, what="prune")
  back = sharding.apply(functools.partial(surgery.prune, plan=prune_plan), fsdp, grown_s)
  res = {"init": _bitwise(small_s, small_h) and _bitwise(fresh_s, fresh_h), "grow": _bitwise(grown_s, grown_h),
         "grown_sharded_leaves": _num_sharded(grown_s), "split": _bitwise(split_s, split_h),
         "prune_of_grow": _bitwise(back, small_h)}

  # A dropin stage: STEPS steps on the grown model, originals frozen, on 4 devices vs 1.
  n = MODELS["grnn"][1]
  drop_h, _, _ = _train(GRNN_GROWN, single, grown_h, n, partition=part, plan=plan)
  drop_s, _, _ = _train(GRNN_GROWN, fsdp, grown_s, n, partition=part, plan=plan)
  full_h = sharding.apply(part.merge_variables, single, drop_h.params, drop_h.frozen, drop_h.model_state)
  full_s = sharding.apply(part.merge_variables, fsdp, drop_s.params, drop_s.frozen, drop_s.model_state)
  orig_h, orig_s = _flat(small_h["params"]), _flat(full_s["params"])
  res["dropin_rel_diff"] = _rel_diff(drop_s, drop_h)
  res["dropin_moved"] = _rel_diff(full_h, grown_h)
  res["dropin_originals_bitwise"] = all(
      np.array_equal(orig_s[k][tuple(slice(0, d) for d in v.shape)], v) for k, v in orig_h.items())
  isolated = [k for k in _flat(drop_s.frozen) if "zero_axis" in k]
  res["dropin_zero_blocks"] = len(isolated)
  res["dropin_zero_blocks_zero"] = all(not np.any(_flat(drop_s.frozen)[k]) for k in isolated)

  # A plasticity prune of the trained grown model under the mesh (the added units, by importance, and a gather of
  # chosen units): bit for bit what one device computes from the same values.
  host_full = sharding.to_host(full_s)
  pruned_s = sharding.apply(functools.partial(surgery.prune, plan=prune_plan), fsdp, full_s)
  res["prune"] = _bitwise(pruned_s, surgery.prune(host_full, prune_plan))
  groups = surgery.width_groups(experiment.build, GRNN, GRNN_GROWN, (1, n))
  keep_s = surgery.keep_most_important(surgery.unit_importance(full_s, groups), prune_plan, groups)
  keep_h = surgery.keep_most_important(surgery.unit_importance(host_full, groups), prune_plan, groups)
  res["importance_keep_same"] = ({k: v.tolist() for k, v in keep_s.items()}
                                 == {k: v.tolist() for k, v in keep_h.items()})
  imp_s = sharding.apply(functools.partial(surgery.prune, plan=prune_plan, keep=keep_s, groups=groups), fsdp, full_s)
  res["prune_importance"] = _bitwise(imp_s, surgery.prune(host_full, prune_plan, keep=keep_h, groups=groups))
  # Old and new units mixed (the importance scores above may keep the first units, which slicing also keeps).
  mixed = {k: np.array([0, 2, 3, 5, 7, 9, 10, 11]) for k in keep_s}
  mix_s = sharding.apply(functools.partial(surgery.prune, plan=prune_plan, keep=mixed, groups=groups), fsdp, full_s)
  mix_h = surgery.prune(host_full, prune_plan, keep=mixed, groups=groups)
  res["prune_gather"] = _bitwise(mix_s, mix_h) and not _bitwise(mix_s, pruned_s)
  return res


def _check_checkpoint(layouts, ckpt_in, ckpt_out):
  """A grown dropin stage saved on 1 device (by the test process) restored on the FSDP mesh; then pruned there and
  saved on 4 devices, for the test process to restore on 1."""
  fsdp = layouts["fsdp"]
  small, _, grown, _, part = _grown_dropin(fsdp)
  like, _, _ = _state(GRNN_GROWN, fsdp, grown, part)
  ck = checkpoints.StageCheckpoints(ckpt_in, 1, "dropin")
  try:
    restored, meta = ck.restore("latest", like)
  finally:
    ck.close()
  expected = dict(np.load(os.path.join(ckpt_in, "expected.npz")))
  got = _flat(restored)
  out = {"restored_bitwise": got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got),
         "restored_sharded_leaves": _num_sharded(restored), "meta": meta,
         "restored_shardings": all(x.sharding == y.sharding for x, y in zip(jax.tree_util.tree_leaves(restored),
                                                                            jax.tree_util.tree_leaves(like)))}
  full = sharding.apply(part.merge_variables, fsdp, restored.params, restored.frozen, restored.model_state)
  pruned = sharding.apply(functools.partial(surgery.prune, plan=surgery.make_plan(small, grown, what="prune")),
                          fsdp, full)
  state, _, _ = _state(GRNN, fsdp, pruned)
  state = state.replace(step=sharding.put(np.int32(7), fsdp))
  out["saved_sharded_leaves"] = _num_sharded(state)
  _save_with_expected(ckpt_out, 2, "pruned", state, GRNN)
  return out


def _worker(out_path, ckpt_in, ckpt_out):
  """Runs every check; a check that raises records its traceback under "error" and the others still run."""
  layouts, refs, out = _layouts(), {}, {}
  checks = {"train": lambda: _check_train(layouts, refs), "bf16": lambda: _check_bf16(layouts, refs),
            "surgery": lambda: _check_surgery(layouts),
            "checkpoint": lambda: _check_checkpoint(layouts, ckpt_in, ckpt_out)}
  for name, check in checks.items():
    try:
      out[name] = check()
    except Exception:  # pylint: disable=broad-except
      out[name] = {"error": traceback.format_exc()}
  with open(out_path, "w") as f:
    json.dump(out, f, indent=1)


# ----------------------------------------------------------------------------------------------------------------
# The tests (this process: one device).


def _subprocess_env(devices):
  return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
              JAX_DISABLE_MOST_OPTIMIZATIONS="true", PYTHONPATH=REPO)


@pytest.fixture(scope="module")
def four(tmp_path_factory):
  """Saves a grown dropin checkpoint on this process's one device, runs the 4-device worker, returns its results and
  the folder of the checkpoint it saved."""
  base = tmp_path_factory.mktemp("sharding")
  ckpt_in, ckpt_out, out = str(base / "in"), str(base / "out"), str(base / "results.json")
  single = sharding.single_device()
  _, _, grown, _, part = _grown_dropin(single)
  state, _, _ = _state(GRNN_GROWN, single, grown, part)
  _save_with_expected(ckpt_in, 1, "dropin", state, GRNN_GROWN)
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), out, ckpt_in, ckpt_out], env=_subprocess_env(4),
                        capture_output=True, text=True, timeout=900, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-5000:]
  with open(out) as f:
    return json.load(f), ckpt_out


def _section(four, name):
  """One check's results from the worker; a check that raised fails here with its traceback."""
  res = four[0][name]
  assert "error" not in res, res.get("error")
  return res


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("layout", ["data4", "fsdp"])
def test_train_steps_on_four_devices_match_one(four, model, layout):
  res = _section(four, "train")[model]
  got = res[layout]
  assert got["loss_finite"] and got["shardings_kept"]
  rtol = RTOL_RESNET if model == "resnet18" else RTOL
  assert res["moved"] > 50 * rtol, res  # the steps really changed the parameters
  assert got["rel_diff"] <= rtol, got
  if layout == "fsdp":  # the rule really sharded the state: every tensor of fsdp_min_size entries or more, here
    assert got["sharded_leaves"] == got["large_leaves"] > 0, got
  else:
    assert got["sharded_leaves"] == 0


def test_bfloat16_compute_keeps_float32_state(four):
  res = _section(four, "bf16")
  assert res["state_dtypes"] == ["float32", "int32"]  # parameters, moments, statistics; the step counter
  assert res["bf16_ops"] > 0 and res["sharded_leaves"] > 0  # the compiled, FSDP-sharded step computes in bfloat16
  assert RTOL < res["rel_diff"], res  # not the float32 computation
  assert res["update_diff"] <= RTOL_BF16, res


def test_surgery_under_the_mesh_is_bitwise_what_one_device_computes(four):
  res = _section(four, "surgery")
  assert res["grown_sharded_leaves"] > 0
  for key in ("init", "grow", "split", "prune_of_grow", "prune", "prune_importance", "importance_keep_same",
              "prune_gather"):
    assert res[key] is True, key


def test_dropin_stage_and_plasticity_prune_on_four_devices_match_one(four):
  res = _section(four, "surgery")
  assert res["dropin_originals_bitwise"]  # frozen originals stay exactly the baseline's
  assert res["dropin_zero_blocks"] > 0 and res["dropin_zero_blocks_zero"]
  assert res["dropin_moved"] > 50 * RTOL, res
  assert res["dropin_rel_diff"] <= RTOL, res


def test_checkpoint_saved_on_one_device_restores_on_four_and_back(four):
  ckpt_out = four[1]
  ck = _section(four, "checkpoint")
  assert ck["restored_bitwise"] and ck["restored_shardings"]
  assert ck["restored_sharded_leaves"] > 0 and ck["saved_sharded_leaves"] > 0
  assert ck["meta"]["model"]["hidden_sizes"] == list(GRNN_GROWN["hidden_sizes"])
  # The pruned stage saved on 4 devices (FSDP-sharded) restores here, on one device.
  single = sharding.single_device()
  small = experiment.init_variables(experiment.build(GRNN), jax.random.PRNGKey(5), MODELS["grnn"][1], single)
  like, _, _ = _state(GRNN, single, small)
  stage = checkpoints.StageCheckpoints(ckpt_out, 2, "pruned")
  try:
    restored, meta = stage.restore("latest", like)
  finally:
    stage.close()
  assert meta["stage"] == "pruned" and int(restored.step) == 7
  expected = dict(np.load(os.path.join(ckpt_out, "expected.npz")))
  got = _flat(restored)
  assert got.keys() == expected.keys()
  for k in got:
    np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
  assert all(len(x.sharding.device_set) == 1 for x in jax.tree_util.tree_leaves(restored))


# ----------------------------------------------------------------------------------------------------------------
# One device: the rule, the mesh and the settings (no subprocess).


def test_fsdp_rule_shards_the_largest_divisible_axis():
  layout = sharding.Layout(sharding.make_mesh(1, 1), fsdp_min_size=16)
  assert layout.leaf_spec((64, 32)) == jax.sharding.PartitionSpec()  # fsdp=1: everything replicated

  class Fake(sharding.Layout):
    fsdp = 4
  rule = Fake(layout.mesh, fsdp_min_size=16).leaf_spec
  P = jax.sharding.PartitionSpec
  assert rule((6, 32)) == P(None, "fsdp")  # 32 is the largest axis divisible by 4
  assert rule((64, 32)) == P("fsdp")
  assert rule((3, 3, 8, 8)) == P(None, None, None, "fsdp")  # ties: the last axis (outputs)
  assert rule((5, 7)) == P()  # no axis divisible by 4
  assert rule((8,)) == P()  # fewer entries than fsdp_min_size
  assert rule(()) == P()


def test_mesh_sizes_and_batch_divisibility_are_checked():
  with pytest.raises(ValueError, match="data x fsdp must equal the 1 devices"):
    sharding.make_mesh(2, 1)
  with pytest.raises(ValueError, match="at most one"):
    sharding.make_mesh(-1, -1)
  layout = sharding.Layout(sharding.make_mesh(-1, 1))
  assert layout.mesh.shape == {"data": 1, "fsdp": 1}
  layout.check_batch_size(5, "config.data.batch_size")  # one device: anything goes

  class Four(sharding.Layout):
    num_devices = 4
  with pytest.raises(ValueError, match="config.data.batch_size = 6 is the global batch.*multiple of 4"):
    Four(layout.mesh).check_batch_size(6, "config.data.batch_size")
  assert sharding.process_rows(8, 1, 2) == slice(4, 8)
  with pytest.raises(ValueError, match="cannot be split over 3 processes"):
    sharding.process_rows(8, 0, 3)


def test_distributed_starts_only_when_asked_or_detected(monkeypatch):
  import ml_collections  # pylint: disable=g-import-not-at-top
  for var in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_PROCID", "OMPI_COMM_WORLD_SIZE",
              "OMPI_MCA_orte_hnp_uri", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS"):
    monkeypatch.delenv(var, raising=False)
  assert distributed.detected_cluster() is None
  monkeypatch.setenv("SLURM_NTASKS", "1")
  monkeypatch.setenv("SLURM_JOB_ID", "5")
  monkeypatch.setenv("SLURM_PROCID", "0")
  assert distributed.detected_cluster() is None  # a one-task SLURM job is a single process
  monkeypatch.setenv("SLURM_NTASKS", "4")
  assert distributed.detected_cluster() == "slurm"
  monkeypatch.delenv("SLURM_NTASKS")
  monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "10.0.0.1,10.0.0.2")
  assert distributed.detected_cluster() == "cloud-tpu"
  monkeypatch.delenv("TPU_WORKER_HOSTNAMES")
  cfg = ml_collections.ConfigDict(dict(initialize="auto", coordinator_address="", num_processes=-1, process_id=-1,
                                       cpu_collectives="gloo"))
  assert distributed.initialize(cfg) is False  # nothing detected: one process, jax.distributed untouched
  cfg.initialize = "off"
  monkeypatch.setenv("SLURM_NTASKS", "4")
  assert distributed.initialize(cfg) is False  # "off" wins over detection
  cfg.initialize = "sometimes"
  with pytest.raises(ValueError, match="auto"):
    distributed.initialize(cfg)
  assert not jax.distributed.is_initialized()


if __name__ == "__main__":
  jax.config.update("jax_disable_most_optimizations", True)
  _worker(*sys.argv[1:])
