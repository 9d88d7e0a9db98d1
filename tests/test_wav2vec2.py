"""Wav2Vec2Classifier vs transformers' Wav2Vec2Model, HF checkpoint import/export, width fields."""
import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxplastic.hf_checkpoint import CheckpointError, load_hf_wav2vec2, save_hf_wav2vec2
from jaxplastic.models.wav2vec2 import (Wav2Vec2Classifier, Wav2Vec2ConfigError, from_hf_config,
                                        to_hf_config)

TOL = 1e-4
LAYOUTS = {
    "base": {
        "do_stable_layer_norm": False,
        "feat_extract_norm": "group",
        "conv_bias": False,
        "num_conv_pos_embeddings": 16
    },  # even kernel: SamePad removes one frame
    "stable": {
        "do_stable_layer_norm": True,
        "feat_extract_norm": "layer",
        "conv_bias": True,
        "num_conv_pos_embeddings": 15,
        # Different activations catch a mix-up of hidden_act and feat_extract_activation.
        "hidden_act": "gelu_new",
        "feat_extract_activation": "relu",
    },
}


def _tiny_hf_kwargs(layout):
  return dict(hidden_size=32,
              num_hidden_layers=2,
              num_attention_heads=4,
              intermediate_size=64,
              conv_dim=(16, 24, 24),
              conv_stride=(5, 2, 2),
              conv_kernel=(10, 3, 2),
              num_conv_pos_embedding_groups=4,
              **LAYOUTS[layout])


def _audio(batch=2, samples=3200, seed=0):
  return (np.random.RandomState(seed).randn(batch, samples) * 0.1).astype(np.float32)


def _hf_model(layout, cls_name="Wav2Vec2Model", seed=0):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(seed)
  config = transformers.Wav2Vec2Config(**_tiny_hf_kwargs(layout))
  return getattr(transformers, cls_name)(config).eval()


def _hf_outputs(model, audio):
  import torch
  with torch.no_grad():
    out = model(torch.from_numpy(audio), output_hidden_states=True)
  return {
      "extract_features": out.extract_features.numpy(),
      "hidden_states": [h.numpy() for h in out.hidden_states],
      "last_hidden_state": out.last_hidden_state.numpy()
  }


def _ours(fields, params, audio):
  model = Wav2Vec2Classifier(**fields)
  out = model.apply({"params": params},
                    jnp.asarray(audio),
                    train=False,
                    method=Wav2Vec2Classifier.encode)
  return jax.tree_util.tree_map(np.asarray, out)


def _max_diff(ours, ref):
  diffs = [
      np.abs(ours["extract_features"] - ref["extract_features"]).max(),
      np.abs(ours["last_hidden_state"] - ref["last_hidden_state"]).max()
  ]
  assert len(ours["hidden_states"]) == len(ref["hidden_states"])
  for a, b in zip(ours["hidden_states"], ref["hidden_states"]):
    assert a.shape == b.shape
    diffs.append(np.abs(a - b).max())
  return float(max(diffs))


@pytest.fixture(scope="module", params=["base", "stable"])
def saved(request, tmp_path_factory):
  """A random-init HF model of one layout, saved to disk, with its reference outputs."""
  layout = request.param
  model = _hf_model(layout)
  path = tmp_path_factory.mktemp(f"hf_{layout}")
  model.save_pretrained(str(path))
  audio = _audio()
  return {
      "layout": layout,
      "path": path,
      "model": model,
      "audio": audio,
      "ref": _hf_outputs(model, audio)
  }


def test_matches_transformers(saved):
  fields, params = load_hf_wav2vec2(saved["path"])
  assert fields["layout"] == saved["layout"]
  diff = _max_diff(_ours(fields, params, saved["audio"]), saved["ref"])
  print(f"[{saved['layout']}] max |ours - transformers| over all hidden states: {diff:.3e}")
  assert diff <= TOL
  # transformers' default SpecAugment settings come along, with the learned mask embedding.
  assert (fields["mask_time_prob"], fields["mask_time_length"],
          fields["mask_time_min_masks"]) == (0.05, 10, 2)
  np.testing.assert_array_equal(np.asarray(params["masked_spec_embed"]),
                                saved["model"].masked_spec_embed.detach().numpy())


