"""Parameter surgery: grow and prune layers of any jaxplastic model by comparing parameter shapes.

The plan is never written by hand. `make_plan` compares the variable shapes of a model under a smaller and a larger
width configuration (`jax.eval_shape`, free) and records, for every tensor, which axes differ. The original tensor
always occupies the *leading* slice of every grown axis, so

  grow(p)  = fresh init of the big model with each old tensor written into its leading slice,
  prune(q) = each tensor sliced back to its leading block (or gathered at chosen unit indices),

and prune(grow(p)) == p bit for bit. `Partition` cuts a grown parameter tree into trainable and frozen blocks (the
originals, optionally the new slices of grown tensors, and zero blocks through which old recurrent units would read
new ones), so that during dropin only the trainable blocks are differentiated and carry optimizer state;
`dropin_optimizer` is the same split as an `optax.multi_transform` for a training loop of one's own.

Paths are '/'-joined and include the collection: `params/stage2/block1/conv1/kernel`, `batch_stats/...`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

PyTree = Any


class SurgeryError(ValueError):
  """A plan, a width change or a tensor that surgery cannot handle exactly."""


# ----------------------------------------------------------------------------------------------------------------
# Paths and shapes.


def flatten(tree: Mapping) -> dict[str, Any]:
  """Nested dict -> {'a/b/c': leaf}."""
  return traverse_util.flatten_dict(_to_dict(tree), sep="/")


def unflatten(flat: Mapping[str, Any]) -> dict:
  """{'a/b/c': leaf} -> nested dict (plain dicts)."""
  return traverse_util.unflatten_dict(dict(flat), sep="/")


def _to_dict(tree):
  if hasattr(tree, "unfreeze"):
    tree = tree.unfreeze()
  return tree


def shapes_of(tree: Mapping) -> dict[str, tuple[int, ...]]:
  """'/'-joined path -> shape, for arrays or ShapeDtypeStructs."""
  return {k: tuple(v.shape) for k, v in flatten(tree).items()}


def abstract_variables(model, input_shape: Sequence[int]) -> dict:
  """Variable shapes of `model` for an input of `input_shape`, without computing anything."""
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
  return _to_dict(jax.eval_shape(lambda x: model.init(rngs, x, train=False), x))


# ----------------------------------------------------------------------------------------------------------------
# Plans.


@dataclasses.dataclass(frozen=True)
class Plan:
  """How every tensor of a small model maps into the big one.

  Attributes:
    small: path -> shape under the small widths.
    big: path -> shape under the big widths.
    grown: path -> axes whose size differs (only tensors present in both).
    added: paths that exist only in the big model (initialised fresh on grow, dropped on prune).
  """

  small: Mapping[str, tuple[int, ...]]
  big: Mapping[str, tuple[int, ...]]
  grown: Mapping[str, tuple[int, ...]]
  added: tuple[str, ...]

  def describe(self) -> str:
    lines = [f"{p}: {self.small[p]} -> {self.big[p]}" for p in sorted(self.grown)]
    lines += [f"{p}: (new) {self.big[p]}" for p in self.added]
    return "\n".join(lines) if lines else "(no change)"


def make_plan(small: Mapping, big: Mapping, *, what: str = "grow") -> Plan:
  """Compares two variable trees (arrays or ShapeDtypeStructs) and returns the surgery plan.

  Args:
    small: variables (or their shapes) at the smaller widths.
    big: variables at the larger widths.
    what: "grow" or "prune", only to word errors for the caller's direction.

  Raises:
    SurgeryError: a tensor of `small` is missing from `big`, changes rank, or is larger along some axis (a grow that
      shrinks, or a prune that grows).
  """
  s, b = shapes_of(small), shapes_of(big)
  missing = sorted(set(s) - set(b))
  if missing:
    raise SurgeryError(f"{what}: tensors of the smaller model are absent from the larger one: {missing[:10]}")
  grown, wrong = {}, []
  for path, shape in s.items():
    other = b[path]
    if len(other) != len(shape):
      wrong.append(f"{path}: rank {shape} vs {other}")
      continue
    if any(o < n for n, o in zip(shape, other)):
      wrong.append(f"{path}: {shape} -> {other}")
      continue
    axes = tuple(i for i, (n, o) in enumerate(zip(shape, other)) if o != n)
    if axes:
      grown[path] = axes
  if wrong:
    verb = "shrinks" if what == "grow" else "grows"
    raise SurgeryError(f"{what}: the requested widths make this {what} that {verb} tensors: " + "; ".join(wrong[:10]))
  added = tuple(sorted(set(b) - set(s)))
  return Plan(small=s, big=b, grown=grown, added=added)


def width_groups(make_model: Callable[[dict], Any], small_fields: Mapping, big_fields: Mapping,
                 input_shape: Sequence[int]) -> dict[str, list[tuple[str, int]]]:
  """Which (tensor, axis) pairs belong to each changed width, found by changing one width at a time.

  A width field may be an int or a tuple of ints (one entry per layer); every changed entry is its own group,
  named `field` or `field[i]`. Units of one group must be kept or removed together (importance pruning).

  Raises:
    SurgeryError: two groups claim the same axis of a tensor, or a grown axis belongs to no group.
  """
  base = abstract_variables(make_model(dict(small_fields)), input_shape)
  groups: dict[str, list[tuple[str, int]]] = {}
  for field, new in big_fields.items():
    old = small_fields[field]
    entries = [(field, None, new)] if not isinstance(new, (tuple, list)) else [
        (f"{field}[{i}]", i, v) for i, v in enumerate(new) if v != old[i]]
    for name, idx, value in entries:
      if idx is None and value == old:
        continue
      fields = dict(small_fields)
      if idx is None:
        fields[field] = value
      else:
        fields[field] = tuple(value if j == idx else o for j, o in enumerate(old))
      plan = make_plan(base, abstract_variables(make_model(fields), input_shape))
      groups[name] = [(p, a) for p, axes in sorted(plan.grown.items()) for a in axes]
  owner: dict[tuple[str, int], str] = {}
  for name, members in groups.items():
    for m in members:
      if m in owner:
        raise SurgeryError(f"axis {m[1]} of {m[0]} is controlled by both {owner[m]} and {name}; "
                           "prune those widths in separate steps")
      owner[m] = name
  full = make_plan(base, abstract_variables(make_model(dict(big_fields, **{
      k: v for k, v in small_fields.items() if k not in big_fields})), input_shape))
  uncovered = [(p, a) for p, axes in full.grown.items() for a in axes if (p, a) not in owner]
  if uncovered:
    raise SurgeryError(f"grown axes not attributable to a single width field: {uncovered[:10]}")
  return groups


# ----------------------------------------------------------------------------------------------------------------
# Grow and prune.

# Trailing axes that are outputs, by leaf name. Everything else of a kernel is an input (contracted) axis; non-kernel
# leaves (bias, scale, BatchNorm statistics) are all-output. Models with multi-axis outputs (attention projections
# shaped [hidden, heads, head_dim]) extend this through `output_axes`.
DEFAULT_OUTPUT_AXES = ((r".*/kernel", 1),)


def _num_output_axes(path: str, ndim: int, rules: Sequence[tuple[str, int]]) -> int:
  for pattern, n in rules:
    if re.fullmatch(pattern, path):
      return n
  return ndim


def _check_shapes(tree: Mapping, expected: Mapping[str, tuple], label: str) -> dict[str, Any]:
  flat = flatten(tree)
  got = {k: tuple(v.shape) for k, v in flat.items()}
  missing = sorted(set(expected) - set(got))
  extra = sorted(set(got) - set(expected))
  if missing or extra:
    raise SurgeryError(f"{label}: tensors missing {missing[:10]}, unexpected {extra[:10]}")
  bad = [f"{k}: has {got[k]}, plan says {expected[k]}" for k in expected if got[k] != expected[k]]
  if bad:
    raise SurgeryError(f"{label}: shapes do not match the plan: " + "; ".join(bad[:10]))
  return flat


def grow(variables: Mapping, fresh: Mapping, plan: Plan, *, init: str = "random",
         output_axes: Sequence[tuple[str, int]] = ()) -> dict:
  """Embeds every tensor of `variables` into the leading slice of the matching tensor of `fresh`.

  Args:
    variables: the trained small model's variables (all collections).
    fresh: a fresh initialisation of the big model; supplies the new slices and any added tensors.
    plan: from `make_plan(variables, fresh)`.
    init: "random" keeps the fresh values of the new slices (the authors' choice); "function_preserving"
      additionally zeroes every entry that connects a new input unit to an old output unit, so the grown model
      computes exactly the small model's outputs at growth time (LoRA's B = 0 trick). Exact except where a
      normalisation runs over a grown axis (LayerNorm over a grown hidden size) or a grown head width changes the
      attention temperature; BatchNorm is per channel and preserves.
    output_axes: extra (regex, number of trailing output axes) rules, checked before `DEFAULT_OUTPUT_AXES`.

  Returns:
    The big model's variables. Nothing is modified in place; all checks run before any array is touched.
  """
  if init not in ("random", "function_preserving"):
    raise SurgeryError(f"init must be 'random' or 'function_preserving', got {init!r}")
  small = _check_shapes(variables, plan.small, "grow: the given variables")
  big = _check_shapes(fresh, plan.big, "grow: the fresh initialisation")
  rules = tuple(output_axes) + DEFAULT_OUTPUT_AXES
  out = {}
  for path, target in big.items():
    if path not in small:
      out[path] = target
      continue
    old = np.asarray(small[path])
    if path not in plan.grown:
      out[path] = old
      continue
    value = np.array(target, dtype=old.dtype)
    if init == "function_preserving":
      value[_new_to_old_mask(old.shape, target.shape, _num_output_axes(path, old.ndim, rules))] = 0
    value[tuple(slice(0, n) for n in old.shape)] = old
    out[path] = value
  return unflatten(out)


def _new_to_old_mask(small: tuple, big: tuple, num_out: int) -> np.ndarray:
  """True where some input index is new and every output index is old: the entries through which new units would
  change old ones."""
  ndim = len(big)
  num_in = ndim - num_out
  if num_in <= 0:
    return np.zeros(big, bool)
  new_in = np.zeros(big, bool)
  old_out = np.ones(big, bool)
  for axis in range(ndim):
    shape = [1] * ndim
    shape[axis] = big[axis]
    is_new = (np.arange(big[axis]) >= small[axis]).reshape(shape)
    if axis < num_in:
      new_in = new_in | is_new
    else:
      old_out = old_out & ~is_new
  return new_in & old_out


def prune(variables: Mapping, plan: Plan, keep: Mapping[str, Sequence[int]] | None = None,
          groups: Mapping[str, Sequence[tuple[str, int]]] | None = None) -> dict:
  """Slices every tensor of the big model back to the small shapes.

  Args:
    variables: the big model's variables.
    plan: from `make_plan(small, big, what="prune")`.
    keep: optional group name -> sorted unit indices to keep (importance pruning); groups not named keep their
      leading units, i.e. exactly the units that existed before growth.
    groups: from `width_groups`, required with `keep`.

  Returns:
    Variables with exactly the small shapes.
  """
  big = _check_shapes(variables, plan.big, "prune: the given variables")
  index: dict[tuple[str, int], np.ndarray] = {}
  if keep:
    if groups is None:
      raise SurgeryError("prune: `keep` needs `groups` (see width_groups)")
    unknown = sorted(set(keep) - set(groups))
    if unknown:
      raise SurgeryError(f"prune: unknown width groups {unknown}; valid: {sorted(groups)}")
    for name, idx in keep.items():
      idx = np.asarray(idx)
      for path, axis in groups[name]:
        want = plan.small[path][axis]
        if idx.shape != (want,) or len(np.unique(idx)) != want or idx.min() < 0 or idx.max() >= plan.big[path][axis]:
          raise SurgeryError(f"prune: group {name} must keep {want} distinct units below "
                             f"{plan.big[path][axis]}, got {idx.tolist()[:20]}")
        index[(path, axis)] = idx
  out = {}
  for path, shape in plan.small.items():
    value = np.asarray(big[path])
    for axis in plan.grown.get(path, ()):
      idx = index.get((path, axis), np.arange(shape[axis]))
      value = np.take(value, idx, axis=axis)
    out[path] = value
  return unflatten(out)


def unit_importance(variables: Mapping, groups: Mapping[str, Sequence[tuple[str, int]]],
                    collection: str = "params") -> dict[str, np.ndarray]:
  """Weight-norm importance of every unit of every width group.

  A unit's score is the sum, over the tensors of its group, of the squared entries in its slice, each tensor
  normalised by its mean square so that kernels, biases and norm scales weigh alike.
  """
  flat = flatten(variables)
  scores = {}
  for name, members in groups.items():
    total = None
    for path, axis in members:
      if not path.startswith(collection + "/"):
        continue
      w = np.asarray(flat[path], np.float64)
      sq = np.moveaxis(w ** 2, axis, 0).reshape(w.shape[axis], -1).sum(1)
      sq = sq / max(float(np.mean(w ** 2)), 1e-30)
      total = sq if total is None else total + sq
    if total is None:
      raise SurgeryError(f"width group {name} has no tensor in collection {collection!r}")
    scores[name] = total
  return scores


def keep_most_important(scores: Mapping[str, np.ndarray], plan: Plan,
                        groups: Mapping[str, Sequence[tuple[str, int]]]) -> dict[str, np.ndarray]:
  """For each group, the indices of its highest-scoring units, as many as the small width, in ascending order."""
  keep = {}
  for name, s in scores.items():
    path, axis = groups[name][0]
    k = plan.small[path][axis]
    keep[name] = np.sort(np.argsort(-s, kind="stable")[:k])
  return keep


# ----------------------------------------------------------------------------------------------------------------
# Trainable / frozen partition.

GROWN_SLICES = ("train", "freeze")
ORIGINALS = ("frozen", "train")
BATCH_STATS = ("update", "freeze")


def match_patterns(paths: Iterable[str], patterns: Sequence[str], what: str) -> set[str]:
  """Paths that fully match any pattern; a pattern matching nothing is an error listing the valid names."""
  paths = list(paths)
  chosen = set()
  for pattern in patterns:
    hits = [p for p in paths if re.fullmatch(pattern, p)]
    if not hits:
      raise SurgeryError(f"{what}: pattern {pattern!r} matches no tensor. Valid names: {sorted(paths)}")
    logging.info("%s: %r matches %s", what, pattern, hits)
    chosen.update(hits)
  return chosen


def _blocks(small: tuple, big: tuple, axes: tuple[int, ...]) -> list[tuple[int, tuple, tuple]]:
  """Decomposes big \\ small into one block per grown axis: (axis, start, shape).

  Block j spans the full big size along the grown axes before it, the added range along its own axis and the
  small size elsewhere, so concatenating [small, block_1, block_2, ...] along their axes rebuilds the big tensor.
  For a kernel [in, out] grown along both axes, block 0 is [new in, old out]: the entries through which old units
  read new ones.
  """
  cur = list(small)
  out = []
  for axis in axes:
    shape = list(cur)
    shape[axis] = big[axis] - small[axis]
    start = [0] * len(big)
    start[axis] = small[axis]
    out.append((axis, tuple(start), tuple(shape)))
    cur[axis] = big[axis]
  return out


def _slice(value, start: Sequence[int], shape: Sequence[int]):
  """A block by basic slicing: numpy stays on the host, a jax array stays on its devices (no host copy)."""
  return value[tuple(slice(b, b + n) for b, n in zip(start, shape))]


def _isolated(grown: Mapping[str, tuple], all_paths: Iterable[str], recurrent: Sequence[str]) -> set[str]:
  """The grown recurrent kernels whose new->old block stays zero (old units never read new ones).

  `recurrent` regexes fully match '/'-joined paths with the collection, as `SURGERY_OUTPUT_AXES` rules do
  (`params/gru2/hidden_r/kernel`).
  """
  if not recurrent:
    raise SurgeryError("dropin: old_reads_new=False needs the model's recurrent kernels (`recurrent`: regexes naming "
                       "[H, H] hidden->hidden kernels, e.g. the model class's SURGERY_RECURRENT); none were given")
  full = ["params/" + p for p in all_paths]
  hits = {p[len("params/"):] for p in match_patterns(full, recurrent, "dropin recurrent kernels")}
  isolated = sorted(p for p in hits if p in grown)
  if not isolated:
    raise SurgeryError(f"dropin: old_reads_new=False but no grown tensor matches the recurrent patterns "
                       f"{list(recurrent)}, so nothing would be isolated. They match {sorted(hits)}; the grown "
                       f"tensors are {sorted(grown)}")
  bad = [f"{p} grows along axes {grown[p]}" for p in isolated if grown[p] != (0, 1)]
  if bad:
    raise SurgeryError("dropin: a recurrent kernel [H, H] must grow along both its input and output axes: "
                       + "; ".join(bad))
  logging.info("dropin: new->old blocks kept zero and frozen (old units never read new ones): %s", isolated)
  return set(isolated)


@dataclasses.dataclass(frozen=True)
class Partition:
  """Which entries of the `params` collection train; static, hashable, usable inside jit.

  With `mode="all"` everything trains. With `mode="new"` tensors train whole, stay frozen whole, or (`layout`) are
  cut into their original block plus one block per grown axis (`_blocks`), each block trainable, frozen or kept at
  zero; `merge` concatenates them back inside the loss, so only trainable blocks are differentiated and carry
  optimizer state. `split_tree`/`merge_tree`/`labels` give the same split as one tree for `dropin_optimizer`.
  """

  mode: str
  # ((path, small_shape, big_shape, original_role, ((axis, role), ...)), ...), role in {'train', 'frozen', 'zero'}
  layout: tuple = ()
  whole_trainable: tuple[str, ...] = ()
  frozen_paths: tuple[str, ...] = ()
  batch_stats: str = "update"  # dropin: "update" (all running statistics move) or "freeze" (original channels')

  @classmethod
  def everything(cls) -> "Partition":
    return cls(mode="all")

  @classmethod
  def fixed(cls, params: Mapping, frozen_patterns: Sequence[str]) -> "Partition":
    """Everything trains except the tensors matching `frozen_patterns`, which stay bit-identical and
    carry no optimizer state (non-`params` collections are updated as usual)."""
    flat = flatten(params)
    frozen = match_patterns(flat, frozen_patterns, "frozen parameters")
    return cls(mode="new", whole_trainable=tuple(sorted(set(flat) - frozen)), frozen_paths=tuple(sorted(frozen)))

  @classmethod
  def new_slices(cls, plan: Plan, *, train_patterns: Sequence[str] = (), recurrent: Sequence[str] = (),
                 old_reads_new: bool = True, grown_slices: str = "train", originals: str = "frozen",
                 batch_stats: str = "update") -> "Partition":
    """The dropin partition of a grow plan's `params` collection.

    Tensors the plan adds always train. Each rule below logs what it matched, and every check runs here, before
    anything is split.

    Args:
      plan: from `make_plan(small, big)`.
      train_patterns: regexes over `params`-relative paths ('head/.*'); matched tensors train whole. Each must match
        a tensor, and not only tensors that train anyway (every entry trainable under the other arguments: an added
        tensor, or with originals="train" any tensor whose new slices train and which holds no isolated block).
      recurrent: regexes over collection-prefixed paths ('params/gru\\d+/hidden_[rzn]/kernel', the convention of
        SURGERY_OUTPUT_AXES) naming kernels [H, H] from a layer's hidden state to itself.
      old_reads_new: False (the authors' GRU): in every grown `recurrent` kernel the block [new inputs, old outputs]
        is set to zero by `split` and stays zero and frozen, so old units never read new ones.
      grown_slices: "train" (the new slices of grown tensors train) or "freeze" (they stay at their grown values and
        only added tensors train: the authors' parallel branches, whose readers are frozen whole).
      originals: "frozen" (dropin) or "train" (every entry trains except isolated blocks: "dropin unfrozen").
      batch_stats: "update" (every running statistic follows the batches, as PyTorch's model.train() does) or
        "freeze" (original channels' statistics stay as trained; see `freeze_state`).

    Raises:
      SurgeryError: an unknown option; a pattern that matches nothing or only tensors that train anyway; a
        train pattern on an isolated tensor; old_reads_new=False with no grown recurrent kernel; grown_slices="freeze"
        with a plan that adds no tensor.
    """
    for name, value, valid in (("grown_slices", grown_slices, GROWN_SLICES), ("originals", originals, ORIGINALS),
                               ("batch_stats", batch_stats, BATCH_STATS)):
      if value not in valid:
        raise SurgeryError(f"dropin: {name} must be one of {valid}, got {value!r}")
    cut = lambda p: p[len("params/"):]
    params = {cut(p): s for p, s in plan.big.items() if p.startswith("params/")}
    grown = {cut(p): a for p, a in plan.grown.items() if p.startswith("params/")}
    added = {cut(p) for p in plan.added if p.startswith("params/")}
    isolated = set() if old_reads_new else _isolated(grown, params, recurrent)
    if grown_slices == "freeze":
      if not added:
        raise SurgeryError("dropin: grown_slices='freeze' trains only tensors the grown model adds, and this plan "
                           f"adds none (it grows {sorted(grown)})")
      logging.info("dropin: new slices kept frozen at their grown values: %s", sorted(grown))
    logging.info("dropin: tensors added by the grown model train whole: %s", sorted(added))
    anyway = set(added)
    if originals == "train":
      anyway |= {p for p in params if p not in isolated and (p not in grown or grown_slices == "train")}
    whole = set()
    for pattern in train_patterns:
      hits = match_patterns(params, (pattern,), "dropin.train_patterns")
      if hits <= anyway:
        raise SurgeryError(f"dropin.train_patterns: {pattern!r} matches only tensors that already train: "
                           f"{sorted(hits)}")
      if hits & isolated:
        raise SurgeryError(f"dropin.train_patterns: {pattern!r} matches {sorted(hits & isolated)}, whose new->old "
                           "block is isolated (old_reads_new=False); training it whole would let old units read new")
      whole |= hits
    new_role = "train" if grown_slices == "train" else "frozen"
    old_role = "train" if originals == "train" else "frozen"
    layout, trainable, frozen = [], [], []
    for path, big in sorted(params.items()):
      if path in whole or path in added:
        trainable.append(path)
        continue
      axes = grown.get(path, ())
      roles = tuple((a, "zero" if path in isolated and k == 0 else new_role) for k, a in enumerate(axes))
      kinds = {old_role} | {r for _, r in roles}
      if kinds == {"train"}:
        trainable.append(path)
      elif kinds == {"frozen"}:
        frozen.append(path)
      else:
        layout.append((path, plan.small["params/" + path], big, old_role, roles))
    return cls(mode="new", layout=tuple(layout), whole_trainable=tuple(trainable), frozen_paths=tuple(frozen),
               batch_stats=batch_stats)

  def split(self, params: Mapping) -> tuple[dict, dict]:
    """Full `params` tree -> (trainable, frozen) trees, by slicing (jax arrays are not copied to the host).

    Isolated blocks come out as zeros whatever `params` holds there.
    """
    if self.mode == "all":
      return _to_dict(params), {}
    flat = flatten(params)
    expected = set(self.whole_trainable) | set(self.frozen_paths) | {entry[0] for entry in self.layout}
    if set(flat) != expected:
      raise SurgeryError(f"partition: tensors missing {sorted(expected - set(flat))[:10]}, unexpected "
                         f"{sorted(set(flat) - expected)[:10]}")
    bad = [f"{p}: has {tuple(flat[p].shape)}, partition expects {big}" for p, _, big, _, _ in self.layout
           if tuple(flat[p].shape) != tuple(big)]
    if bad:
      raise SurgeryError("partition: " + "; ".join(bad[:10]))
    train = {p: flat[p] for p in self.whole_trainable}
    frozen = {p: flat[p] for p in self.frozen_paths}
    for path, small, big, old_role, roles in self.layout:
      value = flat[path]
      (train if old_role == "train" else frozen)[f"{path}/original"] = _slice(value, (0,) * len(small), small)
      for (axis, start, shape), (_, role) in zip(_blocks(small, big, tuple(a for a, _ in roles)), roles):
        block = _slice(value, start, shape)
        if role == "zero":
          frozen[f"{path}/zero_axis{axis}"] = (jnp if isinstance(block, jax.Array) else np).zeros_like(block)
        else:
          (train if role == "train" else frozen)[f"{path}/new_axis{axis}"] = block
    return unflatten(train), unflatten(frozen)

  def merge(self, trainable: Mapping, frozen: Mapping) -> dict:
    """(trainable, frozen) -> the full `params` tree (inside the loss: only `trainable` is differentiated)."""
    if self.mode == "all":
      return trainable
    t, f = flatten(trainable), flatten(frozen)
    out = {p: t[p] for p in self.whole_trainable}
    out.update({p: f[p] for p in self.frozen_paths})
    for path, _, _, old_role, roles in self.layout:
      value = (t if old_role == "train" else f)[f"{path}/original"]
      for axis, role in roles:
        block = t[f"{path}/new_axis{axis}"] if role == "train" else f[
            f"{path}/{'zero' if role == 'zero' else 'new'}_axis{axis}"]
        value = jnp.concatenate([value, block.astype(value.dtype)], axis=axis)
      out[path] = value
    return unflatten(out)

  def split_tree(self, params: Mapping) -> dict:
    """Full `params` -> {'trainable': ..., 'frozen': ...}: one tree for a training loop of one's own, optimised by
    `dropin_optimizer` (labels come from the two top-level keys)."""
    trainable, frozen = self.split(params)
    return {"trainable": trainable, "frozen": frozen}

  def merge_tree(self, tree: Mapping) -> dict:
    """Inverse of `split_tree`, for the loss. The frozen half passes through `stop_gradient`, so its gradients are
    zeros that cost no backward work."""
    return self.merge(tree["trainable"], jax.lax.stop_gradient(tree["frozen"]))

  @staticmethod
  def labels(tree: Mapping) -> dict:
    """`optax.multi_transform` labels of a `split_tree`: 'train' for trainable blocks, 'freeze' for the rest."""
    if set(tree) != {"trainable", "frozen"}:
      raise SurgeryError(f"labels: expected a split_tree with keys 'trainable' and 'frozen', got {sorted(tree)}")
    return {"trainable": jax.tree_util.tree_map(lambda _: "train", tree["trainable"]),
            "frozen": jax.tree_util.tree_map(lambda _: "freeze", tree["frozen"])}

  def freeze_state(self, updated: Mapping, previous: Mapping, plan: Plan | None) -> dict:
    """Non-`params` collections (BatchNorm statistics) after a train step, under the `batch_stats` policy.

    "update" returns `updated`: the authors' PyTorch run updates every running buffer under model.train(), frozen
    weights or not. "freeze" keeps the original slices (and ungrown tensors) as they were, so only new channels'
    statistics move. Without a grow plan (mode "all", or a fixed set of frozen tensors) `updated` is returned.
    """
    if self.batch_stats == "update" or self.mode == "all" or not updated or plan is None:
      return updated
    new, old = flatten(updated), flatten(previous)
    out = {}
    for path, value in new.items():  # model_state paths carry their collection, as the plan's do
      axes = plan.grown.get(path, ())
      if path in plan.added:
        out[path] = value
      elif not axes:
        out[path] = old[path]
      else:
        lead = tuple(slice(0, n) for n in plan.small[path])
        out[path] = value.at[lead].set(old[path][lead])
    return unflatten(out)


def dropin_optimizer(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """`tx` on the trainable half of a `Partition.split_tree`, `optax.set_to_zero()` (no state) on the frozen half."""
  return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, Partition.labels)


def count(tree: PyTree) -> int:
  """Number of scalar entries in a pytree."""
  return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)))


def nbytes(tree: PyTree) -> int:
  """Bytes held by the arrays of a pytree."""
  return int(sum(np.prod(np.shape(x)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree)
                 if hasattr(x, "dtype")))
