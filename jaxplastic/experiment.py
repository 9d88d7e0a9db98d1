"""Runs an experiment: the stages of `config.stages` in order, with surgery between them, resumable at any point.

Baseline training, dropin (grow, train only the new slices; or everything) and plasticity (grow, retrain, prune
back, retrain) are all stage lists (see configs/base.py `stage`). For each stage: start from the stage it names
(best or last parameters), grow or prune when its widths differ (the plan comes from comparing parameter shapes),
build the optimizer over the trainable entries only, train with one global step counter, select on dev EER, score
eval, and write a record. Re-running with the same workdir skips finished stages and resumes the current one from
its latest checkpoint.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from typing import Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxplastic import checkpoints as ckpt_lib
from jaxplastic import data as data_lib
from jaxplastic import evaluation
from jaxplastic import models
from jaxplastic import reporting
from jaxplastic import surgery
from jaxplastic import train as train_lib
from jaxplastic.data import pipeline

STAGE_KINDS = ("train", "grow", "prune")


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN/Inf loss or gradient."""


# ----------------------------------------------------------------------------------------------------------------
# Models and widths.


def model_fields(model_config: Mapping, widths: Mapping | None = None) -> dict:
  """The model's dataclass fields for a stage: the base `config.model` with the stage's width overrides."""
  base = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
  fields = {k: tuple(v) if isinstance(v, list) else v for k, v in base.items()}
  for key, value in dict(widths or {}).items():
    if key not in fields:
      raise ValueError(f"stage widths name {key!r}, which is not a field of config.model; "
                       f"valid: {sorted(fields)}")
    fields[key] = tuple(value) if isinstance(value, (list, tuple)) else value
  return fields


# Keys of `config.model` that configure initialisation, not the module.
INIT_FIELDS = ("pretrained",)


def module_fields(fields: Mapping) -> dict:
  """The model fields without initialisation-only keys (what an export records and a module takes)."""
  return {k: v for k, v in fields.items() if k not in INIT_FIELDS}


def build(fields: Mapping):
  return models.build_model(ml_collections.ConfigDict(module_fields(fields)))


def check_pretrained(fields: Mapping) -> None:
  """`pretrained`: None trains from scratch; '' means the config needs one and the user has not said where."""
  if "pretrained" in fields and fields["pretrained"] is not None and not fields["pretrained"]:
    raise ValueError(
        "config.model.pretrained is empty, but this config starts from a pretrained checkpoint. Download one "
        "(e.g. facebook/wav2vec2-base: config.json + model.safetensors) on a machine with internet access and pass "
        "--config.model.pretrained=/path/to/wav2vec2-base (or a hub id when this machine is online).")


def init_variables_for(fields: Mapping, model, rng, num_samples: int) -> dict:
  """Fresh variables, with pretrained weights loaded over them when `fields['pretrained']` names a checkpoint."""
  variables = init_variables(model, rng, num_samples)
  if fields.get("pretrained"):
    from jaxplastic import hf_checkpoint  # only wav2vec2 configs have a pretrained field
    variables = hf_checkpoint.init_from_pretrained(fields["pretrained"], module_fields(fields), variables)
  return variables


def frozen_patterns_of(model) -> tuple:
  """Parameters a model keeps fixed in every stage (e.g. wav2vec2's feature encoder when fine-tuning)."""
  fn = getattr(model, "frozen_param_patterns", None)
  return tuple(fn()) if fn is not None else ()


def width_changes(small: Mapping, big: Mapping) -> dict:
  """The fields (other than the model name) that differ, as {field: big value}."""
  return {k: v for k, v in big.items() if small.get(k) != v}


def init_variables(model, rng, num_samples: int) -> dict:
  dummy = jnp.zeros((2, num_samples), jnp.float32)
  variables = jax.jit(lambda r: model.init({"params": r, "dropout": r}, dummy, train=False))(rng)
  return surgery._to_dict(variables)


def output_axes_of(fields: Mapping) -> tuple:
  """Surgery rules a model class declares for kernels with several output axes (e.g. attention [d, heads, hd])."""
  cls = models.MODELS[fields["name"]]
  return tuple(getattr(cls, "SURGERY_OUTPUT_AXES", ()))


# ----------------------------------------------------------------------------------------------------------------
# Evaluation.