def test_given_time_mask_matches_transformers(saved):
  """The same boolean time mask through transformers' `mask_time_indices` and ours."""
  import torch
  fields, params = load_hf_wav2vec2(saved["path"])
  frames = saved["ref"]["last_hidden_state"].shape[1]
  mask = np.zeros((2, frames), bool)
  mask[0, 1:4] = mask[1, 0:2] = mask[1, frames - 3:] = True
  with torch.no_grad():
    out = saved["model"](torch.from_numpy(saved["audio"]),
                         mask_time_indices=torch.from_numpy(mask),
                         output_hidden_states=True)
  ref = {
      "extract_features": out.extract_features.numpy(),
      "hidden_states": [h.numpy() for h in out.hidden_states],
      "last_hidden_state": out.last_hidden_state.numpy()
  }
  model = Wav2Vec2Classifier(**fields)
  ours = model.apply({"params": params}, jnp.asarray(saved["audio"]), train=False,
                     mask_time_indices=jnp.asarray(mask), method=Wav2Vec2Classifier.encode)
  assert _max_diff(jax.tree_util.tree_map(np.asarray, ours), ref) <= TOL
  assert np.abs(ref["last_hidden_state"] - saved["ref"]["last_hidden_state"]).max() > 1e-2


def test_final_norm_only_in_stable_layout(saved):
  # Guards the layout switch: only "stable" adds a LayerNorm after the last layer, in ours as in HF.
  fields, params = load_hf_wav2vec2(saved["path"])
  ours = _ours(fields, params, saved["audio"])
  gap = np.abs(ours["hidden_states"][-1] - ours["last_hidden_state"]).max()
  assert (gap > 1e-2) == (saved["layout"] == "stable")


def test_legacy_weight_norm_names_and_prefix(saved, tmp_path):
  """Old `weight_g/weight_v` names, a `wav2vec2.` prefix and pre-training tensors all load."""
  tensors = load_file(str(saved["path"] / "model.safetensors"))
  legacy = {}
  for name, value in tensors.items():
    name = name.replace("parametrizations.weight.original0", "weight_g")
    name = name.replace("parametrizations.weight.original1", "weight_v")
    legacy["wav2vec2." + name] = value
  legacy["quantizer.codevectors"] = np.zeros((1, 8, 4), np.float32)
  legacy["project_q.weight"] = np.zeros((4, 4), np.float32)
  assert any(k.endswith("pos_conv_embed.conv.weight_g") for k in legacy)
  save_file(legacy, str(tmp_path / "model.safetensors"))
  (tmp_path / "config.json").write_text((saved["path"] / "config.json").read_text())
  fields, params = load_hf_wav2vec2(tmp_path)
  assert _max_diff(_ours(fields, params, saved["audio"]), saved["ref"]) <= TOL


@pytest.mark.parametrize("cls_name",
                         ["Wav2Vec2ForPreTraining", "Wav2Vec2ForSequenceClassification"])
def test_task_model_checkpoints(cls_name, tmp_path):
  model = _hf_model("base", cls_name)
  model.save_pretrained(str(tmp_path))
  fields, params = load_hf_wav2vec2(tmp_path, num_classes=3)
  audio = _audio(batch=1)
  assert _max_diff(_ours(fields, params, audio), _hf_outputs(model.wav2vec2, audio)) <= TOL
  assert params["head"]["dense2"]["kernel"].shape == (256, 3)


