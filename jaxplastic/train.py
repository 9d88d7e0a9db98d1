"""Train state, host-side progress, losses, optimizer and the pure train/eval steps.

Steps are pure functions of (state, batch) with every dependency bound by keyword; callers jit them once per stage.
The state holds only arrays (what the step reads and writes), so orbax saves it as is; the loop's bookkeeping
(epochs done, best dev EER, plateau counters) is plain host data in `Progress`, saved as JSON beside it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping

from absl import logging
import flax
import jax
import jax.numpy as jnp
import optax

from jaxplastic import surgery

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes (arrays only).

  Attributes:
    step: global step, monotonic across stages.
    params: the trainable parameters (the whole tree, or only the new slices during dropin).
    frozen: the frozen parameters (empty unless some are frozen); never differentiated.
    model_state: non-parameter collections, e.g. {'batch_stats': ...}.
    opt_state: optimizer state for `params` only.
    lr_scale: reduce-on-plateau multiplier on every update (an argument of the step, not a compiled constant).
  """

  step: jnp.ndarray
  params: PyTree
  frozen: PyTree
  model_state: PyTree
  opt_state: PyTree
  lr_scale: jnp.ndarray


@dataclasses.dataclass
class Progress:
  """The host-side bookkeeping of one stage's loop, saved as JSON with every checkpoint of the stage.

  Attributes:
    stage_start_step: global step at which the stage began.
    step: global step of the state this progress belongs to (checked against `TrainState.step` on restore).
    epoch_start_step: global step at which the current epoch began (resuming skips the batches already seen).
    epochs_done: epochs of this stage trained and evaluated on dev.
    best_dev_eer: best dev EER (%) of this stage so far (inf before the first epoch); best_step: where.
    lr_scale: the plateau rule's multiplier (mirrored into `TrainState.lr_scale`).
    plateau_best: best dev loss seen by the plateau rule; plateau_bad_epochs: epochs since it improved.
  """

  stage_start_step: int
  step: int
  epoch_start_step: int
  epochs_done: int = 0
  best_dev_eer: float = math.inf
  best_step: int = -1
  lr_scale: float = 1.0
  plateau_best: float = math.inf
  plateau_bad_epochs: int = 0

  @classmethod
  def start(cls, step: int) -> "Progress":
    return cls(stage_start_step=step, step=step, epoch_start_step=step)

  @property
  def step_in_epoch(self) -> int:
    return self.step - self.epoch_start_step

  def to_json(self) -> dict:
    """JSON-safe: infinities become None."""
    return {k: (None if isinstance(v, float) and math.isinf(v) else v)
            for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def from_json(cls, obj: dict) -> "Progress":
    inf_default = ("best_dev_eer", "plateau_best")
    return cls(**{k: (math.inf if k in inf_default and v is None else v) for k, v in obj.items()})


def make_optimizer(optim_config) -> optax.GradientTransformation:
  """Adam or AdamW with optional global-norm clipping, as the authors used (lr is applied here, the plateau scale in
  the step)."""
  name = optim_config.name
  chain = []
  if optim_config.grad_clip_norm and optim_config.grad_clip_norm > 0:
    chain.append(optax.clip_by_global_norm(optim_config.grad_clip_norm))
  if name == "adam":
    chain.append(optax.adam(optim_config.learning_rate))
  elif name == "adamw":
    chain.append(optax.adamw(optim_config.learning_rate, weight_decay=optim_config.weight_decay))
  elif name == "sgd":
    chain.append(optax.sgd(optim_config.learning_rate, momentum=0.9))
  else:
    raise ValueError(f"optim.name must be adam, adamw or sgd, got {name!r}")
  return optax.chain(*chain)


def create_state(params: PyTree, frozen: PyTree, model_state: PyTree, tx: optax.GradientTransformation,
                 step: int = 0) -> TrainState:
  """A fresh state for a stage: optimizer moments start at zero."""
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  i32 = lambda v: jnp.asarray(v, jnp.int32)
  state = TrainState(step=i32(step), params=params, frozen=frozen, model_state=model_state,
                     opt_state=tx.init(params), lr_scale=f32(1.0))
  # Fresh buffers for every leaf: the step donates the state, and XLA refuses a buffer that appears twice.
  return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), state)


