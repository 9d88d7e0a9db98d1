"""The device mesh, where every array lives on it, and moving data on and off it.

One `jax.sharding.Mesh` with axes ("data", "fsdp") spans every device of every process (`config.mesh`). The same
jitted train and eval steps run on one CPU, a GPU node or a TPU pod slice; only the shardings differ:

- a batch is split along its first axis over both mesh axes together (every device gets B / num_devices distinct
  rows), so `config.data.batch_size` is the GLOBAL batch and must be divisible by the number of devices;
- a state leaf (parameter, frozen block, BatchNorm statistic, optimizer moment) is replicated, or, with fsdp > 1,
  sharded over "fsdp" along one axis by `leaf_spec`'s rule: leaves with at least `fsdp_min_size` entries are split
  along their largest axis divisible by the fsdp size (the last such axis on ties); smaller leaves and leaves with
  no divisible axis stay replicated. The rule reads only shapes, so Adam's moments follow their parameters and the
  blocks a dropin partition cuts get shardings of their own.

Each process's rows of a global batch are the contiguous block [p * B / P, (p + 1) * B / P) (the mesh orders
devices by process), which is what the pipeline gives each process.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

PyTree = Any
AXES = ("data", "fsdp")
# A batch's leading axis is split over both mesh axes: FSDP devices also take distinct rows (ZeRO-3 style).
BATCH_SPEC = P(AXES)


@dataclasses.dataclass(frozen=True)
class Layout:
  """A mesh and the rule that places state leaves on it (hashable: usable as a static jit argument).

  Attributes:
    mesh: the ("data", "fsdp") mesh over every device of every process.
    fsdp_min_size: with fsdp > 1, leaves with fewer entries stay replicated.
  """

  mesh: Mesh
  fsdp_min_size: int = 2 ** 16

  @property
  def num_devices(self) -> int:
    return self.mesh.devices.size

  @property
  def fsdp(self) -> int:
    return self.mesh.shape["fsdp"]

  @property
  def batch(self) -> NamedSharding:
    return NamedSharding(self.mesh, BATCH_SPEC)

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def leaf_spec(self, shape) -> P:
    """The rule: replicated, or "fsdp" on the largest axis (last on ties) divisible by the fsdp size."""
    shape = tuple(shape)
    if self.fsdp == 1 or math.prod(shape) < self.fsdp_min_size:
      return P()
    axes = [i for i, n in enumerate(shape) if n % self.fsdp == 0]
    if not axes:
      return P()
    axis = max(axes, key=lambda i: (shape[i], i))
    return P(*([None] * axis + ["fsdp"]))

  def leaf(self, x) -> NamedSharding:
    return NamedSharding(self.mesh, self.leaf_spec(np.shape(x)))

  def tree(self, tree: PyTree) -> PyTree:
    """Shardings for every leaf of `tree` (arrays or ShapeDtypeStructs)."""
    return jax.tree_util.tree_map(self.leaf, tree)

  def check_batch_size(self, batch_size: int, what: str) -> None:
    """`batch_size` rows must split evenly over every device (and so over every process)."""
    if batch_size % self.num_devices:
      raise ValueError(f"{what} = {batch_size} is the global batch, split over all {self.num_devices} devices "
                       f"(mesh data={self.mesh.shape['data']} x fsdp={self.fsdp}); it must be a multiple of "
                       f"{self.num_devices}")


def make_mesh(data: int = -1, fsdp: int = 1, devices=None) -> Mesh:
  """The ("data", "fsdp") mesh; -1 on one axis takes every device the other leaves.

  Devices come in `jax.make_mesh`'s topology-aware order, stably regrouped by process so that each process's
  devices hold one contiguous block of batch rows (and, when fsdp divides the local device count, whole fsdp groups
  stay inside one host).

  Raises:
    ValueError: the axis sizes do not multiply to the number of devices.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  if data == -1 and fsdp == -1:
    raise ValueError("config.mesh: at most one of data and fsdp can be -1")
  if data == -1:
    data = n // fsdp if fsdp > 0 and n % fsdp == 0 else 0
  if fsdp == -1:
    fsdp = n // data if data > 0 and n % data == 0 else 0
  if data <= 0 or fsdp <= 0 or data * fsdp != n:
    raise ValueError(f"config.mesh: data x fsdp must equal the {n} devices of all processes "
                     f"(got data={data}, fsdp={fsdp}); use -1 for one of them")
  if devices == list(jax.devices()):
    ordered = jax.make_mesh((data, fsdp), AXES, axis_types=(jax.sharding.AxisType.Auto,) * 2).devices.reshape(-1)
  else:
    ordered = np.asarray(devices, dtype=object)
  ordered = sorted(ordered, key=lambda d: d.process_index)  # stable: keeps the topology order within a process
  return Mesh(np.asarray(ordered, dtype=object).reshape(data, fsdp), AXES)