def score_split(eval_fn, state, split, config, max_batches: int = -1, skipped=None
                ) -> tuple[np.ndarray, float, float]:
  """Scores every utterance of `split` in protocol order -> (scores [N] (NaN where skipped, and reported in
  `skipped`), mean loss, seconds per batch)."""
  scores = np.full(len(split.items), np.nan, np.float64)
  loss_sum, count, seconds, batches = 0.0, 0.0, 0.0, 0
  it = pipeline.batches(split, batch_size=config.data.eval_batch_size, num_samples=config.data.num_samples,
                        train=False, seed=config.seed, sample_rate=config.data.sample_rate,
                        prefetch_batches=config.data.prefetch_batches, num_threads=config.data.num_threads,
                        skip_bad_files=config.data.skip_bad_files, skipped=skipped)
  for batch in it:
    if 0 <= max_batches <= batches:
      break
    t0 = time.perf_counter()
    out = jax.device_get(eval_fn(state, {k: jnp.asarray(v) for k, v in batch.items() if k != "index"}))
    seconds += time.perf_counter() - t0
    batches += 1
    keep = (batch["mask"] > 0) & (batch["index"] >= 0)
    scores[batch["index"][keep]] = out["score"][keep]
    loss_sum += float(out["loss_sum"])
    count += float(batch["mask"].sum())
  return scores, loss_sum / max(count, 1.0), seconds / max(batches, 1)


def metrics_for(split, scores: np.ndarray) -> dict:
  ok = np.isfinite(scores)
  labels = split.labels()[ok]
  attacks = [it.attack for it, k in zip(split.items, ok) if k]
  return evaluation.evaluate(scores[ok], labels, attacks, asv=split.asv_scores)


# ----------------------------------------------------------------------------------------------------------------
# The run.