def test_export_roundtrip(saved, tmp_path, caplog):
  transformers = pytest.importorskip("transformers")
  fields, params = load_hf_wav2vec2(saved["path"])
  save_hf_wav2vec2(tmp_path, fields, params)
  reloaded, info = transformers.Wav2Vec2Model.from_pretrained(str(tmp_path),
                                                              output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
  ref = _hf_outputs(reloaded.eval(), saved["audio"])
  assert _max_diff(jax.tree_util.tree_map(np.asarray, saved["ref"]), ref) == 0.0
  np.testing.assert_array_equal(reloaded.masked_spec_embed.detach().numpy(),
                                np.asarray(params["masked_spec_embed"]))
  # Import -> export -> import is bit-exact.
  fields2, params2 = load_hf_wav2vec2(tmp_path)
  assert fields2 == fields
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(params2)
  for (path, a), b in zip(
      jax.tree_util.tree_flatten_with_path(params)[0], jax.tree_util.tree_leaves(params2)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))
  # Leaves a stock HF model has no place for (e.g. a dropin branch) or wrong shapes are refused.
  extra = {**params, "encoder": {**params["encoder"], "branch": {"kernel": jnp.zeros((2, 2))}}}
  with pytest.raises(CheckpointError, match="not exportable: \\['encoder/branch/kernel'\\]"):
    save_hf_wav2vec2(tmp_path / "bad", fields, extra)
  with pytest.raises(CheckpointError, match="ffn/intermediate/kernel"):
    save_hf_wav2vec2(tmp_path / "bad", {**fields, "ffn_dims": (48, 48)}, params)
  # A model without masking exports no embedding and a config without masking; transformers then
  # expects none. The checkpoint's embedding is ignored (and listed) when our model has none.
  nomask = {**fields, "mask_time_prob": 0.0}
  plain = {k: v for k, v in params.items() if k != "masked_spec_embed"}
  with pytest.raises(CheckpointError, match="not exportable: \\['masked_spec_embed'\\]"):
    save_hf_wav2vec2(tmp_path / "bad", nomask, params)
  save_hf_wav2vec2(tmp_path / "nomask", nomask, plain)
  reloaded, info = transformers.Wav2Vec2Model.from_pretrained(str(tmp_path / "nomask"),
                                                              output_loading_info=True)
  assert not info["missing_keys"] and not info["unexpected_keys"]
  assert not hasattr(reloaded, "masked_spec_embed")
  with caplog.at_level(logging.INFO):
    _, loaded = load_hf_wav2vec2(tmp_path, mask_time_prob=0.0)
  assert "masked_spec_embed" not in loaded and "masked_spec_embed" in caplog.text
  # A model that masks, from a checkpoint without the embedding: fresh U[0, 1) values, as HF.
  with caplog.at_level(logging.WARNING):
    nf, fresh = load_hf_wav2vec2(tmp_path / "nomask", mask_time_prob=0.05)
  assert "masked_spec_embed" in caplog.text and fresh["masked_spec_embed"].shape == (32,)
  assert 0.0 <= float(fresh["masked_spec_embed"].min()) < float(fresh["masked_spec_embed"].max()) < 1


def _write(tmp_path, tensors, config_text):
  save_file(tensors, str(tmp_path / "model.safetensors"))
  (tmp_path / "config.json").write_text(config_text)


def test_missing_and_unexpected_tensors_are_named(saved, tmp_path):
  tensors = load_file(str(saved["path"] / "model.safetensors"))
  config_text = (saved["path"] / "config.json").read_text()
  dropped = "encoder.layers.1.feed_forward.output_dense.bias"
  _write(tmp_path, {k: v for k, v in tensors.items() if k != dropped}, config_text)
  with pytest.raises(CheckpointError, match=r"missing: \['encoder\.layers\.1\.feed_forward"):
    load_hf_wav2vec2(tmp_path)
  _write(tmp_path, {
      **tensors, "encoder.layers.0.adapter.weight": np.zeros(3, np.float32)
  }, config_text)
  with pytest.raises(CheckpointError, match=r"unexpected.*encoder\.layers\.0\.adapter\.weight"):
    load_hf_wav2vec2(tmp_path)
  # A config claiming more layers than the weights hold names every missing tensor of layer 2.
  config = json.loads(config_text)
  config["num_hidden_layers"] = 3
  _write(tmp_path, tensors, json.dumps(config))
  with pytest.raises(CheckpointError, match=r"encoder\.layers\.2\.attention\.q_proj\.weight"):
    load_hf_wav2vec2(tmp_path)
  config["num_hidden_layers"], config["intermediate_size"] = 2, 48
  _write(tmp_path, tensors, json.dumps(config))
  with pytest.raises(CheckpointError, match=r"intermediate_dense\.weight \(64, 32\)"):
    load_hf_wav2vec2(tmp_path)


def test_unreachable_hub_id_says_offline():
  with pytest.raises(CheckpointError, match="local directory"):
    load_hf_wav2vec2("jaxplastic-tests/definitely-not-a-real-model-xyz")


# ------------------------------------------------------------------------------------------------
# Width fields, paths and module options (no torch needed).


def _tiny_fields(**overrides):
  return from_hf_config(_tiny_hf_kwargs("base"), **overrides)


