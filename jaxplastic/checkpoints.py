"""Orbax checkpoints: one folder per stage with a resumable `latest/` and a best-by-dev `best/`, plus exports.

Every save carries a JSON meta (stage, model widths, global step) next to the arrays, so a restore can rebuild the
right shapes before reading anything; shapes are checked against the meta and a mismatch names the tensor.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from jaxplastic import surgery
from jaxplastic.data.audio import PAD_MODES

EXPORT_FORMAT = "jaxplastic-model/1"


class CheckpointError(RuntimeError):
  """A checkpoint that is missing, corrupt or does not match what it says it holds."""


def _manager(path: str, max_to_keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
  return ocp.CheckpointManager(os.path.abspath(path), options=options)


class StageCheckpoints:
  """`workdir/checkpoints/<index>_<name>/`: `latest/` for resuming, `best/` for model selection, `stage.json` once
  the stage has finished.

  Each save is complete on return (orbax writes to a temporary folder and renames it). Callers that save both at
  one step save `best` first: a crash between the two then leaves a `latest` that does not yet know of the new best,
  so the resumed run repeats the epoch and finds it again (see `experiment`).
  """

  def __init__(self, workdir: str, index: int, name: str):
    self.dir = os.path.join(workdir, "checkpoints", f"{index}_{name}")
    os.makedirs(self.dir, exist_ok=True)
    self.latest = _manager(os.path.join(self.dir, "latest"), max_to_keep=2)
    self.best = _manager(os.path.join(self.dir, "best"), max_to_keep=1)

  def _mgr(self, which: str) -> ocp.CheckpointManager:
    if which not in ("latest", "best"):
      raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    return self.latest if which == "latest" else self.best

  def save(self, which: str, state, meta: Mapping[str, Any], step: int | None = None) -> None:
    """Saves `state` with its JSON `meta` under global step `step` (default: `state.step`); a step already saved
    is left as it is (a resumed run that repeats work writes the same arrays)."""
    mgr = self._mgr(which)
    step = int(state.step) if step is None else int(step)
    if step in mgr.all_steps():
      return
    mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                           meta=ocp.args.JsonSave(dict(meta))))
    mgr.wait_until_finished()

  def has(self, which: str) -> bool:
    return self._mgr(which).latest_step() is not None

  def step(self, which: str) -> int | None:
    """The global step of the newest `which` checkpoint, or None."""
    return self._mgr(which).latest_step()

  def meta(self, which: str) -> dict:
    mgr = self._mgr(which)
    step = mgr.latest_step()
    return dict(mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])

  def restore(self, which: str, like) -> tuple[Any, dict]:
    """Restores into the structure of `like` (a state with the right shapes); errors name mismatched tensors."""
    mgr = self._mgr(which)
    step = mgr.latest_step()
    if step is None:
      raise CheckpointError(f"no {which} checkpoint in {self.dir}")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
    try:
      meta = self.meta(which)
      _check_against(mgr, step, abstract, os.path.join(self.dir, which))
      out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                      meta=ocp.args.JsonRestore()))
    except CheckpointError:
      raise
    except Exception as e:  # orbax raises many types for truncated or foreign files
      raise CheckpointError(f"cannot restore {os.path.join(self.dir, which)} step {step}: {e}") from e
    return out["state"], meta

  @property
  def done_path(self) -> str:
    return os.path.join(self.dir, "stage.json")

  def done(self) -> dict | None:
    if not os.path.exists(self.done_path):
      return None
    with open(self.done_path) as f:
      return json.load(f)

  def mark_done(self, record: Mapping[str, Any]) -> None:
    write_json_atomic(self.done_path, record)

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def _check_against(mgr, step, abstract, where: str) -> None:
  """Compares stored array shapes with the expected ones before orbax reads any data."""
  try:
    stored = mgr.item_metadata(step)["state"]
  except Exception:  # metadata unavailable: let the restore itself report
    return
  if stored is None:
    return
  abstract = serialization.to_state_dict(abstract)
  want = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_flatten_with_path(abstract)[0]}
  got = {}
  for k, v in jax.tree_util.tree_flatten_with_path(stored, is_leaf=lambda x: hasattr(x, "shape"))[0]:
    if hasattr(v, "shape"):
      got[jax.tree_util.keystr(k)] = tuple(v.shape)
  # Parameters and model state carry the widths; optimizer moments mirror them and are checked by orbax itself.
  want = {k: s for k, s in want.items() if k.startswith(("['params']", "['frozen']", "['model_state']"))}
  bad = [f"{k}: stored {got[k]}, expected {s}" for k, s in want.items() if k in got and got[k] != s]
  missing = [k for k in want if k not in got]
  if bad or missing:
    raise CheckpointError(f"{where} step {step} does not match its recorded widths: "
                          + "; ".join(bad[:5] + [f"{k}: missing" for k in missing[:5]]))


def write_json_atomic(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
  os.replace(tmp, path)


def _json_default(o):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, (tuple, set)):
    return list(o)
  if hasattr(o, "to_dict"):
    return o.to_dict()
  raise TypeError(f"not JSON serialisable: {type(o)}")


# ----------------------------------------------------------------------------------------------------------------
# Exported models: everything scoring needs, no config file.


def export_model(path: str, *, model_fields: Mapping[str, Any], variables: Mapping, info: Mapping[str, Any]) -> None:
  """Writes `path/model.json` (format, model widths, front-end/data settings, threshold...) and
  `path/variables.msgpack`. Written to a temp folder first, then renamed, so a partial export never looks complete."""
  tmp = path.rstrip("/") + ".tmp"
  os.makedirs(tmp, exist_ok=True)
  variables = jax.device_get(variables)
  meta = dict(info, format=EXPORT_FORMAT, model=dict(model_fields),
              shapes={k: list(v) for k, v in surgery.shapes_of(variables).items()})
  write_json_atomic(os.path.join(tmp, "model.json"), meta)
  with open(os.path.join(tmp, "variables.msgpack"), "wb") as f:
    f.write(serialization.msgpack_serialize(surgery.unflatten(
        {k: np.asarray(v) for k, v in surgery.flatten(variables).items()})))
  if os.path.exists(path):
    old = path.rstrip("/") + ".old"
    os.replace(path, old)
    os.replace(tmp, path)
    import shutil
    shutil.rmtree(old, ignore_errors=True)
  else:
    os.replace(tmp, path)


def export_pad(meta: Mapping[str, Any], where: str) -> str:
  """How the exported model's training padded short inputs (model.json `pad`: "zero" or "repeat"); exports from
  before model.json recorded it were all repeat-padded."""
  pad = meta.get("pad", "repeat")
  if pad not in PAD_MODES:
    raise CheckpointError(f"{where}: 'pad' must be one of {PAD_MODES}, got {pad!r}")
  return pad


def load_export(path: str) -> tuple[dict, dict]:
  """Reads an exported model folder -> (meta, variables). Checks the format and every tensor's shape."""
  meta_path = os.path.join(path, "model.json")
  var_path = os.path.join(path, "variables.msgpack")
  if not os.path.exists(meta_path) or not os.path.exists(var_path):
    raise CheckpointError(f"{path} is not an exported jaxplastic model (expected model.json and variables.msgpack; "
                          "training writes one to <workdir>/model)")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
  except ValueError as e:
    raise CheckpointError(f"{meta_path} is corrupt: {e}") from e
  if meta.get("format") != EXPORT_FORMAT:
    raise CheckpointError(f"{meta_path}: format {meta.get('format')!r}, this version reads {EXPORT_FORMAT!r}")
  try:
    with open(var_path, "rb") as f:
      variables = serialization.msgpack_restore(f.read())
  except Exception as e:
    raise CheckpointError(f"{var_path} is corrupt or truncated: {e}") from e
  got = surgery.shapes_of(variables)
  want = {k: tuple(v) for k, v in meta["shapes"].items()}
  if got != want:
    diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    raise CheckpointError(f"{var_path}: tensors do not match model.json: " +
                          "; ".join(f"{k}: stored {got.get(k)}, recorded {want.get(k)}" for k in diff[:5]))
  return meta, variables