def _validate_stages(config) -> list:
  stages = list(config.stages)
  if not stages:
    raise ValueError("config.stages is empty")
  names = [s.name for s in stages]
  if len(set(names)) != len(names):
    raise ValueError(f"stage names must be unique: {names}")
  for i, s in enumerate(stages):
    if s.kind not in STAGE_KINDS:
      raise ValueError(f"stage {s.name}: kind must be one of {STAGE_KINDS}, got {s.kind!r}")
    if s.start_from and s.start_from not in names[:i]:
      raise ValueError(f"stage {s.name}: start_from {s.start_from!r} is not an earlier stage ({names[:i]})")
    if s.trainable not in ("all", "new"):
      raise ValueError(f"stage {s.name}: trainable must be 'all' or 'new'")
    if s.trainable == "new" and s.kind != "grow":
      raise ValueError(f"stage {s.name}: trainable='new' (dropin) needs kind='grow'")
    if s.start_point not in ("best", "last"):
      raise ValueError(f"stage {s.name}: start_point must be 'best' or 'last'")
    if s.checkpoint and i > 0:
      raise ValueError(f"stage {s.name}: only the first stage can load a checkpoint (later stages start from "
                       "an earlier stage via start_from)")
    if s.prune not in ("added", "importance"):
      raise ValueError(f"stage {s.name}: prune must be 'added' or 'importance'")
    check_pretrained(model_fields(config.model, s.widths))  # unknown width names fail here, before any work
  if config.get("export_stage") and config.export_stage not in names:
    raise ValueError(f"config.export_stage {config.export_stage!r} is not a stage name: {names}")
  return stages


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes) every stage of `config` in `workdir`; returns {'stages': [record, ...]}."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  stages = _validate_stages(config)
  ckpt_lib.write_json_atomic(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
  logging.info("devices: %s", jax.devices())

  splits = {name: data_lib.load_split(config.data, name) for name in ("train", "dev", "eval")}
  for name, split in splits.items():
    logging.info("%s: %s", name, split.counts())
  writer = reporting.MetricWriter(workdir)
  skipped = pipeline.SkipLog()
  results: dict[str, dict] = {}
  records = []
  global_step = 0
  base_rng = jax.random.PRNGKey(config.seed)
  try:
    for index, st in enumerate(stages):
      rec, out = _run_stage(config, workdir, index, st, stages, results, splits, writer, global_step, base_rng,
                            skipped)
      results[st.name] = out
      records.append(rec)
      global_step = rec["end_step"]
  finally:
    writer.close()
  names = [st.name for st in stages]
  export = config.get("export_stage") or names[-1]
  rec = records[names.index(export)]
  ckpt_lib.export_model(os.path.join(workdir, "model"), model_fields=module_fields(results[export]["fields"]),
                        variables=results[export]["best"],
                        info={"stage": export, "threshold": rec.get("dev", {}).get("eer_threshold"),
                              "corpus": config.data.corpus, "sample_rate": config.data.sample_rate,
                              "num_samples": config.data.num_samples, "dev_eer": rec.get("dev", {}).get("eer")})
  best = min(records, key=lambda r: r.get("dev", {}).get("eer", float("inf")))
  summary = {"stages": records, "exported_stage": export, "best_stage_by_dev": best["stage"],
             "skipped_files": skipped.count, "skipped_paths": skipped.paths[:20]}
  ckpt_lib.write_json_atomic(os.path.join(workdir, "results.json"), summary)
  print(results_table(records))
  if skipped.count:
    print(f"skipped {skipped.count} unreadable files (data.skip_bad_files=True); first: {skipped.paths[:5]}")
  return summary


def results_table(records) -> str:
  rows = []
  for r in records:
    rows.append({"stage": r["stage"], "kind": r["kind"], "trainable": r["trainable"],
                 "dev EER %": r.get("dev", {}).get("eer"), "eval EER %": r.get("eval", {}).get("eer"),
                 "eval min t-DCF": r.get("eval", {}).get("min_tdcf"), "params": r["params_total"],
                 "trainable params": r["params_trainable"], "opt bytes": r["opt_state_bytes"],
                 "step ms": None if r.get("step_seconds") is None else 1e3 * r["step_seconds"],
                 "epoch s": r.get("epoch_seconds"), "eval ms/batch": None if r.get("eval_seconds_per_batch") is None
                 else 1e3 * r["eval_seconds_per_batch"],
                 "peak MiB": r["peak_memory_bytes"] / 2 ** 20 if r.get("peak_memory_bytes") else None,
                 "stage s": r.get("stage_seconds")})
  return evaluation.format_table(rows, list(rows[0].keys())) if rows else ""


def _start_variables(config, index, st, stages, results, fields, model, base_rng):
  """The stage's initial full variables, the grow plan (for dropin partitions) and a note of the surgery done."""
  num_samples = config.data.num_samples
  rng = jax.random.fold_in(base_rng, index)
  if index == 0:
    if st.checkpoint:
      meta, variables = ckpt_lib.load_export(_export_dir(st.checkpoint))
      loaded = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["model"].items()}
      if loaded != module_fields(fields):
        raise ValueError(f"stage {st.name}: checkpoint {st.checkpoint} holds a model with fields "
                         f"{width_changes(module_fields(fields), loaded)} different from this stage's")
      return variables, None, f"loaded {st.checkpoint}"
    origin = f"pretrained {fields['pretrained']}" if fields.get("pretrained") else "fresh init"
    return init_variables_for(fields, model, rng, num_samples), None, origin
  src_name = st.start_from or stages[index - 1].name
  src = results[src_name]
  start = src[st.start_point]
  if src["fields"] == fields:
    if st.kind != "train":
      raise ValueError(f"stage {st.name}: kind {st.kind!r} but its widths equal those of {src_name}")
    return start, None, f"from {src_name}/{st.start_point}"
  if st.kind == "train":
    raise ValueError(f"stage {st.name}: kind 'train' but widths differ from {src_name}: "
                     f"{width_changes(src['fields'], fields)}; use kind 'grow' or 'prune'")
  changes = width_changes(src["fields"], fields)
  if st.kind == "grow":
    plan = surgery.make_plan(start, surgery.abstract_variables(model, (1, num_samples)), what="grow")
    fresh = init_variables(model, rng, num_samples)
    grown = surgery.grow(start, fresh, plan, init=st.init, output_axes=output_axes_of(fields))
    logging.info("stage %s: grew %s\n%s", st.name, changes, plan.describe())
    return grown, plan, f"grow {changes} from {src_name}/{st.start_point} ({st.init})"
  small_model = model
  plan = surgery.make_plan(surgery.abstract_variables(small_model, (1, num_samples)), start, what="prune")
  keep, groups = None, None
  if st.prune == "importance":
    big_fields = src["fields"]
    widths = {k: big_fields[k] for k in width_changes(fields, big_fields)}
    groups = surgery.width_groups(build, fields, widths, (1, num_samples))
    keep = surgery.keep_most_important(surgery.unit_importance(start, groups), plan, groups)
    logging.info("stage %s: importance pruning keeps %s", st.name, {k: v.tolist() for k, v in keep.items()})
  pruned = surgery.prune(start, plan, keep=keep, groups=groups)
  return pruned, None, f"prune {changes} ({st.prune}) from {src_name}/{st.start_point}"


