"""Runs an experiment: the stages of `config.stages` in order, with surgery between them, resumable at any point.

Baseline training, dropin (grow, train only the new slices; or everything) and plasticity (grow, retrain, prune
back, retrain) are all stage lists (see configs/base.py `stage`). Each stage is built (model, starting variables,
partition, optimizer, jitted steps), restored (from its latest checkpoint when resuming), trained (one global step
counter across stages, dev EER after every epoch, best-by-dev checkpoint) and finished (eval scores, a record).
Re-running with the same workdir skips finished stages and resumes the current one from its latest checkpoint,
mid-epoch included, with results bit-identical to an uninterrupted run.

The driver knows models only through their `models.ModelSpec`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any, Mapping

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
from jaxplastic.data import audio
from jaxplastic.data import pipeline

STAGE_KINDS = ("train", "grow", "prune")
# "best"/"last": the named earlier stage's best-by-dev or last parameters; "init": a fresh initialisation of this
# stage's widths (with the model's pretrained weights, when it has them), not any earlier stage's.
START_POINTS = ("best", "last", "init")


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN/Inf loss or gradient."""


# ----------------------------------------------------------------------------------------------------------------
# Models and widths.


def model_fields(model_config: Mapping, widths: Mapping | None = None) -> dict:
  """The model's fields for a stage: the base `config.model` with the stage's width overrides."""
  base = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
  fields = {k: tuple(v) if isinstance(v, list) else v for k, v in base.items()}
  for key, value in dict(widths or {}).items():
    if key not in fields:
      raise ValueError(f"stage widths name {key!r}, which is not a field of config.model; "
                       f"valid: {sorted(fields)}")
    fields[key] = tuple(value) if isinstance(value, (list, tuple)) else value
  return fields


def module_fields(fields: Mapping) -> dict:
  """The model fields without initialisation-only keys (what an export records and a module takes)."""
  return models.module_fields(fields)


def build(fields: Mapping):
  return models.build_model(fields)


def width_changes(small: Mapping, big: Mapping) -> dict:
  """The fields that differ, as {field: big value}."""
  return {k: v for k, v in big.items() if small.get(k) != v}


def init_variables(model, rng, num_samples: int) -> dict:
  """A fresh initialisation of `model` (all collections) for inputs of `num_samples` samples."""
  dummy = jnp.zeros((2, num_samples), jnp.float32)
  variables = jax.jit(lambda r: model.init({"params": r, "dropout": r}, dummy, train=False))(rng)
  return surgery._to_dict(variables)


# ----------------------------------------------------------------------------------------------------------------
# Evaluation.


def score_split(eval_fn, state, split, config, max_batches: int = -1, skipped=None,
                trim_silence_db: float | None = None) -> tuple[np.ndarray, float, float]:
  """Scores every utterance of `split` in protocol order -> (scores [N] (NaN where skipped, and reported in
  `skipped`), mean loss, seconds per batch). `trim_silence_db` strips leading/trailing silence first."""
  scores = np.full(len(split.items), np.nan, np.float64)
  loss_sum, count, seconds, batches = 0.0, 0.0, 0.0, 0
  it = pipeline.batches(split, batch_size=config.data.eval_batch_size, num_samples=config.data.num_samples,
                        train=False, seed=config.seed, sample_rate=config.data.sample_rate,
                        prefetch_batches=config.data.prefetch_batches, num_threads=config.data.num_threads,
                        skip_bad_files=config.data.skip_bad_files, skipped=skipped, pad=config.data.pad,
                        trim_silence_db=trim_silence_db)
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
# Validation.


