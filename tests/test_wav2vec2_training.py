"""Wav2Vec 2.0 in the training pipeline: surgery on the encoder (dropin / plasticity), LoRA as a
grow stage, pretrained initialisation from a Hugging Face checkpoint, the wav2vec configs, and an
end-to-end run."""

import copy
import importlib
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from safetensors.numpy import load_file

from configs import base
from configs import la_wav2vec
from jaxplastic import checkpoints
from jaxplastic import experiment
from jaxplastic import hf_checkpoint
from jaxplastic import surgery
from jaxplastic import train as train_lib
from jaxplastic.models.wav2vec2 import (Wav2Vec2Classifier, Wav2Vec2ConfigError, from_hf_config,
                                        merge_lora, to_hf_config)

try:
  from tests import fixtures_data as fx
except ImportError:
  import fixtures_data as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_SAMPLES = 1600  # 20 frames through the tiny conv stack (x80)
RULES = Wav2Vec2Classifier.SURGERY_OUTPUT_AXES


def tiny_fields(**overrides):
  """A two-layer wav2vec2 (hidden 16, 2 heads x 8, FFN 32, 3 convs) with dropout on."""
  fields = dict(hidden_size=16,
                num_layers=2,
                num_heads=(2, 2),
                head_dim=(8, 8),
                ffn_dims=(32, 32),
                conv_dims=(8, 8, 8),
                conv_kernels=(10, 8, 8),
                conv_strides=(5, 4, 4),
                num_conv_pos_embeddings=8,
                num_conv_pos_embedding_groups=2,
                head_hidden=8,
                layerdrop=0.0)
  fields.update(overrides)
  return fields


# Tiny models run eagerly: op-by-op dispatch costs far less than compiling every variant's graph.
def _init(fields, seed=0):
  model = Wav2Vec2Classifier(**fields)
  rng = jax.random.PRNGKey(seed)
  variables = model.init({"params": rng, "dropout": rng}, jnp.zeros((2, NUM_SAMPLES)), train=False)
  return model, surgery._to_dict(variables)


def _audio(b=3, seed=7):
  return jax.random.normal(jax.random.PRNGKey(seed), (b, NUM_SAMPLES)) * 0.3


def _logits(model, variables, x):
  return np.asarray(model.apply(variables, x, train=False))


def _grow(small_fields, big_fields, init):
  small, v_small = _init(small_fields, 0)
  big, fresh = _init(big_fields, 1)
  plan = surgery.make_plan(v_small, fresh)
  return small, big, v_small, surgery.grow(v_small, fresh, plan, init=init, output_axes=RULES), plan


def _train(model, variables, plan, steps=3, patterns=("head/.*",)):
  """`steps` AdamW steps (weight decay on) under the dropin partition.

  Returns:
    (partition, merged params after training, trainable tree before training).
  """
  part = surgery.Partition.new_slices(plan, train_patterns=patterns)
  trainable, frozen = part.split(variables["params"])
  tx = optax.adamw(1e-2, weight_decay=0.1)
  state = train_lib.create_state(trainable, frozen, {}, tx)
  step = jax.jit(lambda s, b: train_lib.train_step(s,
                                                   b,
                                                   model=model,
                                                   tx=tx,
                                                   partition=part,
                                                   plan=plan,
                                                   loss_name="ce",
                                                   class_weights=None,
                                                   base_rng=jax.random.PRNGKey(0)))
  batch = {"audio": _audio(4), "label": jnp.array([0, 1, 0, 1]), "mask": jnp.ones(4)}
  for _ in range(steps):
    state, metrics = step(state, batch)
    assert int(metrics["nonfinite"]) == 0
  return part, part.merge(state.params, state.frozen), trainable


# --------------------------------------------------------------------------------------------------
# Surgery on the encoder.

GROWN = dict(num_heads=(2, 4), ffn_dims=(32, 48))  # layer 1: +2 heads of width 8, +16 FFN units