def _init(fields, samples=3200):
  model = Wav2Vec2Classifier(**fields)
  audio = jnp.asarray(_audio(samples=samples))
  return model, model.init(jax.random.PRNGKey(0), audio, train=False)["params"], audio


def _shapes(params):
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {tuple(k.key for k in path): v.shape for path, v in flat}


def test_from_hf_config_defaults_are_wav2vec2_base():
  fields = from_hf_config({})
  assert fields["hidden_size"] == 768 and fields["num_layers"] == 12
  assert fields["num_heads"] == (12,) * 12 and fields["head_dim"] == (64,) * 12
  assert fields["ffn_dims"] == (3072,) * 12 and fields["layout"] == "base"
  assert to_hf_config(fields)["intermediate_size"] == 3072
  with pytest.raises(Wav2Vec2ConfigError, match="num_clases"):
    from_hf_config({}, num_clases=2)
  with pytest.raises(Wav2Vec2ConfigError, match="add_adapter"):
    from_hf_config({"add_adapter": True})


def test_grown_widths_keep_paths_and_grow_only_width_axes():
  base = _tiny_fields()
  grown = _tiny_fields(num_heads=(4, 6), head_dim=(8, 12), ffn_dims=(64, 160))
  model, params, audio = _init(grown)
  logits = model.apply({"params": params}, audio, train=False)
  assert logits.shape == (2, 2) and np.all(np.isfinite(np.asarray(logits)))
  s0, s1 = _shapes(_init(base)[1]), _shapes(params)
  assert s0.keys() == s1.keys()
  changed = {"/".join(k): (s0[k], s1[k]) for k in s0 if s0[k] != s1[k]}
  att = "encoder/layer1/attention"
  assert changed == {
      f"{att}/{p}/kernel": ((32, 4, 8), (32, 6, 12)) for p in "qkv"
  } | {
      f"{att}/{p}/bias": ((4, 8), (6, 12)) for p in "qkv"
  } | {
      f"{att}/out/kernel": ((4, 8, 32), (6, 12, 32)),
      "encoder/layer1/ffn/intermediate/kernel": ((32, 64), (32, 160)),
      "encoder/layer1/ffn/intermediate/bias": ((64,), (160,)),
      "encoder/layer1/ffn/output/kernel": ((64, 32), (160, 32)),
  }
  with pytest.raises(Wav2Vec2ConfigError, match="per-layer widths differ"):
    to_hf_config(grown)
  with pytest.raises(Wav2Vec2ConfigError, match="num_heads has 3 entries"):
    _init(_tiny_fields(num_heads=(4, 4, 4)))


def test_explicit_param_paths():
  for layout in ("base", "stable"):
    norm = "group" if layout == "base" else "layer"
    paths = {
        "/".join(k) for k in _shapes(_init(_tiny_fields(layout=layout, feat_extract_norm=norm))[1])
    }
    expected = {
        "feature_encoder/conv0/kernel", "feature_encoder/norm0/scale", "feature_encoder/norm0/bias",
        "feature_encoder/conv1/kernel", "feature_encoder/conv2/kernel",
        "feature_projection/layer_norm/scale", "feature_projection/layer_norm/bias",
        "feature_projection/dense/kernel", "feature_projection/dense/bias",
        "encoder/pos_conv/weight_v", "encoder/pos_conv/weight_g", "encoder/pos_conv/bias",
        "encoder/layer_norm/scale", "encoder/layer_norm/bias", "head/dense1/kernel",
        "head/dense1/bias", "head/dense2/kernel", "head/dense2/bias", "masked_spec_embed"
    }
    if norm == "layer":
      expected |= {f"feature_encoder/norm{i}/{p}" for i in (1, 2) for p in ("scale", "bias")}
    for i in range(2):
      layer = f"encoder/layer{i}"
      expected |= {
          f"{layer}/attention/{p}/{w}" for p in ("q", "k", "v", "out") for w in ("kernel", "bias")
      }
      expected |= {
          f"{layer}/ffn/{p}/{w}" for p in ("intermediate", "output") for w in ("kernel", "bias")
      }
      expected |= {
          f"{layer}/{p}/{w}" for p in ("attn_norm", "final_norm") for w in ("scale", "bias")
      }
    assert paths == expected, layout