def validate(config) -> list:
  """Checks the whole config before any work; returns the stage list."""
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
    if s.start_point not in START_POINTS:
      raise ValueError(f"stage {s.name}: start_point must be one of {START_POINTS}, got {s.start_point!r}")
    if s.start_point == "init" and (s.trainable == "new" or s.kind == "prune"):
      raise ValueError(f"stage {s.name}: start_point='init' starts from a fresh model, which has no grown slices "
                       "to train alone or units to prune; use kind 'train' or 'grow' with trainable='all'")
    if s.trainable == "new" and s.init == "function_preserving" and config.dropin.grown_slices == "freeze":
      # The added tensors would be read only through zeroed input slices that never train: no gradient reaches them.
      raise ValueError(f"stage {s.name}: init='function_preserving' zeroes the new input slices that read the "
                       "added tensors, and dropin.grown_slices='freeze' keeps them zero, so the added tensors would "
                       "never get a gradient; use init='random' or grown_slices='train'")
    if s.checkpoint and i > 0:
      raise ValueError(f"stage {s.name}: only the first stage can load a checkpoint (later stages start from "
                       "an earlier stage via start_from)")
    if s.prune not in ("added", "importance"):
      raise ValueError(f"stage {s.name}: prune must be 'added' or 'importance'")
    fields = model_fields(config.model, s.widths)  # unknown width names fail here, before any work
    spec = models.spec_of(fields)
    if (i == 0 and not s.checkpoint) or s.start_point == "init":
      spec.checkpoint(fields)  # a required pretrained checkpoint that is not set fails here
    if s.reinit:
      shapes = surgery.abstract_variables(build(fields), (1, config.data.num_samples))
      surgery.match_patterns(surgery.flatten(shapes["params"]), s.reinit, f"stage {s.name} reinit")
  if config.get("export_stage") and config.export_stage not in names:
    raise ValueError(f"config.export_stage {config.export_stage!r} is not a stage name: {names}")
  if config.optim.loss not in train_lib.LOSSES:
    raise ValueError(f"optim.loss must be one of {sorted(train_lib.LOSSES)}, got {config.optim.loss!r}")
  for name, valid in (("batch_stats", surgery.BATCH_STATS), ("grown_slices", surgery.GROWN_SLICES)):
    if config.dropin[name] not in valid:
      raise ValueError(f"dropin.{name} must be one of {valid}, got {config.dropin[name]!r}")
  if config.data.pad not in audio.PAD_MODES:
    raise ValueError(f"data.pad must be one of {audio.PAD_MODES}, got {config.data.pad!r}")
  if config.data.train_crop not in pipeline.TRAIN_CROPS:
    raise ValueError(f"data.train_crop must be one of {pipeline.TRAIN_CROPS}, got {config.data.train_crop!r}")
  return stages


# ----------------------------------------------------------------------------------------------------------------
# The run.