def test_function_preserving_growth_of_heads_and_ffn_keeps_logits():
  small, big, v_small, v_big, plan = _grow(tiny_fields(), tiny_fields(**GROWN),
                                           "function_preserving")
  assert {p.split("/")[2] for p in plan.grown} == {"layer1"} and not plan.added
  x = _audio()
  diff = np.abs(_logits(small, v_small, x) - _logits(big, v_big, x)).max()
  assert diff <= 1e-5, diff
  # The authors' random init of the new slices does change the function (so the check above can
  # fail).
  _, big, _, v_rand, _ = _grow(tiny_fields(), tiny_fields(**GROWN), "random")
  assert np.abs(_logits(small, v_small, x) - _logits(big, v_rand, x)).max() > 1e-4


@pytest.mark.parametrize("init", ["random", "function_preserving"])
def test_prune_of_grow_is_identity(init):
  _, _, v_small, v_big, _ = _grow(tiny_fields(), tiny_fields(**GROWN), init)
  back = surgery.flatten(surgery.prune(v_big, surgery.make_plan(v_small, v_big, what="prune")))
  small = surgery.flatten(v_small)
  assert back.keys() == small.keys()
  for k, v in small.items():
    np.testing.assert_array_equal(np.asarray(back[k]), np.asarray(v), err_msg=k)


def test_dropin_adamw_keeps_original_entries_bit_identical():
  _, big, v_small, v_big, plan = _grow(tiny_fields(), tiny_fields(**GROWN), "random")
  part, after, trainable = _train(big, v_big, plan)
  n_head = surgery.count(v_small["params"]["head"])
  assert surgery.count(trainable) == surgery.count(v_big["params"]) - surgery.count(
      v_small["params"]) + n_head
  after, before = surgery.flatten(after), surgery.flatten(v_big["params"])
  moved = 0
  for k, old in surgery.flatten(v_small["params"]).items():
    if k.startswith("head/"):
      continue
    lead = tuple(slice(0, s) for s in old.shape)
    np.testing.assert_array_equal(np.asarray(after[k])[lead], np.asarray(old), err_msg=k)
    moved += int(k.endswith("kernel") and np.any(np.asarray(after[k]) != np.asarray(before[k])))
  # Every grown kernel's new slices moved (biases of k may get an exactly-zero gradient: softmax
  # ignores them).
  assert moved >= sum(p.endswith("kernel") for p in plan.grown), moved


# --------------------------------------------------------------------------------------------------
# The authors' layouts: a parallel layer with a merge projector (base dropin), a wider layer between
# projectors (small-model plasticity).


def _layer_params(hidden, heads, head_dim, ffn):
  """One encoder layer: q, k, v [H, h, d] + bias [h, d]; out [h, d, H] + bias H; FFN H -> F -> H
  with biases; two LayerNorms (scale + bias)."""
  inner = heads * head_dim
  return 3 * (hidden * inner + inner) + inner * hidden + hidden + 2 * hidden * ffn + ffn + hidden \
      + 4 * hidden


def _plan_between(small_fields, big_fields):
  shapes = lambda f: {"params": hf_checkpoint.abstract_params(f)}  # noqa: E731
  return surgery.make_plan(shapes(small_fields), shapes(big_fields))


def _numel(plan, paths):
  return sum(int(np.prod(plan.big[p])) for p in paths)


def test_parallel_layer_at_wav2vec2_base_widths_adds_8268288_parameters():
  base_f = from_hf_config({}, mask_time_prob=0.05)
  plan = _plan_between(base_f, dict(base_f, parallel_layers=(0,) * 5 + (1,) + (0,) * 6))
  assert not plan.grown
  parallel = [p for p in plan.added if p.startswith("params/encoder/parallel5/")]
  merge = [p for p in plan.added if p.startswith("params/encoder/merge5/")]
  assert sorted(plan.added) == sorted(parallel + merge)
  assert _numel(plan, parallel) == _layer_params(768, 12, 64, 3072) == 7_087_872
  assert plan.big["params/encoder/merge5/kernel"] == (1536, 768)
  assert _numel(plan, merge) == 1_180_416
  assert _numel(plan, plan.added) == 8_268_288
  # Dropin: exactly the parallel layer, its merge and the head train.
  part = surgery.Partition.new_slices(plan, train_patterns=("head/.*",))
  head = {p for p in plan.big if p.startswith("params/head/")}
  assert set(part.whole_trainable) == {p[len("params/"):] for p in set(plan.added) | head}
  assert not part.layout


