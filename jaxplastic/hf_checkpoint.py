"""Import / export Hugging Face Wav2Vec2 checkpoints (config.json + safetensors).

Every tensor in a checkpoint is either mapped onto a `Wav2Vec2Classifier` parameter or listed in an
explicit allow-list of pre-training / task-head tensors we do not use; anything else, and any
parameter the checkpoint lacks, is a loud error naming the tensors. No torch at runtime: safetensors
are read with `safetensors.numpy`; a legacy
`pytorch_model.bin` is read only when torch happens to be importable.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file, save_file

from jaxplastic.models.wav2vec2 import (ClassifierHead, Wav2Vec2Classifier, from_hf_config,
                                        merge_lora, to_hf_config)

# HF tensors with no counterpart in our classifier: quantizer / contrastive heads of ForPreTraining,
# the SpecAugment embedding (when the model has mask_time_prob = 0), task heads of ForCTC /
# ForSequenceClassification / ForXVector.
IGNORED_TENSORS = re.compile(
    r"(masked_spec_embed|quantizer\..*|project_q\..*|project_hid\..*|lm_head\..*|projector\..*|"
    r"classifier\..*|layer_weights|tdnn\..*|feature_extractor_xvector\..*|objective\..*)")

_WEIGHT_NORM_RENAMES = {
    "encoder.pos_conv_embed.conv.weight_g":
        "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv_embed.conv.weight_v":
        "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}
# Mapped when the model has them, but a checkpoint may lack them (HF initialises them fresh then):
# the SpecAugment embedding exists in HF only when its config.json enables masking.
OPTIONAL_TENSORS = frozenset({"masked_spec_embed"})
# Our parameters with no HF counterpart that keep their fresh initialisation on a pretrained init:
# the head, LoRA factors, and the tensors of the authors' grown layouts.
_FRESH_PARAMS = re.compile(r"head/.*|.*/lora_[ab]|"
                           r"encoder/(parallel\d+|merge\d+|proj_in\d+|proj_out\d+)/.*")
_BASE_PREFIX = "wav2vec2."
_SAFETENSORS = "model.safetensors"
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_TORCH_BIN = "pytorch_model.bin"


class CheckpointError(ValueError):
  """A checkpoint cannot be found, read, or mapped onto the model exactly."""


# --------------------------------------------------------------------------------------------------
# Name and layout mapping. A plan entry is (hf_name, our_path, kind); kind picks the transform.


def _plan(fields: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...], str]]:
  """Lists every backbone parameter as (HF tensor name, our param path, layout kind)."""
  m = Wav2Vec2Classifier(**fields)
  plan = []

  def add_linear(hf: str, ours: tuple[str, ...], kind: str = "linear", bias_kind: str = "copy"):
    plan.append((f"{hf}.weight", ours + ("kernel",), kind))
    plan.append((f"{hf}.bias", ours + ("bias",), bias_kind))

  def add_norm(hf: str, ours: tuple[str, ...]):
    plan.append((f"{hf}.weight", ours + ("scale",), "copy"))
    plan.append((f"{hf}.bias", ours + ("bias",), "copy"))

  for i in range(len(m.conv_dims)):
    hf = f"feature_extractor.conv_layers.{i}"
    plan.append((f"{hf}.conv.weight", ("feature_encoder", f"conv{i}", "kernel"), "conv"))
    if m.conv_bias:
      plan.append((f"{hf}.conv.bias", ("feature_encoder", f"conv{i}", "bias"), "copy"))
    if m.feat_extract_norm == "layer" or i == 0:
      add_norm(f"{hf}.layer_norm", ("feature_encoder", f"norm{i}"))
  add_norm("feature_projection.layer_norm", ("feature_projection", "layer_norm"))
  add_linear("feature_projection.projection", ("feature_projection", "dense"))
  pos = "encoder.pos_conv_embed.conv"
  plan.append(
      (f"{pos}.parametrizations.weight.original0", ("encoder", "pos_conv", "weight_g"), "conv"))
  plan.append(
      (f"{pos}.parametrizations.weight.original1", ("encoder", "pos_conv", "weight_v"), "conv"))
  plan.append((f"{pos}.bias", ("encoder", "pos_conv", "bias"), "copy"))
  add_norm("encoder.layer_norm", ("encoder", "layer_norm"))
  for i in range(m.num_layers):
    hf, ours = f"encoder.layers.{i}", ("encoder", f"layer{i}")
    for proj in ("q", "k", "v"):
      add_linear(f"{hf}.attention.{proj}_proj", ours + ("attention", proj), "qkv", "qkv_bias")
    add_linear(f"{hf}.attention.out_proj", ours + ("attention", "out"), "out")
    add_norm(f"{hf}.layer_norm", ours + ("attn_norm",))
    add_linear(f"{hf}.feed_forward.intermediate_dense", ours + ("ffn", "intermediate"))
    add_linear(f"{hf}.feed_forward.output_dense", ours + ("ffn", "output"))
    add_norm(f"{hf}.final_layer_norm", ours + ("final_norm",))
  if m.mask_time_prob > 0.0:
    plan.append(("masked_spec_embed", ("masked_spec_embed",), "copy"))
  return plan


def _to_ours(kind: str, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """HF (torch) layout -> ours, given our expected shape."""
  if kind == "copy":
    return x
  if kind == "conv":  # [out, in, k] -> [k, in, out]
    return x.transpose(2, 1, 0)
  if kind == "linear":  # [out, in] -> [in, out]
    return x.T
  if kind == "qkv":  # [heads*head_dim, hidden] -> [hidden, heads, head_dim]
    return x.T.reshape(shape)
  if kind == "qkv_bias":
    return x.reshape(shape)
  if kind == "out":  # [hidden, heads*head_dim] -> [heads, head_dim, hidden]
    return x.T.reshape(shape)
  raise AssertionError(kind)


def _to_hf(kind: str, x: np.ndarray) -> np.ndarray:
  """Our layout -> HF (torch) layout."""
  if kind == "copy":
    return x
  if kind == "conv":
    return x.transpose(2, 1, 0)
  if kind == "linear":
    return x.T
  if kind == "qkv":
    return x.reshape(x.shape[0], -1).T
  if kind == "qkv_bias":
    return x.reshape(-1)
  if kind == "out":
    return x.reshape(-1, x.shape[-1]).T
  raise AssertionError(kind)


def _min_samples(fields: Mapping[str, Any]) -> int:
  """Shortest input that gives one output frame (for shape evaluation)."""
  n = 1
  for k, s in reversed(list(zip(fields["conv_kernels"], fields["conv_strides"]))):
    n = (n - 1) * s + k
  return n


def abstract_params(fields: Mapping[str, Any]) -> dict[str, Any]:
  """Parameter shapes of `Wav2Vec2Classifier(**fields)` without allocating them."""
  model = Wav2Vec2Classifier(**fields)
  audio = jax.ShapeDtypeStruct((1, _min_samples(fields)), jnp.float32)
  variables = jax.eval_shape(lambda a: model.init(jax.random.PRNGKey(0), a, train=False), audio)
  return variables["params"]


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
  for key in path:
    tree = tree[key]
  return tree


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


# --------------------------------------------------------------------------------------------------
# Reading.


def resolve_checkpoint_dir(path_or_hub_id: str | os.PathLike) -> Path:
  """Returns a local directory for a path or, failing that, a Hub snapshot of `path_or_hub_id`."""
  path = Path(path_or_hub_id).expanduser()
  if path.is_dir():
    return path
  if path.exists():
    raise CheckpointError(
        f"{path} is a file; pass the checkpoint directory (config.json + weights)")
  try:
    from huggingface_hub import snapshot_download  # pylint: disable=import-outside-toplevel
    local = snapshot_download(
        repo_id=str(path_or_hub_id),
        allow_patterns=["config.json", "*.safetensors", _SAFETENSORS_INDEX, _TORCH_BIN])
  except Exception as e:  # noqa: BLE001 -- any hub failure gets the same actionable message
    raise CheckpointError(
        f"{str(path_or_hub_id)!r} is not a local directory and could not be fetched from the "
        f"Hugging Face Hub ({type(e).__name__}: {e}). This machine is probably offline: download "
        "the checkpoint on a connected machine (e.g. `huggingface-cli download "
        "facebook/wav2vec2-base --local-dir DIR`) and pass the local directory DIR, which must "
        "hold config.json and model.safetensors.") from e
  return Path(local)


def _read_tensors(directory: Path) -> dict[str, np.ndarray]:
  """Reads all weights of a checkpoint directory as numpy arrays."""
  single, index = directory / _SAFETENSORS, directory / _SAFETENSORS_INDEX
  if single.is_file():
    return dict(load_file(str(single)))
  if index.is_file():
    weight_map = json.loads(index.read_text())["weight_map"]
    tensors = {}
    for shard in sorted(set(weight_map.values())):
      tensors.update(load_file(str(directory / shard)))
    return tensors
  if (directory / _TORCH_BIN).is_file():
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise CheckpointError(
          f"{directory / _TORCH_BIN}: only a PyTorch .bin checkpoint is present and torch is not "
          "installed; convert it to model.safetensors") from e
    state = torch.load(directory / _TORCH_BIN, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}
  raise CheckpointError(
      f"{directory}: no {_SAFETENSORS}, {_SAFETENSORS_INDEX} or {_TORCH_BIN} found")


def _normalise_names(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Strips the `wav2vec2.` prefix of task models and maps old weight-norm names to the new ones."""
  has_prefix = any(k.startswith(_BASE_PREFIX) for k in tensors)
  out = {}
  for name, value in tensors.items():
    if has_prefix and name.startswith(_BASE_PREFIX):
      name = name[len(_BASE_PREFIX):]
    name = _WEIGHT_NORM_RENAMES.get(name, name)
    if name in out:
      raise CheckpointError(f"tensor {name!r} appears twice (both weight-norm naming schemes?)")
    out[name] = value
  return out