@dataclasses.dataclass
class _Run:
  """What every stage of one run shares."""

  config: ml_collections.ConfigDict
  workdir: str
  stages: list
  splits: dict
  writer: reporting.MetricWriter
  skipped: pipeline.SkipLog
  base_rng: Any
  # stage name -> {"fields": model fields, "best": variables, "last": variables}
  results: dict = dataclasses.field(default_factory=dict)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes) every stage of `config` in `workdir`; returns {'stages': [record, ...]}."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  stages = validate(config)
  os.makedirs(workdir, exist_ok=True)
  ckpt_lib.write_json_atomic(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
  logging.info("devices: %s", jax.devices())

  splits = {name: data_lib.load_split(config.data, name) for name in ("train", "dev", "eval")}
  for name, split in splits.items():
    logging.info("%s: %s", name, split.counts())
  ctx = _Run(config=config, workdir=workdir, stages=stages, splits=splits, writer=reporting.MetricWriter(workdir),
             skipped=pipeline.SkipLog(), base_rng=jax.random.PRNGKey(config.seed))
  records = []
  global_step = 0
  try:
    for index, st in enumerate(stages):
      rec, out = _run_stage(ctx, index, st, global_step)
      ctx.results[st.name] = out
      records.append(rec)
      global_step = rec["end_step"]
  finally:
    ctx.writer.close()
  names = [st.name for st in stages]
  export = config.get("export_stage") or names[-1]
  rec = records[names.index(export)]
  ckpt_lib.export_model(os.path.join(workdir, "model"), model_fields=module_fields(ctx.results[export]["fields"]),
                        variables=ctx.results[export]["best"],
                        info={"stage": export, "threshold": rec.get("dev", {}).get("eer_threshold"),
                              "corpus": config.data.corpus, "sample_rate": config.data.sample_rate,
                              "num_samples": config.data.num_samples, "pad": config.data.pad,
                              "dev_eer": rec.get("dev", {}).get("eer")})
  best = min(records, key=lambda r: r.get("dev", {}).get("eer", float("inf")))
  summary = {"stages": records, "exported_stage": export, "best_stage_by_dev": best["stage"],
             "skipped_files": ctx.skipped.count, "skipped_paths": ctx.skipped.paths[:20]}
  ckpt_lib.write_json_atomic(os.path.join(workdir, "results.json"), summary)
  print(reporting.results_table(records))
  if ctx.skipped.count:
    print(f"skipped {ctx.skipped.count} unreadable files (data.skip_bad_files=True); first: {ctx.skipped.paths[:5]}")
  return summary


# ----------------------------------------------------------------------------------------------------------------
# One stage: build -> restore -> train -> finish.


@dataclasses.dataclass
class _Stage:
  """One stage being run: its config entry, model, checkpoints and, once built, its partition and steps."""

  run: _Run
  index: int
  st: ml_collections.ConfigDict
  fields: dict
  model: Any
  spec: models.ModelSpec
  ckpts: ckpt_lib.StageCheckpoints
  num_epochs: int
  origin: str = ""
  plan: surgery.Plan | None = None
  partition: surgery.Partition | None = None
  train_fn: Any = None
  eval_fn: Any = None
  total_params: int = 0

  @property
  def config(self):
    return self.run.config

  @property
  def rng(self):
    """This stage's initialisation key (fresh slices, fresh models)."""
    return jax.random.fold_in(self.run.base_rng, self.index)

  def meta(self, progress: train_lib.Progress) -> dict:
    """The JSON saved with every checkpoint of this stage."""
    return {"stage": self.st.name, "stage_index": self.index, "model": self.fields, "trainable": self.st.trainable,
            "origin": self.origin, "progress": progress.to_json()}

  def full_variables(self, state) -> dict:
    return {"params": self.partition.merge(state.params, state.frozen), **state.model_state}


def _run_stage(run: _Run, index: int, st, global_step: int) -> tuple[dict, dict]:
  t0 = time.perf_counter()
  fields = model_fields(run.config.model, st.widths)
  num_epochs = st.num_epochs
  if st.checkpoint and num_epochs:
    # `checkpoint` means "this stage is already trained": load it instead of training (see configs/base.stage).
    logging.warning("stage %s loads %s instead of training; its num_epochs=%d is not used", st.name,
                    st.checkpoint, num_epochs)
    num_epochs = 0
  stage = _Stage(run=run, index=index, st=st, fields=fields, model=build(fields), spec=models.spec_of(fields),
                 ckpts=ckpt_lib.StageCheckpoints(run.workdir, index, st.name), num_epochs=num_epochs)
  try:
    done = stage.ckpts.done()
    state = _build(stage, global_step, structure_only=bool(done) and st.trainable != "new")
    if done:
      return _reuse_finished(stage, state, done)
    state, progress = _restore(stage, state, global_step)
    state, progress, epoch_times = _train(stage, state, progress)
    return _finish(stage, state, progress, epoch_times, t0)
  finally:
    stage.ckpts.close()


def _build(stage: _Stage, global_step: int, structure_only: bool) -> train_lib.TrainState:
  """Starting variables (surgery included), partition, optimizer and jitted steps -> the stage's initial state.

  `structure_only`: a finished stage whose checkpoints will be restored over it only needs the right shapes (a
  finished dropin stage still needs its grow plan to rebuild the partition its checkpoints were saved with).
  """
  config, st = stage.config, stage.st
  if structure_only:
    variables = init_variables(stage.model, stage.rng, config.data.num_samples)
  else:
    variables, stage.plan, stage.origin = _start_variables(stage)
  if st.trainable == "new":
    stage.partition = surgery.Partition.new_slices(
        stage.plan, train_patterns=config.dropin.train_patterns, recurrent=stage.spec.recurrent,
        old_reads_new=config.dropin.old_reads_new, grown_slices=config.dropin.grown_slices,
        batch_stats=config.dropin.batch_stats)
  elif st.kind == "grow" and not config.dropin.old_reads_new:
    # The grown all-trainable comparison keeps the dropin model's structure: no new->old recurrent blocks.
    stage.partition = surgery.Partition.new_slices(_shape_plan(stage), recurrent=stage.spec.recurrent,
                                                   old_reads_new=False, originals="train")
  elif stage.spec.frozen_patterns(stage.model):
    stage.partition = surgery.Partition.fixed(variables["params"], stage.spec.frozen_patterns(stage.model))
  else:
    stage.partition = surgery.Partition.everything()
  params = variables["params"]
  trainable, frozen = stage.partition.split(params)
  if st.reinit and st.trainable == "new":
    untrained = sorted(surgery.match_patterns(surgery.flatten(params), st.reinit, f"stage {st.name} reinit")
                       - set(surgery.flatten(trainable)))
    if untrained:
      raise ValueError(f"stage {st.name}: reinit {untrained} would stay frozen at a random init; add them to "
                       "dropin.train_patterns")
  tx = train_lib.make_optimizer(_stage_optim(config, st))
  model_state = {k: v for k, v in variables.items() if k != "params"}
  stage.total_params = surgery.count(params)
  stage.train_fn, stage.eval_fn = train_lib.jit_steps(
      model=stage.model, tx=tx, partition=stage.partition, plan=stage.plan, loss_name=config.optim.loss,
      class_weights=None if config.optim.class_weights is None else tuple(config.optim.class_weights),
      base_rng=jax.random.fold_in(stage.run.base_rng, 1000 + stage.index),
      xla_cpu_options=stage.spec.xla_cpu_options)
  return train_lib.create_state(trainable, frozen, model_state, tx, step=global_step)


def _shape_plan(stage: _Stage) -> surgery.Plan:
  """The grow plan from the stage this one starts from to this stage's widths, from shapes alone."""
  st, index = stage.st, stage.index
  src_fields = stage.run.results[st.start_from or stage.run.stages[index - 1].name]["fields"]
  shape = (1, stage.config.data.num_samples)
  return surgery.make_plan(surgery.abstract_variables(build(src_fields), shape),
                           surgery.abstract_variables(stage.model, shape), what="grow")


def _start_variables(stage: _Stage) -> tuple[dict, surgery.Plan | None, str]:
  """The stage's initial full variables, the grow plan (for dropin partitions) and a note of how they came about."""
  config, st, index = stage.config, stage.st, stage.index
  num_samples = config.data.num_samples
  # A fresh init of this stage's widths, computed once and only when needed (new slices, reinit, fresh starts).
  fresh = functools.cache(lambda: init_variables(stage.model, stage.rng, num_samples))
  plan = None
  if index == 0 and st.checkpoint:
    meta, variables = ckpt_lib.load_export(_export_dir(st.checkpoint))
    loaded = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["model"].items()}
    if loaded != module_fields(stage.fields):
      raise ValueError(f"stage {st.name}: checkpoint {st.checkpoint} holds a model with fields "
                       f"{width_changes(module_fields(stage.fields), loaded)} different from this stage's")
    origin = f"loaded {st.checkpoint}"
  elif index == 0 or st.start_point == "init":
    variables, origin = _initialised(stage, fresh)
  else:
    src_name = st.start_from or stage.run.stages[index - 1].name
    src = stage.run.results[src_name]
    start = src[st.start_point]
    changes = width_changes(src["fields"], stage.fields)
    from_src = f"{src_name}/{st.start_point}"
    # Shapes, not fields, decide: a stage may change fields that shape no tensor (dropout, LayerDrop).
    if surgery.shapes_of(start) == surgery.shapes_of(surgery.abstract_variables(stage.model, (1, num_samples))):
      if st.kind != "train":
        raise ValueError(f"stage {st.name}: kind {st.kind!r} but its parameter shapes equal those of {src_name}")
      variables, origin = start, f"from {from_src}" + (f" with {changes}" if changes else "")
    elif st.kind == "train":
      raise ValueError(f"stage {st.name}: kind 'train' but widths differ from {src_name}: {changes}; use kind "
                       "'grow' or 'prune'")
    elif st.kind == "grow":
      plan = surgery.make_plan(start, fresh(), what="grow")
      variables = surgery.grow(start, fresh(), plan, init=st.init, output_axes=stage.spec.output_axes)
      logging.info("stage %s: grew %s\n%s", st.name, changes, plan.describe())
      origin = f"grow {changes} from {from_src} ({st.init})"
    else:
      variables = _pruned(stage, start, src["fields"])
      origin = f"prune {changes} ({st.prune}) from {from_src}"
  if st.reinit:
    variables = _reinit(st, variables, fresh())
    origin += f"; reinit {tuple(st.reinit)}"
  return variables, plan, origin