def test_head_is_mean_pool_dense_relu_dense():
  fields = _tiny_fields()
  model, params, audio = _init(fields)
  logits = np.asarray(model.apply({"params": params}, audio, train=False))
  last = np.asarray(
      model.apply({"params": params}, audio, method=Wav2Vec2Classifier.encode)["last_hidden_state"])
  h = params["head"]
  hidden = np.maximum(last.mean(axis=1) @ h["dense1"]["kernel"] + h["dense1"]["bias"], 0.0)
  np.testing.assert_allclose(logits,
                             hidden @ h["dense2"]["kernel"] + h["dense2"]["bias"],
                             atol=1e-5)
  # Dropout is active in training (needs the "dropout" rng) and off in eval.
  train_logits = model.apply({"params": params},
                             audio,
                             train=True,
                             rngs={"dropout": jax.random.PRNGKey(1)})
  assert np.abs(np.asarray(train_logits) - logits).max() > 1e-4


def test_do_normalize_matches_manual_normalisation():
  fields = _tiny_fields()
  model, params, audio = _init(fields)
  raw = audio * 3.0 + 0.2
  manual = (raw - raw.mean(-1, keepdims=True)) / jnp.sqrt(raw.var(-1, keepdims=True) + 1e-7)
  norm_model = Wav2Vec2Classifier(**{**fields, "do_normalize": True})
  np.testing.assert_allclose(np.asarray(norm_model.apply({"params": params}, raw, train=False)),
                             np.asarray(model.apply({"params": params}, manual, train=False)),
                             atol=1e-5)