def from_config(mesh_config, devices=None) -> Layout:
  """The Layout `config.mesh` describes."""
  mesh = make_mesh(int(mesh_config.data), int(mesh_config.fsdp), devices)
  layout = Layout(mesh, int(mesh_config.fsdp_min_size))
  logging.info("mesh: %s over %d devices in %d processes (fsdp leaves >= %d entries)", dict(mesh.shape),
               layout.num_devices, jax.process_count(), layout.fsdp_min_size)
  return layout


def single_device() -> Layout:
  """The layout of an ordinary one-device run (the default device)."""
  return Layout(make_mesh(1, 1, jax.devices()[:1]))


# ----------------------------------------------------------------------------------------------------------------
# State: placing, computing on, and fetching sharded trees.


def put(tree: PyTree, layout: Layout) -> PyTree:
  """Host (or single-device) arrays -> global arrays placed by the rule. Every process passes the same values; each
  builds only its own shards (`make_array_from_callback`), so nothing is broadcast between hosts."""
  def one(x):
    if isinstance(x, jax.Array) and x.sharding == layout.leaf(x):
      return x
    if isinstance(x, jax.Array) and not x.is_fully_addressable:  # already global: reshard on the devices
      return jax.jit(lambda y: y, out_shardings=layout.leaf(x))(x)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, layout.leaf(host), lambda index: host[index])
  return jax.tree_util.tree_map(one, tree)


def apply(fn: Callable[..., PyTree], layout: Layout, *args) -> PyTree:
  """`fn(*args)` compiled under the mesh, every output placed by the rule (surgery, initialisation, splitting).

  The outputs are computed shard by shard on the devices; no host ever holds a whole tensor. A hashable `fn` that
  compares equal across calls (a module function, a bound method of a frozen dataclass) is compiled once per shape.
  """
  return _placed(fn, layout)(*args)


@functools.lru_cache(maxsize=32)
def _placed(fn: Callable[..., PyTree], layout: Layout) -> Callable[..., PyTree]:
  def placed(*args):
    out = fn(*args)
    return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, layout.leaf(x)), out)
  return jax.jit(placed)


def to_host(tree: PyTree) -> PyTree:
  """Global arrays -> numpy on every process (a collective: every process must call it). Exports and small results
  only: it gathers whole tensors."""
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
  return jax.tree_util.tree_map(one, tree)


# ----------------------------------------------------------------------------------------------------------------
# Batches.


def process_rows(num_rows: int, process_index: int | None = None, process_count: int | None = None) -> slice:
  """This process's rows [p * B / P, (p + 1) * B / P) of a global batch of `num_rows`."""
  p = jax.process_index() if process_index is None else process_index
  n = jax.process_count() if process_count is None else process_count
  if num_rows % n:
    raise ValueError(f"a batch of {num_rows} rows cannot be split over {n} processes")
  per = num_rows // n
  return slice(p * per, (p + 1) * per)


def local_rows(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """This process's rows of a global batch that every process holds whole (synthetic batches; the input pipeline
  yields only this process's rows itself), see `process_rows`."""
  if jax.process_count() == 1:
    return dict(batch)
  rows = process_rows(len(next(iter(batch.values()))))
  return {k: v[rows] for k, v in batch.items()}


def global_batch(local: Mapping[str, np.ndarray], layout: Layout) -> dict[str, jax.Array]:
  """This process's rows -> global arrays split over every device along the batch axis."""
  out = {}
  for k, v in local.items():
    v = np.asarray(v)
    shape = (v.shape[0] * jax.process_count(),) + v.shape[1:]
    out[k] = jax.make_array_from_process_local_data(layout.batch, v, shape)
  return out


def local_part(x: jax.Array) -> np.ndarray:
  """The rows of a batch-sharded output that this process's devices hold, in row order (this process's rows)."""
  if x.is_fully_addressable:
    return np.asarray(x)
  shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
  seen, parts = set(), []
  for s in shards:
    start = s.index[0].start or 0
    if start not in seen:  # replicated copies (not with BATCH_SPEC, but cheap to guard)
      seen.add(start)
      parts.append(np.asarray(s.data))
  return np.concatenate(parts)


def gather_rows(local: np.ndarray) -> np.ndarray:
  """Every process's equally long `local` rows, concatenated in process order (a collective)."""
  if jax.process_count() == 1:
    return np.asarray(local)
  return np.asarray(multihost_utils.process_allgather(np.asarray(local), tiled=True))


__all__ = ["AXES", "BATCH_SPEC", "Layout", "apply", "from_config", "gather_rows", "global_batch", "local_part",
           "local_rows", "make_mesh", "process_rows", "put", "single_device", "to_host"]