def _initialised(stage: _Stage, fresh) -> tuple[dict, str]:
  """A fresh model of this stage's widths. With a pretrained checkpoint, its weights are loaded at `config.model`'s
  widths (the checkpoint's architecture) and grown into this stage's (new slices fresh, `stage.init`)."""
  config, st = stage.config, stage.st
  checkpoint = stage.spec.checkpoint(stage.fields)
  if not checkpoint:
    return fresh(), "fresh init"
  base = model_fields(config.model)
  if module_fields(base) == module_fields(stage.fields):
    return stage.spec.load_pretrained(checkpoint, module_fields(stage.fields), fresh()), f"pretrained {checkpoint}"
  base_vars = init_variables(build(base), stage.rng, config.data.num_samples)
  loaded = stage.spec.load_pretrained(checkpoint, module_fields(base), base_vars)
  plan = surgery.make_plan(loaded, fresh(), what="grow")
  grown = surgery.grow(loaded, fresh(), plan, init=st.init, output_axes=stage.spec.output_axes)
  return grown, f"pretrained {checkpoint} grown by {width_changes(base, stage.fields)} ({st.init})"


def _pruned(stage: _Stage, start: dict, big_fields: dict) -> dict:
  num_samples = stage.config.data.num_samples
  plan = surgery.make_plan(surgery.abstract_variables(stage.model, (1, num_samples)), start, what="prune")
  keep, groups = None, None
  if stage.st.prune == "importance":
    widths = {k: big_fields[k] for k in width_changes(stage.fields, big_fields)}
    groups = surgery.width_groups(build, stage.fields, widths, (1, num_samples))
    groups = {k: v for k, v in groups.items() if v}  # fields that change no shape (e.g. layerdrop) hold no units
    keep = surgery.keep_most_important(surgery.unit_importance(start, groups), plan, groups)
    logging.info("stage %s: importance pruning keeps %s", stage.st.name, {k: v.tolist() for k, v in keep.items()})
  return surgery.prune(start, plan, keep=keep, groups=groups)


