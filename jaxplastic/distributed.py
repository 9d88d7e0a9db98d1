"""Several processes (hosts) in one run: starting `jax.distributed`, and which process writes what.

Every process runs the same program on its own devices (JAX's multi-controller model). They all train, evaluate,
save checkpoints (orbax writes each process's shards) and take part in every collective; only the primary process
(index 0) writes logs, metrics, TensorBoard, score files, `results.json`, `stage.json` markers and `model/`.
"""

from __future__ import annotations

import logging
import os

import jax
from jax.experimental import multihost_utils

# config.distributed.initialize
MODES = ("auto", "on", "off")


def detected_cluster() -> str | None:
  """The multi-process launcher this process runs under, from its environment (None: a single process).

  Cloud TPU VMs are not detected here (JAX asks the VM's metadata server, which costs a network round trip on any
  machine): a TPU pod slice sets `config.distributed.initialize="on"`.
  """
  env = os.environ
  if env.get("JAX_COORDINATOR_ADDRESS"):
    return "JAX_COORDINATOR_ADDRESS"
  if int(env.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in env and "SLURM_PROCID" in env:
    return "slurm"
  if int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1 and "OMPI_MCA_orte_hnp_uri" in env:
    return "open-mpi"
  if "," in env.get("TPU_WORKER_HOSTNAMES", "") or env.get("MEGASCALE_COORDINATOR_ADDRESS"):
    return "cloud-tpu"
  return None


def initialize(dist_config) -> bool:
  """Starts `jax.distributed` when `config.distributed` asks for it or a launcher is detected; returns whether this
  run has several processes. Must run before anything touches a device; calling it again is a no-op.

  Modes: "off" never starts it; "on" always does (JAX fills unset fields from its cluster detection: Cloud TPU,
  SLURM, Open MPI, Kubernetes); "auto" does when `coordinator_address` is set or `detected_cluster()` finds a
  launcher. On CPU the cross-process collectives use `cpu_collectives` (gloo).
  """
  mode = dist_config.initialize
  if mode not in MODES:
    raise ValueError(f"config.distributed.initialize must be one of {MODES}, got {mode!r}")
  if jax.distributed.is_initialized():
    return jax.process_count() > 1
  address = dist_config.coordinator_address or None
  cluster = detected_cluster()
  if mode == "off" or (mode == "auto" and address is None and cluster is None):
    return False
  if dist_config.cpu_collectives:
    jax.config.update("jax_cpu_collectives_implementation", dist_config.cpu_collectives)
  num = int(dist_config.num_processes)
  pid = int(dist_config.process_id)
  jax.distributed.initialize(coordinator_address=address, num_processes=num if num > 0 else None,
                             process_id=pid if pid >= 0 else None)
  if jax.process_index() != 0:
    logging.getLogger().setLevel(logging.WARNING)  # one process logs progress; every process logs problems
    try:
      from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
      absl_logging.set_verbosity(absl_logging.WARNING)
    except ImportError:
      pass
  logging.info("jax.distributed: process %d of %d (%s), %d local of %d devices", jax.process_index(),
               jax.process_count(), cluster or address or "detected by JAX", jax.local_device_count(),
               jax.device_count())
  return jax.process_count() > 1


def is_primary() -> bool:
  """Whether this process writes the run's files (process 0)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process gets here (no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


__all__ = ["MODES", "barrier", "detected_cluster", "initialize", "is_primary"]
