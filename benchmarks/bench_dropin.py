"""Dropin cost, measured side by side in one process: baseline vs dropin-frozen vs dropin-unfrozen train step.

  python benchmarks/bench_dropin.py                  # ResNet-18 and GRNN at the authors' shapes (batch 32, 4 s)
  python benchmarks/bench_dropin.py --models grnn --repeats 20

For each model: trainable / frozen parameters, optimizer-state bytes (and the ideal 2 x trainable x 4 bytes of
Adam), median step time (forward + backward + update, jitted, blocking), and the ratios frozen / unfrozen.
Goals (issue #3): frozen step <= 0.5 x unfrozen; optimizer state <= 1.05 x ideal.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import la_grnn_dropin  # noqa: E402
from configs import la_resnet_dropin  # noqa: E402
from jaxplastic import experiment  # noqa: E402
from jaxplastic import reporting  # noqa: E402
from jaxplastic import surgery  # noqa: E402
from jaxplastic import train as train_lib  # noqa: E402


def bench(config, repeats: int) -> list[dict]:
  n, b = config.data.num_samples, config.data.batch_size
  base_fields = experiment.model_fields(config.model)
  grown_fields = experiment.model_fields(config.model, config.stages[1].widths)
  small, big = experiment.build(base_fields), experiment.build(grown_fields)
  v_small = experiment.init_variables(small, jax.random.PRNGKey(0), n)
  fresh = experiment.init_variables(big, jax.random.PRNGKey(1), n)
  plan = surgery.make_plan(v_small, fresh)
  v_big = surgery.grow(v_small, fresh, plan, output_axes=experiment.output_axes_of(grown_fields))
  rng = np.random.default_rng(0)
  batch = {"audio": jnp.asarray(rng.standard_normal((b, n)).astype(np.float32) * 0.1),
           "label": jnp.asarray(np.arange(b) % 2, jnp.int32), "mask": jnp.ones((b,), jnp.float32)}
  tx = train_lib.make_optimizer(config.optim)
  rows = []
  setups = [("baseline", small, v_small, surgery.Partition.everything(), None),
            ("dropin_frozen", big, v_big, surgery.Partition.new_slices(plan, train_patterns=config.dropin.train_patterns), plan),
            ("dropin_unfrozen", big, v_big, surgery.Partition.everything(), None)]
  for name, model, variables, partition, p in setups:
    trainable, frozen = partition.split(variables["params"])
    state = train_lib.create_state(trainable, frozen, {k: v for k, v in variables.items() if k != "params"}, tx)
    step, _ = train_lib.jit_steps(model=model, tx=tx, partition=partition, plan=p, loss_name=config.optim.loss,
                                  class_weights=None, base_rng=jax.random.PRNGKey(0))
    # Forward only (train mode, no gradient): the floor any step of this model pays before its backward pass.
    fwd = jax.jit(lambda s, bt: model.apply({"params": partition.merge(s.params, s.frozen), **s.model_state},
                                            bt["audio"], train=True, mutable=list(s.model_state),
                                            rngs={"dropout": jax.random.PRNGKey(0)})[0])
    fwd_seconds = reporting.time_calls(fwd, lambda: (state, batch), repeats)
    seconds = reporting.time_calls(step, lambda: (state, batch), repeats, carry=True)  # donates `state`
    total = surgery.count(variables["params"])
    n_train = surgery.count(trainable)
    opt_bytes = surgery.nbytes(tx.init(trainable))
    rows.append({"model": config.model.name, "setup": name, "params": total, "trainable": n_train,
                 "frozen": total - n_train, "opt_bytes": opt_bytes, "opt/ideal": opt_bytes / (2 * n_train * 4),
                 "forward_ms": 1e3 * fwd_seconds, "step_ms": 1e3 * seconds, "utt/s": b / seconds})
  unfrozen = rows[2]["step_ms"]
  for r in rows:
    r["step/unfrozen"] = r["step_ms"] / unfrozen
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="resnet18,grnn")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--batch-size", type=int, default=32)
  args = parser.parse_args()
  from jaxplastic import evaluation
  print(f"devices: {jax.devices()}")
  rows = []
  for name in args.models.split(","):
    config = (la_resnet_dropin if name == "resnet18" else la_grnn_dropin).get_config()
    config.data.batch_size = args.batch_size
    rows += bench(config, args.repeats)
  print(evaluation.format_table(rows, list(rows[0])))


if __name__ == "__main__":
  main()