def params_from_hf_tensors(fields: Mapping[str, Any],
                           tensors: Mapping[str, np.ndarray],
                           *,
                           source: str = "checkpoint") -> dict[str, Any]:
  """Maps HF backbone tensors onto our params (no head); each must be used or allow-listed.

  An OPTIONAL_TENSORS entry the model has but the checkpoint lacks is left out of the result
  (logged), for the caller to initialise fresh as transformers does.

  Raises:
    CheckpointError: listing unexpected tensors, missing tensors, or shape mismatches.
  """
  tensors = _normalise_names(tensors)
  plan = _plan(fields)
  absent = sorted(hf for hf, _, _ in plan if hf in OPTIONAL_TENSORS and hf not in tensors)
  if absent:
    logging.warning("%s: has no %s; the model keeps a fresh initialisation", source, absent)
    plan = [entry for entry in plan if entry[0] not in absent]
  expected = {hf for hf, _, _ in plan}
  ignored = sorted(k for k in tensors if k not in expected and IGNORED_TENSORS.fullmatch(k))
  unexpected = sorted(k for k in tensors if k not in expected and not IGNORED_TENSORS.fullmatch(k))
  missing = sorted(expected - set(tensors))
  if unexpected or missing:
    raise CheckpointError(f"{source}: tensors do not match the model config.\n"
                          f"  unexpected (not mapped, not allow-listed): "
                          f"{unexpected}\n  missing: {missing}")
  if ignored:
    logging.info("%s: ignoring %d tensors not used by the classifier: %s", source, len(ignored),
                 ignored)
  shapes = abstract_params(fields)
  params: dict[str, Any] = {}
  errors = []
  for hf, path, kind in plan:
    want = tuple(_get(shapes, path).shape)
    value = np.asarray(tensors[hf], dtype=np.float32)
    try:
      converted = _to_ours(kind, value, want)
    except ValueError as e:
      errors.append(f"{hf} {value.shape}: {e}")
      continue
    if converted.shape != want:
      errors.append(f"{hf} {value.shape} -> {'/'.join(path)} expects {want}, got {converted.shape}")
      continue
    _set(params, path, jnp.asarray(converted))
  if errors:
    raise CheckpointError(f"{source}: shape mismatches:\n  " + "\n  ".join(errors))
  return params