def test_parallel_layer_reads_the_layer_input_and_merges_layer_then_parallel():
  f = tiny_fields(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
  small, v_small = _init(f)
  big, fresh = _init(dict(f, parallel_layers=(0, 1)), 1)
  plan = surgery.make_plan(v_small, fresh)
  v_big = surgery.grow(v_small, fresh, plan)
  enc = v_big["params"]["encoder"]
  assert set(enc) - set(v_small["params"]["encoder"]) == {"parallel1", "merge1"}
  assert not _lora_leaves(enc["parallel1"])
  x = _audio()
  eye, zero = np.eye(16, dtype=np.float32), np.zeros((16, 16), np.float32)

  def with_merge(top, bottom):
    params = jax.tree_util.tree_map(lambda a: a, v_big["params"])
    params["encoder"]["merge1"] = {"kernel": jnp.asarray(np.concatenate([top, bottom])),
                                   "bias": jnp.zeros(16)}
    return _logits(big, {"params": params}, x)

  # merge = [I; 0] keeps layer 1's output: the baseline's function.
  np.testing.assert_allclose(with_merge(eye, zero), _logits(small, v_small, x), atol=1e-5)
  # merge = [0; I] keeps the parallel layer's: the baseline with layer 1's weights swapped for it.
  swapped = jax.tree_util.tree_map(lambda a: a, v_small["params"])
  swapped["encoder"]["layer1"] = enc["parallel1"]
  np.testing.assert_allclose(with_merge(zero, eye), _logits(small, {"params": swapped}, x),
                             atol=1e-5)
  # LayerDrop skips a layer together with its parallel layer and merge.
  drop = Wav2Vec2Classifier(**dict(f, parallel_layers=(0, 1), layerdrop=1.0))
  hidden = drop.apply(v_big, x, train=True, rngs={"dropout": jax.random.PRNGKey(0)},
                      method=Wav2Vec2Classifier.encode)["hidden_states"]
  np.testing.assert_array_equal(np.asarray(hidden[2]), np.asarray(hidden[0]))
  # LoRA stays on the original layers only, and merges as before.
  fields, merged = merge_lora(dict(f, parallel_layers=(0, 1), lora_rank=2),
                              _init(dict(f, parallel_layers=(0, 1), lora_rank=2))[1]["params"])
  assert fields["lora_rank"] == 0 and not _lora_leaves(merged)


# The authors' small model (hidden 256, 12 layers, 4 heads x 64, FFN 512) and its plasticity layout:
# layer 1 at 768 wide (12 heads, FFN 2048) between a 256 -> 768 and a 768 -> 256 projector.
SMALL = dict(from_hf_config({}), hidden_size=256, num_heads=(4,) * 12, head_dim=(64,) * 12,
             ffn_dims=(512,) * 12)
SMALL_PROJECTED = dict(SMALL, layer_hidden=(256, 768) + (256,) * 10,
                       num_heads=(4, 12) + (4,) * 10, ffn_dims=(512, 2048) + (512,) * 10)


def test_projected_layer_grows_its_own_axes_and_adds_two_projectors():
  plan = _plan_between(SMALL, SMALL_PROJECTED)
  att, ffn = "params/encoder/layer1/attention", "params/encoder/layer1/ffn"
  expected = {f"{att}/{p}/kernel": (0, 1) for p in "qkv"}  # [hidden, heads, head_dim]
  expected |= {f"{att}/{p}/bias": (0,) for p in "qkv"}
  expected |= {f"{att}/out/kernel": (0, 2), f"{att}/out/bias": (0,),
               f"{ffn}/intermediate/kernel": (0, 1), f"{ffn}/intermediate/bias": (0,),
               f"{ffn}/output/kernel": (0, 1), f"{ffn}/output/bias": (0,)}
  expected |= {f"params/encoder/layer1/{n}/{w}": (0,) for n in ("attn_norm", "final_norm")
               for w in ("scale", "bias")}
  assert dict(plan.grown) == expected
  assert plan.big[f"{att}/q/kernel"] == (768, 12, 64)
  assert plan.big[f"{ffn}/output/kernel"] == (2048, 768)
  assert sorted(plan.added) == [f"params/encoder/{p}/{w}" for p in ("proj_in1", "proj_out1")
                                for w in ("bias", "kernel")]
  assert _numel(plan, [p for p in plan.added if "proj_in1" in p]) == 256 * 768 + 768 == 197_376
  assert _numel(plan, [p for p in plan.added if "proj_out1" in p]) == 768 * 256 + 256 == 196_864
  grown_extra = sum(int(np.prod(plan.big[p])) - int(np.prod(plan.small[p])) for p in plan.grown)
  assert grown_extra == _layer_params(768, 12, 64, 2048) - _layer_params(256, 4, 64, 512)
  with pytest.raises(Wav2Vec2ConfigError, match="parallel layers"):
    to_hf_config(SMALL_PROJECTED)


def test_projected_layer_prunes_back_exactly():
  f = tiny_fields()
  grown_f = dict(f, layer_hidden=(16, 48), num_heads=(2, 6), ffn_dims=(32, 64))
  small, big, v_small, v_big, plan = _grow(f, grown_f, "random")
  assert sorted(p.split("/")[2] for p in plan.added) == ["proj_in1"] * 2 + ["proj_out1"] * 2
  assert np.all(np.isfinite(_logits(big, v_big, _audio())))
  back = surgery.flatten(surgery.prune(v_big, surgery.make_plan(v_small, v_big, what="prune")))
  small_flat = surgery.flatten(v_small)
  assert back.keys() == small_flat.keys()
  for k, v in small_flat.items():
    np.testing.assert_array_equal(np.asarray(back[k]), np.asarray(v), err_msg=k)


# --------------------------------------------------------------------------------------------------
# LoRA.


def _lora_leaves(params):
  return sorted(k for k in surgery.flatten(params) if k.endswith(("lora_a", "lora_b")))


def test_lora_grow_adds_only_lora_leaves_and_trains_only_them(tmp_path):
  r = 4
  small_f = tiny_fields(lora_alpha=8.0)
  small, big, v_small, v_big, plan = _grow(small_f, dict(small_f, lora_rank=r), "random")
  # The plan: nothing grows, the LoRA leaves are added, for q and v of each layer.
  assert not plan.grown
  assert list(plan.added) == ["params/" + k for k in _lora_leaves(v_big["params"])]
  assert len(plan.added) == 2 * 2 * 2
  flat = surgery.flatten(v_big["params"])
  assert flat["encoder/layer0/attention/q/lora_a"].shape == (16, r)
  assert flat["encoder/layer0/attention/v/lora_b"].shape == (r, 2, 8)
  assert all(np.all(np.asarray(flat[k]) == 0) for k in flat if k.endswith("lora_b"))
  x = _audio()
  y_small = _logits(small, v_small, x)
  np.testing.assert_array_equal(_logits(big, v_big, x), y_small)  # B = 0: unchanged at grow
  part, after, trainable = _train(big, v_big, plan)
  # Closed form: 2 targets x layers x r x (hidden + heads * head_dim), plus the head.
  closed = 2 * 2 * r * (16 + 2 * 8)
  assert surgery.count(trainable) == closed + surgery.count(v_small["params"]["head"])
  assert set(part.whole_trainable) == {p[len("params/"):] for p in plan.added} | {
      k for k in surgery.flatten(v_big["params"]) if k.startswith("head/")
  }
  a = surgery.flatten(after)
  for k, v in surgery.flatten(v_small["params"]).items():
    if not k.startswith("head/"):
      np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(v), err_msg=k)
  assert any(
      np.any(np.asarray(a[k]) != 0) for k in a if k.endswith("lora_b")), "LoRA B did not train"
  y_lora = _logits(big, {"params": after}, x)
  assert np.abs(y_lora - y_small).max() > 1e-6
  # Merging folds the updates into q/v: a plain model with the same function.
  fields, merged = merge_lora(dict(small_f, lora_rank=r, name="wav2vec2"), after)
  assert fields["lora_rank"] == 0 and fields["name"] == "wav2vec2" and not _lora_leaves(merged)
  plain = Wav2Vec2Classifier(**{k: v for k, v in fields.items() if k != "name"})
  np.testing.assert_allclose(_logits(plain, {"params": merged}, x), y_lora, atol=1e-5, rtol=1e-5)
  with pytest.raises(hf_checkpoint.CheckpointError, match="merge_lora"):
    hf_checkpoint.hf_tensors_from_params(dict(small_f, lora_rank=r), after)
  # The HF export merges LoRA itself and holds exactly the merged kernels.
  hf_checkpoint.save_hf_wav2vec2(tmp_path, dict(small_f, lora_rank=r), after)
  _, reloaded = hf_checkpoint.load_hf_wav2vec2(tmp_path)
  np.testing.assert_array_equal(
      np.asarray(reloaded["encoder"]["layer1"]["attention"]["v"]["kernel"]),
      np.asarray(merged["encoder"]["layer1"]["attention"]["v"]["kernel"]))
  with pytest.raises(Wav2Vec2ConfigError, match="expected 6 LoRA projections, params hold 4"):
    merge_lora(dict(small_f, lora_rank=r, lora_targets=("q", "k", "v")), after)