def _reinit(st, variables: dict, fresh: dict) -> dict:
  """Replaces the `params` tensors matching `st.reinit` with this stage's fresh initialisation."""
  params = surgery.flatten(variables["params"])
  chosen = surgery.match_patterns(params, st.reinit, f"stage {st.name} reinit")
  new = surgery.flatten(fresh["params"])
  params.update({p: new[p] for p in chosen})
  return dict(variables, params=surgery.unflatten(params))


def _export_dir(path: str) -> str:
  """Accepts an exported model folder or a finished run's workdir."""
  return path if os.path.exists(os.path.join(path, "model.json")) else os.path.join(path, "model")


def _stage_optim(config, st):
  optim = copy.deepcopy(config.optim)
  with optim.unlocked():
    if st.learning_rate is not None:
      optim.learning_rate = st.learning_rate
  return optim


def _reuse_finished(stage: _Stage, state, done: dict) -> tuple[dict, dict]:
  best, _ = stage.ckpts.restore("best", state)
  last, _ = stage.ckpts.restore("latest", state)
  logging.info("stage %s finished earlier; reusing its checkpoints", stage.st.name)
  return done, {"fields": stage.fields, "best": stage.full_variables(best), "last": stage.full_variables(last)}


def _restore(stage: _Stage, state, global_step: int) -> tuple[train_lib.TrainState, train_lib.Progress]:
  """The stage's latest checkpoint and its progress, or the fresh state at `global_step`."""
  ckpts = stage.ckpts
  if not ckpts.has("latest"):
    return state, train_lib.Progress.start(global_step)
  state, meta = ckpts.restore("latest", state)
  if "progress" not in meta:
    raise ckpt_lib.CheckpointError(f"{ckpts.dir}/latest was written by an older jaxplastic (no progress record); "
                                   "delete it to retrain this stage")
  progress = train_lib.Progress.from_json(meta["progress"])
  if progress.step != int(state.step):  # one sync per restore: the host copy must describe these arrays
    raise ckpt_lib.CheckpointError(f"{ckpts.dir}/latest: progress says step {progress.step}, the state holds "
                                   f"{int(state.step)}")
  stage.origin = meta.get("origin", stage.origin)
  logging.info("stage %s: resuming at global step %d (epoch %d, batch %d)", stage.st.name, progress.step,
               progress.epochs_done + 1, progress.step_in_epoch)
  _recover_best(stage, state, progress)
  return state, progress