# ----------------------------------------------------------------------------------------------------------------
# Losses. Every loss takes logits [B, C], integer labels [B], example weights [B] and returns a scalar mean.


def cross_entropy(logits, labels, weights):
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


def _hinge_terms(logits, labels, margin):
  """[B, C] relu(margin - x_y + x_i) for every wrong class i (0 for i = y)."""
  logits = logits.astype(jnp.float32)
  true = jnp.take_along_axis(logits, labels[:, None], axis=-1)
  per_class = jnp.maximum(0.0, margin - true + logits)
  return per_class * (1 - jax.nn.one_hot(labels, logits.shape[-1]))


def hinge(logits, labels, weights, margin: float = 1.0):
  """The authors' GRNN "SVM" loss: sum over classes i != y of max(0, margin - x_y + x_i), averaged over the batch
  (no division by the number of classes)."""
  losses = _hinge_terms(logits, labels, margin).sum(-1)
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


def multi_margin(logits, labels, weights, margin: float = 1.0):
  """PyTorch's MultiMarginLoss (p=1): `hinge` divided by the number of classes."""
  losses = _hinge_terms(logits, labels, margin).sum(-1) / logits.shape[-1]
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


# config.optim.loss -> loss function.
LOSSES = {"ce": cross_entropy, "hinge": hinge, "multi_margin": multi_margin}


def example_weights(labels, mask, class_weights):
  """Mask times the per-class weight (class_weights[label]); class_weights None means 1."""
  if class_weights is None:
    return mask
  return mask * jnp.asarray(class_weights, jnp.float32)[labels]


# ----------------------------------------------------------------------------------------------------------------
# Steps.



def _apply(model, variables, audio, train, rng):
  mutable = [k for k in variables if k != "params"] if train else False
  rngs = {"dropout": rng} if train else None
  out = model.apply(variables, audio, train=train, rngs=rngs, mutable=mutable)
  return out if train else (out, {})


def train_step(state: TrainState, batch: dict, *, model, tx: optax.GradientTransformation,
               partition: surgery.Partition, plan: surgery.Plan | None, loss_name: str,
               class_weights, base_rng) -> tuple[TrainState, dict]:
  """One optimizer step on the trainable entries.

  Non-parameter collections (BatchNorm running statistics) follow the partition's `batch_stats` policy
  (`surgery.Partition.freeze_state`): "update" lets every running statistic move, as the authors' PyTorch does;
  "freeze" keeps the original channels' statistics bit-identical in dropin.

  A non-finite loss or gradient leaves the state untouched and is counted in `metrics['nonfinite']`; the host stops
  the run with a clear message, and the last checkpoint stays the last good one.
  """
  rng = jax.random.fold_in(base_rng, state.step)
  weights = example_weights(batch["label"], batch["mask"], class_weights)

  def loss_fn(params):
    full = partition.merge(params, state.frozen)
    logits, new_model_state = _apply(model, {"params": full, **state.model_state}, batch["audio"], True, rng)
    loss = LOSSES[loss_name](logits, batch["label"], weights)
    return loss, (logits, new_model_state)

  (loss, (logits, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  updates = jax.tree_util.tree_map(lambda u: u * state.lr_scale.astype(u.dtype), updates)
  params = optax.apply_updates(state.params, updates)
  model_state = partition.freeze_state(new_model_state, state.model_state, plan)
  finite = jnp.isfinite(loss) & jnp.all(jnp.asarray(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)] or [True]))
  keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)
  new_state = state.replace(step=state.step + 1, params=keep(params, state.params),
                            opt_state=keep(opt_state, state.opt_state),
                            model_state=keep(model_state, state.model_state))
  correct = (jnp.argmax(logits, -1) == batch["label"]) * batch["mask"]
  metrics = {"loss": loss, "accuracy": correct.sum() / jnp.maximum(batch["mask"].sum(), 1.0),
             "nonfinite": (~finite).astype(jnp.int32), "grad_norm": optax.tree.norm(grads)}
  return new_state, metrics