def test_growing_heads_of_a_lora_model_preserves_its_function():
  """Trained LoRA (B != 0) on every projection, then layer 1 grows: the LoRA rules of
  SURGERY_OUTPUT_AXES must zero exactly the new-input entries of A (out, output) so the grown model
  computes the same logits."""
  targets = ("q", "k", "v", "out", "intermediate", "output")
  f = tiny_fields(lora_rank=2, lora_targets=targets)
  model, v = _init(f)
  rng = np.random.default_rng(0)
  params = {
      k: (rng.standard_normal(x.shape).astype(np.float32) * 0.3 if k.endswith("lora_b") else x)
      for k, x in surgery.flatten(v["params"]).items()
  }
  v = {"params": surgery.unflatten(params)}
  big, fresh = _init(dict(f, **GROWN), 1)
  grown = surgery.grow(v,
                       fresh,
                       surgery.make_plan(v, fresh),
                       init="function_preserving",
                       output_axes=RULES)
  x = _audio()
  assert np.abs(_logits(model, v, x) - _logits(big, grown, x)).max() <= 1e-5


def test_lora_fields_are_validated():
  with pytest.raises(Wav2Vec2ConfigError, match="lora_targets"):
    _init(tiny_fields(lora_rank=2, lora_targets=("query",)))
  with pytest.raises(Wav2Vec2ConfigError, match="lora_rank"):
    _init(tiny_fields(lora_rank=-1))