def _recover_best(stage: _Stage, state, progress: train_lib.Progress) -> None:
  """Makes `best/` hold the best model `latest` knows of.

  `best` is saved before `latest`, so `best/` is never behind; a `best/` that is behind (a crash between the two
  saves of an older version, or a `best/` removed by hand) is restored from `latest` when `latest` is that model.
  """
  if progress.best_step < 0:
    return
  have = stage.ckpts.step("best")
  if have is not None and have >= progress.best_step:
    return
  if progress.step == progress.best_step:
    logging.warning("stage %s: best/ lacks the best model (step %d); saving it from latest/", stage.st.name,
                    progress.best_step)
    stage.ckpts.save("best", state, dict(stage.meta(progress), dev_eer=progress.best_dev_eer), step=progress.step)
    return
  raise ckpt_lib.CheckpointError(
      f"{stage.ckpts.dir}: latest/ records the best dev EER at step {progress.best_step}, but best/ holds step "
      f"{have}; that model is lost. Delete {stage.ckpts.dir} to retrain this stage.")


def _train(stage: _Stage, state, progress: train_lib.Progress):
  """Trains the remaining epochs; saves `latest` every `train.checkpoint_every_steps` and at every epoch end."""
  config, st = stage.config, stage.st
  train_split = stage.run.splits["train"]
  steps_per_epoch = pipeline.epoch_steps(train_split, config.data.batch_size, train=True,
                                         drop_last=config.data.drop_last_train_batch)
  if config.train.max_steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, config.train.max_steps_per_epoch)
  if stage.num_epochs > 0 and steps_per_epoch == 0:
    raise ValueError(f"training split has {len(train_split.items)} utterances, fewer than one batch of "
                     f"{config.data.batch_size}")
  logging.info("stage %s (%s, trainable=%s): %s; %d epochs x %d steps; compiling...", st.name, st.kind,
               st.trainable, stage.origin, stage.num_epochs, steps_per_epoch)
  eff = reporting.efficiency(state, total_params=stage.total_params)
  stage.run.writer.write(progress.step, st.name, "surgery", {
      "stage_index": stage.index, **eff, **{f"width/{k}": str(v) for k, v in stage.fields.items()}})
  epoch_times = []
  while progress.epochs_done < stage.num_epochs:
    offset = progress.step_in_epoch
    t0 = time.perf_counter()
    state = _train_epoch(stage, state, progress, steps_per_epoch)
    if offset == 0:
      epoch_times.append(time.perf_counter() - t0)
    state, progress = _end_of_epoch(stage, state, progress)
  if not stage.ckpts.has("best"):  # a stage with 0 epochs: its starting point is its best and last
    stage.ckpts.save("best", state, stage.meta(progress), step=progress.step)
    stage.ckpts.save("latest", state, stage.meta(progress), step=progress.step)
  return state, progress, epoch_times