def _read_hf_config(directory: Path) -> tuple[Path, dict[str, Any]]:
  """(path, parsed dict) of a checkpoint's config.json."""
  config_path = directory / "config.json"
  if not config_path.is_file():
    raise CheckpointError(f"{directory}: config.json not found")
  try:
    return config_path, json.loads(config_path.read_text())
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{config_path}:{e.lineno}: invalid JSON ({e.msg})") from e


def load_hf_wav2vec2(path_or_hub_id: str | os.PathLike,
                     *,
                     rng: jax.Array | None = None,
                     **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
  """Loads a Hugging Face Wav2Vec2 checkpoint (Wav2Vec2Model / ForPreTraining / ForCTC / ...).

  Args:
    path_or_hub_id: a local directory with config.json + model.safetensors (or a sharded index, or a
      pytorch_model.bin when torch is installed), or a Hub id (needs network).
    rng: key for the freshly initialised classifier head (default PRNGKey(0)).
    **overrides: `Wav2Vec2Classifier` fields replacing those derived from config.json (e.g.
      num_classes).

  Returns:
    (fields, params): `Wav2Vec2Classifier(**fields)` and its full `params` tree (backbone from the
    checkpoint, `head` newly initialised; so is `masked_spec_embed` if the model has one and the
    checkpoint does not).
  """
  directory = resolve_checkpoint_dir(path_or_hub_id)
  _, hf_config = _read_hf_config(directory)
  fields = from_hf_config(hf_config, **overrides)
  params = params_from_hf_tensors(fields, _read_tensors(directory), source=str(directory))
  model = Wav2Vec2Classifier(**fields)
  head = ClassifierHead(model.head_hidden, model.num_classes, model.head_dropout)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  head_rng, embed_rng = jax.random.split(rng)
  params["head"] = head.init(head_rng, jnp.zeros((1, model.hidden_size)), False)["params"]
  if model.mask_time_prob > 0.0 and "masked_spec_embed" not in params:
    params["masked_spec_embed"] = jax.random.uniform(embed_rng, (model.hidden_size,))
  return fields, params


# --------------------------------------------------------------------------------------------------
# Pretrained initialisation for the experiment driver.

# Fields that fix the backbone's parameters or computation; a checkpoint must agree on all of them
# (`parallel_layers` only adds tensors that start fresh, so it is not one of them).
ARCHITECTURE_FIELDS = ("hidden_size", "num_layers", "num_heads", "head_dim", "ffn_dims",
                       "layer_hidden",
                       "conv_dims", "conv_kernels", "conv_strides", "conv_bias",
                       "feat_extract_norm", "layout", "num_conv_pos_embeddings",
                       "num_conv_pos_embedding_groups", "layer_norm_eps", "hidden_act",
                       "feat_extract_activation")


def _architecture(fields: Mapping[str, Any]) -> dict[str, Any]:
  """The architecture fields of `fields`, with head_dim resolved per layer."""
  model = Wav2Vec2Classifier(**{k: v for k, v in fields.items() if k != "name"})
  arch = {k: getattr(model, k) for k in ARCHITECTURE_FIELDS}
  arch["head_dim"] = model.head_dims()
  arch["layer_hidden"] = model.layer_widths()
  return arch


def _override(value: Any) -> str:
  """A value as written after `--config.model.<field>=` on the command line."""
  if isinstance(value, tuple):
    return '"(' + ",".join(str(v) for v in value) + (",)" if len(value) == 1 else ")") + '"'
  return str(value)


def init_from_pretrained(path_or_hub_id: str | os.PathLike, module_fields: Mapping[str, Any],
                         variables: Mapping[str, Any]) -> dict[str, Any]:
  """Replaces every backbone tensor of `variables` with the checkpoint's; the head stays as given.

  The experiment calls this for its first stage when `config.model.pretrained` names a checkpoint.
  Copies are exact (float32). LoRA leaves, if the first stage already has them, keep their fresh
  initialisation (B = 0, so the function is the checkpoint's), as do the tensors of parallel layers
  (`encoder/parallel{i}`, `encoder/merge{i}`: e.g. a grown model started from the pretrained
  checkpoint) and a `masked_spec_embed` the checkpoint lacks. The checkpoint's
  `masked_spec_embed` is imported when the model has one (mask_time_prob > 0) and ignored
  otherwise.

  Args:
    path_or_hub_id: a checkpoint directory (config.json + model.safetensors) or a Hub id.
    module_fields: the model fields of the stage ("name" and "pretrained" keys are ignored).
    variables: a fresh initialisation of that model ({"params": ...}).

  Returns:
    A new variables dict; `variables` is not modified.

  Raises:
    CheckpointError: the checkpoint cannot be read, its architecture differs from `module_fields`
      (every differing field is listed with the config override that would match it), or a tensor
      does not map exactly.
  """
  directory = resolve_checkpoint_dir(path_or_hub_id)
  config_path, hf_config = _read_hf_config(directory)
  if hf_config.get("model_type", "wav2vec2") != "wav2vec2":
    raise CheckpointError(
        f"{config_path}: model_type {hf_config['model_type']!r}, expected 'wav2vec2'")
  fields = {k: v for k, v in module_fields.items() if k not in ("name", "pretrained")}
  ours, theirs = _architecture(fields), _architecture(from_hf_config(hf_config))
  differ = [k for k in ARCHITECTURE_FIELDS if ours[k] != theirs[k]]
  if differ:
    lines = [f"  {k}: config.model has {ours[k]}, the checkpoint has {theirs[k]}" for k in differ]
    overrides = " ".join(f"--config.model.{k}={_override(theirs[k])}" for k in differ)
    raise CheckpointError(
        f"{config_path} describes a different architecture than config.model:\n" +
        "\n".join(lines) +
        f"\nSet these fields to the checkpoint's values (e.g. {overrides}), or point "
        "config.model.pretrained at a checkpoint of this architecture.")
  backbone = _flatten(
      params_from_hf_tensors(fields, _read_tensors(directory), source=str(directory)))
  params = _flatten(variables["params"])
  fresh = {p for p in params if _FRESH_PARAMS.fullmatch("/".join(p))}
  if ("masked_spec_embed",) in params and ("masked_spec_embed",) not in backbone:
    fresh.add(("masked_spec_embed",))
  kept = sorted(p for p in params if p not in fresh and p not in backbone)
  if kept or set(backbone) - set(params):
    raise CheckpointError(
        f"{directory}: the model's backbone and the checkpoint differ: not in the checkpoint "
        f"{['/'.join(p) for p in kept]}, not in the model "
        f"{['/'.join(p) for p in sorted(set(backbone) - set(params))]}")
  for path, value in backbone.items():
    if tuple(value.shape) != tuple(np.shape(params[path])):
      raise CheckpointError(f"{directory}: {'/'.join(path)} has shape {tuple(value.shape)}, the "
                            f"model expects {tuple(np.shape(params[path]))}")
    params[path] = value
  logging.info("initialised %d backbone tensors from %s; freshly initialised: %s", len(backbone),
               directory, sorted("/".join(p) for p in fresh))
  out = {k: v for k, v in variables.items() if k != "params"}
  tree: dict[str, Any] = {}
  for path, value in params.items():
    _set(tree, path, value)
  out["params"] = tree
  return out


# --------------------------------------------------------------------------------------------------
# Writing.


def hf_tensors_from_params(fields: Mapping[str, Any],
                           params: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Our params -> HF `Wav2Vec2Model` state dict (numpy, float32); the head is not exported.

  Raises:
    CheckpointError: when params hold backbone leaves the HF layout has no place for, or lack some;
      LoRA leaves must be merged first (`merge_lora`; `save_hf_wav2vec2` does it).
  """
  plan = _plan(fields)
  flat = _flatten(params)
  lora = sorted("/".join(p) for p in flat if p[-1] in ("lora_a", "lora_b"))
  if lora:
    raise CheckpointError(
        f"params hold LoRA leaves ({lora[:4]}...), which a stock HF Wav2Vec2Model "
        "has no place for; fold them in first with "
        "jaxplastic.models.wav2vec2.merge_lora(fields, params)")
  backbone = {p for p in flat if p[0] != "head"}
  planned = {path for _, path, _ in plan}
  extra, missing = sorted(backbone - planned), sorted(planned - backbone)
  if extra or missing:
    raise CheckpointError(
        "params do not match a stock HF Wav2Vec2Model:\n  not exportable: "
        f"{['/'.join(p) for p in extra]}\n  missing: {['/'.join(p) for p in missing]}")
  shapes = abstract_params(fields)
  wrong = [
      f"{'/'.join(p)}: {tuple(np.shape(flat[p]))} != {tuple(_get(shapes, p).shape)}"
      for p in sorted(planned)
      if tuple(np.shape(flat[p])) != tuple(_get(shapes, p).shape)
  ]
  if wrong:
    raise CheckpointError("param shapes do not match the fields:\n  " + "\n  ".join(wrong))
  return {
      hf: np.ascontiguousarray(_to_hf(kind, np.asarray(flat[path], dtype=np.float32)))
      for hf, path, kind in plan
  }


def save_hf_wav2vec2(path: str | os.PathLike, fields: Mapping[str, Any], params: Mapping[str, Any],
                     **hf_config_extra: Any) -> Path:
  """Writes config.json + model.safetensors that `transformers.Wav2Vec2Model.from_pretrained` loads.

  The classifier head has no HF counterpart and is not written. LoRA updates are merged into their
  kernels first (`merge_lora`), so the export computes the fine-tuned function. The SpecAugment
  settings and `masked_spec_embed` are written when the model masks (mask_time_prob > 0);
  `hf_config_extra` keys are copied into config.json.

  Raises:
    Wav2Vec2ConfigError: per-layer widths that a stock HF config cannot express.
    CheckpointError: params that do not fit the HF layout.
  """
  if fields.get("lora_rank", 0):
    fields, params = merge_lora(fields, params)
    logging.info("merged LoRA updates into their kernels for export")
  fields = {k: v for k, v in fields.items() if k != "name"}
  config = to_hf_config(fields, **hf_config_extra)
  tensors = hf_tensors_from_params(fields, params)
  out = Path(path)
  out.mkdir(parents=True, exist_ok=True)
  (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
  save_file(tensors, str(out / _SAFETENSORS), metadata={"format": "pt"})
  return out