def test_frozen_param_patterns_name_exactly_the_feature_encoder():
  model = Wav2Vec2Classifier(**tiny_fields(freeze_feature_encoder=True))
  paths = surgery.flatten(surgery.abstract_variables(model, (1, NUM_SAMPLES))["params"])
  frozen = surgery.match_patterns(paths, model.frozen_param_patterns(), "frozen")
  assert frozen == {p for p in paths if p.startswith("feature_encoder/")} and len(frozen) == 5
  assert Wav2Vec2Classifier(**tiny_fields()).frozen_param_patterns() == ()


# --------------------------------------------------------------------------------------------------
# Pretrained initialisation (a checkpoint written by our own exporter: no torch needed).


@pytest.fixture(scope="module")
def own_checkpoint(tmp_path_factory):
  fields = tiny_fields()
  _, v = _init(fields, seed=3)
  path = tmp_path_factory.mktemp("own_ckpt")
  hf_checkpoint.save_hf_wav2vec2(path, fields, v["params"])
  return path, fields, v


def test_init_from_pretrained_copies_every_backbone_tensor_exactly(own_checkpoint):
  path, fields, ref = own_checkpoint
  _, fresh = _init(dict(fields, lora_rank=2), seed=0)
  loaded = hf_checkpoint.init_from_pretrained(str(path), dict(fields, lora_rank=2, name="wav2vec2"),
                                              fresh)
  got, want, init = (surgery.flatten(t["params"]) for t in (loaded, ref, fresh))
  assert got.keys() == init.keys()
  for k in got:
    source = init if k.startswith("head/") or k.endswith(("lora_a", "lora_b")) else want
    np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(source[k]), err_msg=k)
  assert not np.array_equal(np.asarray(got["encoder/layer0/attention/q/kernel"]),
                            np.asarray(init["encoder/layer0/attention/q/kernel"]))