def _export_dir(path: str) -> str:
  """Accepts an exported model folder or a finished run's workdir."""
  return path if os.path.exists(os.path.join(path, "model.json")) else os.path.join(path, "model")


def _stage_optim(config, st):
  optim = copy.deepcopy(config.optim)
  with optim.unlocked():
    if st.learning_rate is not None:
      optim.learning_rate = st.learning_rate
  return optim


def _run_stage(config, workdir, index, st, stages, results, splits, writer, global_step, base_rng, skipped):
  fields = model_fields(config.model, st.widths)
  model = build(fields)
  ckpts = ckpt_lib.StageCheckpoints(workdir, index, st.name)
  try:
    return _run_stage_with(ckpts, config, workdir, index, st, stages, results, splits, writer, global_step,
                           base_rng, skipped, fields, model)
  finally:
    ckpts.close()


def _run_stage_with(ckpts, config, workdir, index, st, stages, results, splits, writer, global_step, base_rng,
                    skipped, fields, model):
  stage_t0 = time.perf_counter()
  num_epochs = st.num_epochs
  if st.checkpoint and num_epochs:
    # `checkpoint` means "this stage is already trained": load it instead of training (see configs/base.stage).
    logging.warning("stage %s loads %s instead of training; its num_epochs=%d is not used", st.name,
                    st.checkpoint, num_epochs)
    num_epochs = 0
  done = ckpts.done()
  if done and st.trainable != "new":
    # Only the structure matters: the finished stage's checkpoints are restored into it below.
    variables, plan, origin = init_variables(model, jax.random.fold_in(base_rng, index),
                                             config.data.num_samples), None, ""
  else:
    # A finished dropin stage still needs its grow plan to rebuild the partition its checkpoint was saved with.
    variables, plan, origin = _start_variables(config, index, st, stages, results, fields, model, base_rng)

  if st.trainable == "new":
    partition = surgery.Partition.new_slices(plan, train_patterns=config.dropin.train_patterns)
  elif frozen_patterns_of(model):
    partition = surgery.Partition.fixed(variables["params"], frozen_patterns_of(model))
  else:
    partition = surgery.Partition.everything()
  params = variables["params"]
  model_state = {k: v for k, v in variables.items() if k != "params"}
  trainable, frozen = partition.split(params)
  tx = train_lib.make_optimizer(_stage_optim(config, st))
  state = train_lib.create_state(trainable, frozen, model_state, tx, step=global_step)
  total_params = surgery.count(params)

  def full_variables(s):
    return {"params": partition.merge(s.params, s.frozen), **s.model_state}

  if done:
    best, _ = ckpts.restore("best", state)
    last, _ = ckpts.restore("latest", state)
    logging.info("stage %s finished earlier; reusing its checkpoints", st.name)
    return done, {"fields": fields, "best": full_variables(best), "last": full_variables(last)}

  eff = reporting.efficiency(state, total_params=total_params)
  stage_start = global_step
  if ckpts.has("latest"):
    state, meta = ckpts.restore("latest", state)
    stage_start = meta["stage_start_step"]
    logging.info("stage %s: resuming at global step %d", st.name, int(state.step))
  meta = {"stage": st.name, "stage_index": index, "stage_start_step": stage_start, "model": fields,
          "trainable": st.trainable, "origin": origin}

  train_fn, eval_fn = train_lib.jit_steps(
      model=model, tx=tx, partition=partition, plan=plan, loss_name=config.optim.loss,
      class_weights=None if config.optim.class_weights is None else tuple(config.optim.class_weights),
      base_rng=jax.random.fold_in(base_rng, 1000 + index))
  train_split, dev_split = splits["train"], splits["dev"]
  steps_per_epoch = pipeline.epoch_steps(train_split, config.data.batch_size, train=True)
  if config.train.max_steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, config.train.max_steps_per_epoch)
  if num_epochs > 0 and steps_per_epoch == 0:
    raise ValueError(f"training split has {len(train_split.items)} utterances, fewer than one batch of "
                     f"{config.data.batch_size}")
  logging.info("stage %s (%s, trainable=%s): %s; %d epochs x %d steps; compiling...", st.name, st.kind,
               st.trainable, origin, num_epochs, steps_per_epoch)
  writer.write(int(state.step), st.name, "surgery", {"stage_index": index, **eff,
                                                     **{f"width/{k}": str(v) for k, v in fields.items()}})

  epoch_times = []
  max_eval = config.train.max_eval_batches

  def end_of_epoch(state):
    scores, dev_loss, _ = score_split(eval_fn, state, dev_split, config, max_eval, skipped)
    m = metrics_for(dev_split, scores)
    state = train_lib.plateau_update(state, dev_loss, factor=config.optim.plateau_factor,
                                     patience=config.optim.plateau_patience)
    improved = m["eer"] < float(state.best_dev_eer)
    if improved:
      state = state.replace(best_dev_eer=jnp.float32(m["eer"]), best_step=jnp.int32(int(state.step)))
    # New scalars, never aliases of `step`: the train step donates every buffer of the state.
    state = state.replace(epochs_done=state.epochs_done + 1, epoch_start_step=jnp.int32(int(state.step)))
    writer.write(int(state.step), st.name, "dev", {"eer": m["eer"], "loss": dev_loss, "lr_scale": state.lr_scale,
                                                    "accuracy": m["accuracy"]})
    logging.info("stage %s epoch %d: dev EER %.3f%% loss %.4f", st.name, int(state.epochs_done), m["eer"],
                 dev_loss)
    ckpts.save("latest", state, meta)
    if improved:
      ckpts.save("best", state, dict(meta, dev_eer=m["eer"]))
    return state

  while int(state.epochs_done) < num_epochs:
    epoch = int(state.epochs_done)
    offset = int(state.step) - int(state.epoch_start_step)
    t0 = time.perf_counter()
    state = _train_epoch(state, train_fn, train_split, config, st, epoch, num_epochs, offset, steps_per_epoch,
                         writer, ckpts, meta, skipped)
    if offset == 0:
      epoch_times.append(time.perf_counter() - t0)
    state = end_of_epoch(state)

  if not ckpts.has("best"):  # a stage with 0 epochs: its starting point is its best and last
    ckpts.save("latest", state, meta)
    ckpts.save("best", state, meta)
  best_state, _ = ckpts.restore("best", state)

  record = {"stage": st.name, "stage_index": index, "kind": st.kind, "trainable": st.trainable, "origin": origin,
            "model": fields, "start_step": stage_start, "end_step": int(state.step), **eff,
            "epoch_seconds": float(np.mean(epoch_times)) if epoch_times else None,
            "best_step": int(best_state.best_step)}
  if num_epochs > 0:
    record.update(_measure(train_fn, eval_fn, state, config))
  t0 = time.perf_counter()
  for split_name in ("dev", "eval") if config.train.eval_at_stage_end else ("dev",):
    split = splits[split_name]
    scores, _, sec = score_split(eval_fn, best_state, split, config, max_eval, skipped)
    m = metrics_for(split, scores)
    record[split_name] = m
    ok = np.isfinite(scores)
    os.makedirs(os.path.join(workdir, "scores"), exist_ok=True)
    evaluation.write_score_file(
        os.path.join(workdir, "scores", f"{index}_{st.name}_{split_name}.txt"),
        [it.utt_id for it, k in zip(split.items, ok) if k], [it.attack for it, k in zip(split.items, ok) if k],
        split.labels()[ok], scores[ok])
    writer.write(int(state.step), st.name, split_name, {k: v for k, v in m.items() if k != "per_attack"})
    if split_name == "eval":
      record["eval_seconds_per_batch"] = sec
  record["eval_wall_seconds"] = time.perf_counter() - t0
  record["peak_memory_bytes"], record["peak_memory_kind"] = reporting.peak_memory_bytes()
  # Wall time of this stage in this process (a resumed stage counts only the part after the restart).
  record["stage_seconds"] = time.perf_counter() - stage_t0
  ckpts.mark_done(record)
  return record, {"fields": fields, "best": full_variables(best_state), "last": full_variables(state)}