def _train_epoch(stage: _Stage, state, progress: train_lib.Progress, steps_per_epoch: int):
  """Trains the rest of the current epoch (from `progress.step_in_epoch`); advances `progress.step` in place."""
  config, st, run = stage.config, stage.st, stage.run
  epoch = progress.epochs_done
  offset = progress.step_in_epoch
  it = pipeline.batches(run.splits["train"], batch_size=config.data.batch_size, num_samples=config.data.num_samples,
                        train=True, seed=config.seed, epoch=epoch + 1000 * stage.index,
                        sample_rate=config.data.sample_rate, cache=_cache(config),
                        prefetch_batches=config.data.prefetch_batches, num_threads=config.data.num_threads,
                        skip_bad_files=config.data.skip_bad_files, skipped=run.skipped, start_batch=offset,
                        pad=config.data.pad, train_crop=config.data.train_crop,
                        drop_last=config.data.drop_last_train_batch)
  bar = None
  if config.train.progress:
    from tqdm import tqdm
    bar = tqdm(total=steps_per_epoch, initial=offset, desc=f"{st.name} epoch {epoch + 1}/{stage.num_epochs}",
               leave=False, dynamic_ncols=True)
  pending = []
  step_in_epoch = offset
  for batch in it:
    if step_in_epoch >= steps_per_epoch:
      break
    state, metrics = stage.train_fn(state, {k: v for k, v in batch.items() if k != "index"})
    pending.append(metrics)
    step_in_epoch += 1
    progress.step += 1
    if progress.step % config.train.log_every_steps == 0 or step_in_epoch == steps_per_epoch:
      _flush(pending, progress.step, stage, bar)
      pending = []
    if bar is not None:
      bar.update(1)
    if progress.step % config.train.checkpoint_every_steps == 0 and step_in_epoch < steps_per_epoch:
      stage.ckpts.save("latest", state, stage.meta(progress), step=progress.step)
  _flush(pending, progress.step, stage, bar)  # an epoch cut short by skipped files
  if bar is not None:
    bar.close()
  return state


def _end_of_epoch(stage: _Stage, state, progress: train_lib.Progress):
  """Dev EER and loss, the plateau rule, and the epoch-end checkpoints: `best` (when improved) before `latest`."""
  config, st, run = stage.config, stage.st, stage.run
  dev_split = run.splits["dev"]
  scores, dev_loss, _ = score_split(stage.eval_fn, state, dev_split, config, config.train.max_eval_batches,
                                    run.skipped)
  m = metrics_for(dev_split, scores)
  progress = train_lib.plateau_update(progress, dev_loss, factor=config.optim.plateau_factor,
                                      patience=config.optim.plateau_patience)
  # A new scalar, never an alias of another leaf: the train step donates every buffer of the state.
  state = state.replace(lr_scale=jnp.asarray(progress.lr_scale, jnp.float32))
  improved = m["eer"] < progress.best_dev_eer
  progress = dataclasses.replace(progress, epochs_done=progress.epochs_done + 1, epoch_start_step=progress.step)
  if improved:
    progress = dataclasses.replace(progress, best_dev_eer=float(m["eer"]), best_step=progress.step)
  run.writer.write(progress.step, st.name, "dev", {"eer": m["eer"], "loss": dev_loss, "lr_scale": progress.lr_scale,
                                                   "accuracy": m["accuracy"]})
  logging.info("stage %s epoch %d: dev EER %.3f%% loss %.4f", st.name, progress.epochs_done, m["eer"], dev_loss)
  meta = stage.meta(progress)
  if improved:  # best first: a crash before `latest` is saved repeats this epoch, which finds this best again
    stage.ckpts.save("best", state, dict(meta, dev_eer=m["eer"]), step=progress.step)
  stage.ckpts.save("latest", state, meta, step=progress.step)
  return state, progress