def test_init_from_pretrained_keeps_parallel_layers_fresh(own_checkpoint):
  """A grown parallel-layout model started from the pretrained checkpoint (the authors' unfrozen
  comparison): backbone from the checkpoint, parallel layer and merge from the fresh init."""
  path, fields, ref = own_checkpoint
  grown = dict(fields, parallel_layers=(1, 0))
  _, fresh = _init(grown, seed=0)
  loaded = hf_checkpoint.init_from_pretrained(str(path), grown, fresh)
  got, want, init = (surgery.flatten(t["params"]) for t in (loaded, ref, fresh))
  new = {k for k in got if k.startswith(("encoder/parallel0/", "encoder/merge0/", "head/"))}
  assert {k.split("/")[1] for k in new if k.startswith("encoder/")} == {"parallel0", "merge0"}
  for k in got:
    np.testing.assert_array_equal(np.asarray(got[k]), np.asarray((init if k in new else want)[k]),
                                  err_msg=k)


def test_init_from_pretrained_names_every_differing_field(own_checkpoint):
  path, fields, _ = own_checkpoint
  other = dict(fields, num_heads=(4, 4), head_dim=(4, 4), ffn_dims=(64, 64), layout="stable")
  _, fresh = _init(other)
  with pytest.raises(hf_checkpoint.CheckpointError) as e:
    hf_checkpoint.init_from_pretrained(str(path), other, fresh)
  msg = str(e.value)
  for name in ("num_heads", "head_dim", "ffn_dims", "layout"):
    assert f"--config.model.{name}=" in msg, msg
  assert "hidden_size" not in msg and "config.json" in msg
  assert '--config.model.num_heads="(2,2)"' in msg


# --------------------------------------------------------------------------------------------------
# Configs.

WAV2VEC_CONFIGS = [
    "la_wav2vec", "la_wav2vec:widen", "pa_wav2vec", "for_wav2vec", "la_wav2vec_small",
    "la_wav2vec_small_plasticity", "la_wav2vec_small_plasticity:widen", "pa_wav2vec_small_plasticity",
    "for_wav2vec_small_plasticity", "la_wav2vec_small_lora", "la_wav2vec_small_dropin", "demo_wav2vec"
]


@pytest.mark.parametrize("name", WAV2VEC_CONFIGS)
def test_configs_build_and_their_stages_are_valid_surgery(name):
  module, _, arg = name.partition(":")
  config = importlib.import_module(f"configs.{module}").get_config(*([arg] if arg else []))
  experiment.validate(_with_checkpoint(config))
  config.lock()
  shapes = []
  for st in config.stages:
    fields = experiment.model_fields(config.model, st.widths)
    experiment.build(fields)  # the fields are valid module fields
    shapes.append(surgery.abstract_variables(experiment.build(fields), (1, 4000)))
  for st, prev, cur in zip(config.stages[1:], shapes[:-1], shapes[1:]):
    if st.kind == "grow":
      plan = surgery.make_plan(prev if not st.start_from else shapes[0], cur)
      surgery.Partition.new_slices(plan, train_patterns=config.dropin.train_patterns)
    elif st.kind == "prune":
      surgery.make_plan(cur, prev, what="prune")


def _with_checkpoint(config):
  """A copy of `config` naming a pretrained checkpoint where it requires one (validate refuses '', reads
  nothing)."""
  config = copy.deepcopy(config)
  if config.model.get("pretrained") == "":
    config.model.pretrained = "/pretrained/wav2vec2-base"
  return config