def _train_epoch(state, train_fn, split, config, st, epoch, num_epochs, offset, steps_per_epoch, writer, ckpts, meta,
                 skipped):
  it = pipeline.batches(split, batch_size=config.data.batch_size, num_samples=config.data.num_samples, train=True,
                        seed=config.seed, epoch=epoch + 1000 * meta["stage_index"],
                        sample_rate=config.data.sample_rate, cache=_cache(config),
                        prefetch_batches=config.data.prefetch_batches, num_threads=config.data.num_threads,
                        skip_bad_files=config.data.skip_bad_files, skipped=skipped, start_batch=offset)
  bar = None
  if config.train.progress:
    from tqdm import tqdm
    bar = tqdm(total=steps_per_epoch, initial=offset, desc=f"{st.name} epoch {epoch + 1}/{num_epochs}",
               leave=False, dynamic_ncols=True)
  pending = []
  step_in_epoch = offset
  step = int(state.step)
  for batch in it:
    if step_in_epoch >= steps_per_epoch:
      break
    state, metrics = train_fn(state, {k: v for k, v in batch.items() if k != "index"})
    pending.append(metrics)
    step_in_epoch += 1
    step += 1
    if step % config.train.log_every_steps == 0 or step_in_epoch == steps_per_epoch:
      _flush(pending, step, st, writer, ckpts, bar)
      pending = []
    if bar is not None:
      bar.update(1)
    if step % config.train.checkpoint_every_steps == 0 and step_in_epoch < steps_per_epoch:
      ckpts.save("latest", state, meta)
  _flush(pending, step, st, writer, ckpts, bar)  # an epoch cut short by skipped files
  if bar is not None:
    bar.close()
  return state