def _finish(stage: _Stage, state, progress: train_lib.Progress, epoch_times, t0) -> tuple[dict, dict]:
  """Scores the best checkpoint on dev and eval (and their silence-trimmed versions), measures, writes the record."""
  config, st, run = stage.config, stage.st, stage.run
  best_state, _ = stage.ckpts.restore("best", state)
  record = {"stage": st.name, "stage_index": stage.index, "kind": st.kind, "trainable": st.trainable,
            "origin": stage.origin, "model": stage.fields, "start_step": progress.stage_start_step,
            "end_step": progress.step, **reporting.efficiency(state, total_params=stage.total_params),
            "epoch_seconds": float(np.mean(epoch_times)) if epoch_times else None,
            "best_step": progress.best_step}
  sizes = {"eval_batch_size": config.data.eval_batch_size, "num_samples": config.data.num_samples}
  if stage.num_epochs > 0:
    record.update(reporting.step_times(stage.train_fn, stage.eval_fn, state, batch_size=config.data.batch_size,
                                       **sizes))
  trains = stage.num_epochs > 0
  record.update(reporting.stage_memory(state, eval_fn=stage.eval_fn, train_fn=stage.train_fn if trains else None,
                                       batch_size=config.data.batch_size, **sizes))
  eval_t0 = time.perf_counter()
  split_names = ("dev", "eval") if config.train.eval_at_stage_end else ("dev",)
  variants = [("", None)]
  if config.train.eval_trim_silence_db is not None:
    variants.append(("_trimmed", config.train.eval_trim_silence_db))
  for suffix, trim_db in variants:
    for split_name in split_names:
      split = run.splits[split_name]
      scores, _, sec = score_split(stage.eval_fn, best_state, split, config, config.train.max_eval_batches,
                                   run.skipped, trim_silence_db=trim_db)
      m = metrics_for(split, scores)
      key = split_name + suffix
      record[key] = m
      ok = np.isfinite(scores)
      os.makedirs(os.path.join(run.workdir, "scores"), exist_ok=True)
      evaluation.write_score_file(
          os.path.join(run.workdir, "scores", f"{stage.index}_{st.name}_{key}.txt"),
          [it.utt_id for it, k in zip(split.items, ok) if k], [it.attack for it, k in zip(split.items, ok) if k],
          split.labels()[ok], scores[ok])
      run.writer.write(progress.step, st.name, key, {k: v for k, v in m.items() if k != "per_attack"})
      if key == "eval":
        record["eval_seconds_per_batch"] = sec
  record["eval_wall_seconds"] = time.perf_counter() - eval_t0
  # Wall time of this stage in this process (a resumed stage counts only the part after the restart).
  record["stage_seconds"] = time.perf_counter() - t0
  stage.ckpts.mark_done(record)
  return record, {"fields": stage.fields, "best": stage.full_variables(best_state),
                  "last": stage.full_variables(state)}


def _flush(pending, step, stage: _Stage, bar):
  """Brings step metrics to the host, stops on NaN/Inf, logs means."""
  if not pending:
    return
  host = jax.device_get(pending)
  if any(int(m["nonfinite"]) for m in host):
    raise NonFiniteLossError(
        f"stage {stage.st.name}: NaN/Inf loss or gradient before global step {step}; the update was not applied "
        f"and the last good checkpoint is in {stage.ckpts.dir}/latest. Lower the learning rate or enable "
        "optim.grad_clip_norm, then re-run the same command to resume.")
  mean = {k: float(np.mean([m[k] for m in host])) for k in ("loss", "accuracy", "grad_norm")}
  stage.run.writer.write(step, stage.st.name, "train", mean)
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