def _config_plan(config, index=1, num_samples=4000):
  base_f = experiment.model_fields(config.model)
  big_f = experiment.model_fields(config.model, config.stages[index].widths)
  return surgery.make_plan(surgery.abstract_variables(experiment.build(base_f), (1, num_samples)),
                           surgery.abstract_variables(experiment.build(big_f), (1, num_samples)))


def test_la_wav2vec_layouts_grow_exactly_layer_5_and_lora_counts():
  config = la_wav2vec.get_config()
  assert config.model.pretrained == "" and config.model.freeze_feature_encoder
  assert config.optim.plateau_patience == 3 and config.data.num_samples == 64000
  assert config.model.mask_time_prob == 0.05 and config.optim.grad_clip_norm == 1.0
  # The authors' layout (default): a parallel layer + merge beside layer 5, nothing of the baseline grows.
  plan = _config_plan(config)
  assert not plan.grown
  assert {p.split("/")[2] for p in plan.added} == {"parallel5", "merge5"}
  assert plan.big["params/encoder/merge5/kernel"] == (1536, 768)
  assert config.stages[1].reinit == ("head/.*",) and config.dropin.train_patterns == ("head/.*",)
  # Our widening of layer 5.
  plan = _config_plan(la_wav2vec.get_config("widen"))
  assert {p.split("/")[2] for p in plan.grown} == {"layer5"} and not plan.added
  assert plan.big["params/encoder/layer5/attention/q/kernel"] == (768, 24, 64)
  assert plan.big["params/encoder/layer5/ffn/intermediate/kernel"] == (768, 6144)
  with pytest.raises(ValueError, match="layout"):
    la_wav2vec.get_config("sideways")
  lora = importlib.import_module("configs.la_wav2vec_small_lora").get_config()
  plan = _config_plan(lora)
  assert not plan.grown
  assert sum(int(np.prod(plan.big[p])) for p in plan.added) == 2 * 12 * 8 * (256 + 4 * 64) == 98304
  # A finished la_wav2vec_small run's export must be loadable as the LoRA run's baseline checkpoint.
  small = importlib.import_module("configs.la_wav2vec_small").get_config()
  assert experiment.module_fields(experiment.model_fields(
      small.model)) == experiment.module_fields(experiment.model_fields(lora.model))


def test_small_plasticity_layouts_and_importance_groups():
  """The authors' projected layout grows layer 1's own axes and adds its projectors; importance pruning finds one
  width group per changed field entry (layer_hidden[1], num_heads[1], ffn_dims[1]) and pruning drops the
  projectors. The widening option adds no tensor."""
  module = importlib.import_module("configs.la_wav2vec_small_plasticity")
  config = module.get_config()
  plan = _config_plan(config, num_samples=1600)
  assert sorted(p.split("/")[2] for p in plan.added) == ["proj_in1"] * 2 + ["proj_out1"] * 2
  assert {p.split("/")[2] for p in plan.grown} == {"layer1"}
  small_f = experiment.model_fields(config.model)
  grown_f = experiment.model_fields(config.model, config.stages[1].widths)
  changed = {k: grown_f[k] for k in experiment.width_changes(small_f, grown_f)}
  groups = surgery.width_groups(experiment.build, small_f, changed, (1, 1600))
  assert sorted(k for k, v in groups.items() if v) == ["ffn_dims[1]", "layer_hidden[1]", "num_heads[1]"]
  widened = _config_plan(module.get_config("widen"), num_samples=1600)
  assert not widened.added and {p.split("/")[2] for p in widened.grown} == {"layer1"}


def _run_py(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "run.py", "--config=configs/la_wav2vec.py", *args],
                        cwd=REPO,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120)


def test_run_py_without_pretrained_or_data_root_fails_clearly(tmp_path):
  out = _run_py(f"--workdir={tmp_path / 'a'}")
  assert out.returncode != 0
  assert "config.model.pretrained is empty" in out.stderr
  assert "--config.model.pretrained=" in out.stderr
  out = _run_py(f"--workdir={tmp_path / 'b'}", f"--config.model.pretrained={tmp_path}")
  assert out.returncode != 0
  assert "config.data.root" in out.stderr, out.stderr[-2000:]