def _flush(pending, step, st, writer, ckpts, bar):
  """Brings step metrics to the host, stops on NaN/Inf, logs means."""
  if not pending:
    return
  host = jax.device_get(pending)
  if any(int(m["nonfinite"]) for m in host):
    raise NonFiniteLossError(
        f"stage {st.name}: NaN/Inf loss or gradient before global step {step}; the update was not applied and "
        f"the last good checkpoint is in {ckpts.dir}/latest. Lower the learning rate or enable "
        "optim.grad_clip_norm, then re-run the same command to resume.")
  mean = {k: float(np.mean([m[k] for m in host])) for k in ("loss", "accuracy", "grad_norm")}
  writer.write(step, st.name, "train", mean)
  if bar is not None:
    bar.set_postfix(loss=f"{mean['loss']:.4f}")


_CACHES: dict = {}


def _cache(config):
  if not config.data.cache_audio:
    return None
  key = (config.data.corpus, config.data.root)
  if key not in _CACHES:
    _CACHES[key] = pipeline.AudioCache()
  return _CACHES[key]


def _measure(train_fn, eval_fn, state, config, repeats: int = 5) -> dict:
  """Step time (forward + backward + update) and eval time per batch on fixed synthetic batches of the real shapes,
  blocking on each call, so the numbers are compute only (no input pipeline)."""
  b, n = config.data.batch_size, config.data.num_samples
  rng = np.random.default_rng(0)
  batch = {"audio": jnp.asarray(rng.standard_normal((b, n)).astype(np.float32) * 0.1),
           "label": jnp.asarray(np.arange(b) % 2, jnp.int32), "mask": jnp.ones((b,), jnp.float32)}
  scratch = jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), state)
  step_s = reporting.time_calls(train_fn, lambda: (scratch, batch), repeats, carry=True)
  eb = config.data.eval_batch_size
  ebatch = {"audio": jnp.zeros((eb, n), jnp.float32), "label": jnp.zeros((eb,), jnp.int32),
            "mask": jnp.ones((eb,), jnp.float32)}
  eval_s = reporting.time_calls(eval_fn, lambda: (state, ebatch), repeats)
  return {"step_seconds": step_s, "eval_batch_seconds": eval_s}
