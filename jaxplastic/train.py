"""Train state, losses, optimizer and the pure train/eval steps.

Steps are pure functions of (state, batch) with every dependency bound by keyword; callers jit them once per stage.
The state holds only arrays, so orbax saves it as is, and all arrays are batch-leading, so the same step runs sharded
over devices with `jax.sharding` (shard the batch axis, replicate the state) without a second code path.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from jaxplastic import surgery

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes.

  Attributes:
    step: global step, monotonic across stages.
    params: the trainable parameters (the whole tree, or only the new slices during dropin).
    frozen: the frozen parameters (empty unless dropin); never differentiated.
    model_state: non-parameter collections, e.g. {'batch_stats': ...}.
    opt_state: optimizer state for `params` only.
    lr_scale: reduce-on-plateau multiplier on every update.
    plateau_best: best dev loss seen by the plateau rule; plateau_bad_epochs: epochs since it improved.
    best_dev_eer: best dev EER (%) of this stage so far; best_step: the step it was reached.
    epochs_done: epochs of this stage that have been trained and evaluated on dev.
    epoch_start_step: global step at which the current epoch began (resuming skips the batches already seen).
  """

  step: jnp.ndarray
  params: PyTree
  frozen: PyTree
  model_state: PyTree
  opt_state: PyTree
  lr_scale: jnp.ndarray
  plateau_best: jnp.ndarray
  plateau_bad_epochs: jnp.ndarray
  best_dev_eer: jnp.ndarray
  best_step: jnp.ndarray
  epochs_done: jnp.ndarray
  epoch_start_step: jnp.ndarray


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
                    opt_state=tx.init(params), lr_scale=f32(1.0), plateau_best=f32(jnp.inf),
                    plateau_bad_epochs=i32(0), best_dev_eer=f32(jnp.inf), best_step=i32(-1),
                    epochs_done=i32(0), epoch_start_step=i32(step))
  # Fresh buffers for every leaf: the step donates the state, and XLA refuses a buffer that appears twice.
  return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), state)


# ----------------------------------------------------------------------------------------------------------------
# Losses. Every loss takes logits [B, C], integer labels [B], example weights [B] and returns a scalar mean.


def cross_entropy(logits, labels, weights):
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


def multiclass_hinge(logits, labels, weights, margin: float = 1.0):
  """PyTorch's MultiMarginLoss (p=1): mean over classes i != y of max(0, margin - x_y + x_i)."""
  logits = logits.astype(jnp.float32)
  num_classes = logits.shape[-1]
  true = jnp.take_along_axis(logits, labels[:, None], axis=-1)
  per_class = jnp.maximum(0.0, margin - true + logits)
  per_class = per_class * (1 - jax.nn.one_hot(labels, num_classes))
  losses = per_class.sum(-1) / num_classes
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


LOSSES = {"ce": cross_entropy, "hinge": multiclass_hinge}


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


def plateau_update(state: TrainState, dev_loss: float, *, factor: float, patience: int,
                   min_scale: float = 1e-3) -> TrainState:
  """ReduceLROnPlateau (mode min, PyTorch semantics): after `patience` epochs without improvement scale by `factor`.
  Runs on the host once per epoch; patience <= 0 disables it."""
  if patience <= 0:
    return state
  if dev_loss < float(state.plateau_best):
    return state.replace(plateau_best=jnp.float32(dev_loss), plateau_bad_epochs=jnp.int32(0))
  bad = int(state.plateau_bad_epochs) + 1
  if bad > patience:
    return state.replace(lr_scale=jnp.float32(max(float(state.lr_scale) * factor, min_scale)),
                         plateau_bad_epochs=jnp.int32(0))
  return state.replace(plateau_bad_epochs=jnp.int32(bad))


def jit_steps(*, model, tx, partition, plan, loss_name: str, class_weights, base_rng) -> tuple[Callable, Callable]:
  """The jitted train and eval steps of one stage (the state buffer is donated to the train step)."""
  train = jax.jit(functools.partial(train_step, model=model, tx=tx, partition=partition, plan=plan,
                                    loss_name=loss_name, class_weights=class_weights, base_rng=base_rng),
                  donate_argnums=0)
  evaluate = jax.jit(functools.partial(eval_step, model=model, partition=partition, loss_name=loss_name))
  return train, evaluate