def eval_step(state: TrainState, batch: dict, *, model, partition: surgery.Partition, loss_name: str
              ) -> dict:
  """Scores (logit bona fide - logit spoof) and the masked loss of one batch."""
  full = partition.merge(state.params, state.frozen)
  logits, _ = _apply(model, {"params": full, **state.model_state}, batch["audio"], False, None)
  logits = logits.astype(jnp.float32)
  loss_sum = LOSSES[loss_name](logits, batch["label"], batch["mask"]) * batch["mask"].sum()
  return {"score": logits[:, 1] - logits[:, 0], "loss_sum": loss_sum}


def plateau_update(progress: Progress, dev_loss: float, *, factor: float, patience: int,
                   min_scale: float = 1e-3) -> Progress:
  """ReduceLROnPlateau (mode min, PyTorch semantics): after `patience` epochs without improvement scale by `factor`.
  Host bookkeeping, once per epoch; patience <= 0 disables it (the scale stays 1). Returns a new Progress."""
  if patience <= 0:
    return progress
  if dev_loss < progress.plateau_best:
    return dataclasses.replace(progress, plateau_best=float(dev_loss), plateau_bad_epochs=0)
  bad = progress.plateau_bad_epochs + 1
  if bad > patience:
    return dataclasses.replace(progress, lr_scale=max(progress.lr_scale * factor, min_scale), plateau_bad_epochs=0)
  return dataclasses.replace(progress, plateau_bad_epochs=bad)


@functools.cache
def _accepted(options: tuple[tuple[str, str], ...]) -> bool:
  try:
    jax.jit(lambda x: x + 1).lower(jnp.zeros(2)).compile(compiler_options=dict(options))
    return True
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("this jax (%s) rejects XLA options %s (%s); compiling with its defaults",
                    jax.__version__, dict(options), e)
    return False


def compiler_options(cpu_options: Mapping[str, str], backend: str | None = None) -> dict[str, str]:
  """`cpu_options` (a model's `ModelSpec.xla_cpu_options`) on the CPU backend, nothing on GPU/TPU, for
  `jax.jit(compiler_options=...)`. A jax whose XLA does not know them compiles with its defaults, after a warning."""
  if not cpu_options or (backend or jax.default_backend()) != "cpu":
    return {}
  return dict(cpu_options) if _accepted(tuple(sorted(cpu_options.items()))) else {}


def jit_steps(*, model, tx, partition, plan, loss_name: str, class_weights, base_rng,
              xla_cpu_options: Mapping[str, str] | None = None) -> tuple[Callable, Callable]:
  """The jitted train and eval steps of one stage (the state buffer is donated to the train step); on CPU compiled
  with `xla_cpu_options` (the model's `ModelSpec.xla_cpu_options`)."""
  if loss_name not in LOSSES:
    raise ValueError(f"optim.loss must be one of {sorted(LOSSES)}, got {loss_name!r}")
  options = compiler_options(xla_cpu_options or {})
  train = jax.jit(functools.partial(train_step, model=model, tx=tx, partition=partition, plan=plan,
                                    loss_name=loss_name, class_weights=class_weights, base_rng=base_rng),
                  donate_argnums=0, compiler_options=options)
  evaluate = jax.jit(functools.partial(eval_step, model=model, partition=partition, loss_name=loss_name),
                     compiler_options=options)
  return train, evaluate