def test_freeze_feature_encoder_and_remat_gradients():
  fields = _tiny_fields(hidden_dropout=0.0,
                        attention_dropout=0.0,
                        activation_dropout=0.0,
                        head_dropout=0.0,
                        layerdrop=0.0,
                        mask_time_prob=0.0)
  _, params, audio = _init(fields)

  def grads(**kw):
    model = Wav2Vec2Classifier(**{**fields, **kw})
    loss = lambda p: jnp.sum(model.apply({"params": p}, audio, train=True)**2)  # noqa: E731
    return jax.grad(loss)(params)

  plain, frozen, remat = grads(), grads(freeze_feature_encoder=True), grads(remat=True)
  conv_grad = lambda g: float(jnp.abs(g["feature_encoder"]["conv0"]["kernel"]).max())  # noqa: E731
  assert conv_grad(plain) > 0.0 and conv_grad(frozen) == 0.0
  # Projection (after the stop_gradient) still learns.
  np.testing.assert_allclose(frozen["feature_projection"]["dense"]["kernel"],
                             plain["feature_projection"]["dense"]["kernel"],
                             rtol=1e-6,
                             atol=1e-7)
  for a, b in zip(jax.tree_util.tree_leaves(remat), jax.tree_util.tree_leaves(plain)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_keeps_float32_params():
  fields = _tiny_fields()
  model, params, audio = _init(fields)
  bf16 = Wav2Vec2Classifier(**{**fields, "dtype": "bfloat16"})
  bf_params = bf16.init(jax.random.PRNGKey(0), audio, train=False)["params"]
  assert {x.dtype for x in jax.tree_util.tree_leaves(bf_params)} == {jnp.dtype("float32")}
  ref = np.asarray(model.apply({"params": params}, audio, train=False))
  out = np.asarray(bf16.apply({"params": params}, audio, train=False))
  assert out.dtype == np.float32
  assert np.abs(out - ref).max() < 0.05 * max(1.0, np.abs(ref).max())


# ------------------------------------------------------------------------------------------------
# SpecAugment time masking.


def _runs(row):
  """Lengths of the maximal runs of True in a boolean vector."""
  edges = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
  return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


@pytest.mark.parametrize("length, prob, span, min_masks", [(50, 0.05, 10, 2), (60, 0.5, 5, 2),
                                                           (30, 0.9, 10, 0)])
def test_sampled_time_masks_match_transformers_statistics(length, prob, span, min_masks):
  """Our jitted sampler and transformers' numpy `_compute_mask_indices` over 4,000 rows each:
  same masked fraction, same spread of masked frames per row, same per-frame masking rate."""
  hf = pytest.importorskip("transformers.models.wav2vec2.modeling_wav2vec2")
  from jaxplastic.models.spec_augment import compute_mask_indices
  calls, batch = 500, 8
  sample = jax.jit(jax.vmap(lambda k: compute_mask_indices(k, (batch, length), prob, span,
                                                           min_masks)))
  ours = np.asarray(sample(jax.random.split(jax.random.PRNGKey(0), calls))).reshape(-1, length)
  np.random.seed(0)
  theirs = np.concatenate([
      hf._compute_mask_indices((batch, length), prob, span, min_masks=min_masks)
      for _ in range(calls)
  ])
  counts = lambda m: m.sum(axis=1)  # noqa: E731
  assert abs(counts(ours).mean() - counts(theirs).mean()) < 0.02 * length
  assert abs(counts(ours).std() - counts(theirs).std()) < 0.02 * length
  assert np.abs(ours.mean(axis=0) - theirs.mean(axis=0)).max() < 0.05
  # Spans are mask_time_length frames (overlapping ones merge into longer runs).
  assert min(r for row in ours for r in _runs(row)) == span


def test_time_masking_only_in_training():
  fields = _tiny_fields(mask_time_prob=0.3, mask_time_length=3, mask_time_min_masks=1)
  model, params, audio = _init(fields)
  assert params["masked_spec_embed"].shape == (32,)
  x = jax.random.normal(jax.random.PRNGKey(5), (4, 40, 32))
  mask_fn = lambda train, seed: np.asarray(model.apply(  # noqa: E731
      {"params": params}, x, train, rngs={"dropout": jax.random.PRNGKey(seed)},
      method=Wav2Vec2Classifier.mask_time))
  np.testing.assert_array_equal(mask_fn(False, 0), np.asarray(x))  # eval never masks
  masked = mask_fn(True, 0)
  is_embed = np.all(masked == np.asarray(params["masked_spec_embed"]), axis=-1)
  np.testing.assert_array_equal(masked[~is_embed], np.asarray(x)[~is_embed])
  assert 0.1 < is_embed.mean() < 0.6  # 3 or 4 spans of 3 of 40 frames per row
  assert all(r >= 3 for row in is_embed for r in _runs(row))
  assert np.any(mask_fn(True, 1) != masked)  # fresh spans per dropout key
  # Eval-mode logits equal those of the same model without masking.
  plain = Wav2Vec2Classifier(**{**fields, "mask_time_prob": 0.0})
  without = {k: v for k, v in params.items() if k != "masked_spec_embed"}
  np.testing.assert_array_equal(
      np.asarray(model.apply({"params": params}, audio, train=False)),
      np.asarray(plain.apply({"params": without}, audio, train=False)))
  with pytest.raises(Wav2Vec2ConfigError, match="mask_time_prob > 0"):
    plain.apply({"params": without}, audio, train=False,
                mask_time_indices=jnp.zeros((2, 10), bool))


@pytest.mark.parametrize("kernel, padding", [(20, (10, 10)), (7, (2, 5))])
def test_grouped_conv1d_gradients_match_plain_convolution(kernel, padding):
  """The positional conv's written-out kernel gradient (tap chunks of _TAPS_PER_CHUNK; 20 taps
  make a full and a partial chunk) equals jax.grad of lax.conv_general_dilated."""
  from jaxplastic.models import wav2vec2_layers as layers
  assert layers._TAPS_PER_CHUNK < 20 < 2 * layers._TAPS_PER_CHUNK
  rs = np.random.RandomState(0)
  groups, width = 3, 12
  x = jnp.asarray(rs.randn(2, 17, width), jnp.float32)
  w = jnp.asarray(rs.randn(kernel, width // groups, width) * 0.3, jnp.float32)
  out_len = 17 + sum(padding) - kernel + 1
  cotangent = jnp.asarray(rs.randn(2, out_len, width), jnp.float32)

  @jax.jit
  def both(x, w):
    plain = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1,), [padding], dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=groups)
    ours = lambda x, w: layers.grouped_conv1d(x, w, padding, groups)
    return [(f(x, w), jax.vjp(f, x, w)[1](cotangent)) for f in (ours, plain)]

  (y, grads), (y_plain, grads_plain) = both(x, w)
  assert y.shape == (2, out_len, width)
  np.testing.assert_allclose(y, y_plain, atol=1e-5)
  for a, e in zip(grads, grads_plain):
    assert a.shape == e.shape
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-4)