# --------------------------------------------------------------------------------------------------
# End to end: a random-init transformers checkpoint -> baseline (0 epochs) -> dropin on the toy LA
# corpus.


def test_end_to_end_pretrained_baseline_then_dropin(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  hf = transformers.Wav2Vec2Model(
      transformers.Wav2Vec2Config(hidden_size=16,
                                  num_hidden_layers=2,
                                  num_attention_heads=2,
                                  intermediate_size=32,
                                  conv_dim=(8, 8, 8),
                                  conv_kernel=(10, 8, 8),
                                  conv_stride=(5, 4, 4),
                                  num_conv_pos_embeddings=8,
                                  num_conv_pos_embedding_groups=2))
  ckpt = tmp_path / "hf"
  hf.save_pretrained(str(ckpt))
  root = fx.make_separable_la(str(tmp_path / "toy"), n_train=16, n_dev=8, n_eval=8)

  config = la_wav2vec.get_config()
  model = ml_collections.ConfigDict(dict(config.model.to_dict(), **tiny_fields(layerdrop=0.1)))
  model.pretrained = str(ckpt)
  config.model = model
  config.data.root = root
  config.data.num_samples = NUM_SAMPLES
  config.data.batch_size = 8
  config.data.eval_batch_size = 8
  config.data.num_threads = 1
  config.train.progress = False
  config.train.log_every_steps = 1
  # The authors' layout at the tiny size: a parallel layer beside layer 1, a fresh head; SpecAugment on.
  config.stages = base.dropin_stages(la_wav2vec.parallel(config.model, 1), baseline_epochs=0, dropin_epochs=1,
                                     unfrozen=False, reinit=("head/.*",))
  assert config.model.mask_time_prob == 0.05
  summary = experiment.run(config, str(tmp_path / "run"))

  recs = summary["stages"]
  assert [r["stage"] for r in recs] == ["baseline", "dropin"]
  assert recs[0]["origin"] == f"pretrained {ckpt}" and recs[1]["end_step"] == 2
  meta, variables = checkpoints.load_export(str(tmp_path / "run" / "model"))
  assert tuple(meta["model"]["parallel_layers"]) == (0, 1)
  # Trainable: the parallel layer, its merge and the head, nothing else.
  added = surgery.count({k: v for k, v in variables["params"]["encoder"].items() if k in ("parallel1", "merge1")})
  assert recs[1]["params_trainable"] == added + surgery.count(variables["params"]["head"])
  # Dropin froze the pretrained entries, so pruning the export back to the baseline widths must give
  # exactly the transformers tensors: the pretrained init was exact and nothing original moved.
  small = surgery.abstract_variables(experiment.build(experiment.model_fields(config.model)),
                                     (1, NUM_SAMPLES))
  pruned = surgery.prune(variables, surgery.make_plan(small, variables, what="prune"))
  ours = hf_checkpoint.hf_tensors_from_params(
      experiment.module_fields({
          k: v for k, v in experiment.model_fields(config.model).items() if k != "name"
      }), pruned["params"])
  theirs = load_file(str(ckpt / "model.safetensors"))
  assert set(ours) == set(theirs) and "masked_spec_embed" in ours  # loaded, then frozen with the rest
  for k, v in ours.items():
    np.testing.assert_array_equal(v, theirs[k], err_msg=k)
  fresh = surgery.flatten(experiment.init_variables(
      experiment.build(experiment.model_fields(config.model, config.stages[1].widths)),
      jax.random.fold_in(jax.random.PRNGKey(config.seed), 1), NUM_SAMPLES)["params"])
  moved = [k for k, v in surgery.flatten(variables["params"]).items()
           if k.startswith(("encoder/parallel1/", "encoder/merge1/")) and np.any(np.asarray(v) != fresh[k])]
  assert moved, "the parallel layer did not train"
