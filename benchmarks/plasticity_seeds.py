"""Plasticity vs baseline on the demo corpus over several seeds, with the same total epoch budget.

  python benchmarks/plasticity_seeds.py                         # ResNet-18 and GRNN, seeds 42 43 44
  python benchmarks/plasticity_seeds.py --models grnn --seeds 42,43,44,45,46

Each (model, seed) runs configs/demo.py (baseline) and configs/demo_plasticity.py in runs/seeds/; re-running
resumes/reuses finished runs. Prints dev/eval EER mean +- std per model and method, and writes
runs/seeds/summary.json.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from configs import demo  # noqa: E402
from configs import demo_plasticity  # noqa: E402
from jaxplastic import evaluation  # noqa: E402
from jaxplastic import experiment  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="grnn,resnet18")
  parser.add_argument("--seeds", default="42,43,44")
  parser.add_argument("--out", default="runs/seeds")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  results = {}
  for model in args.models.split(","):
    for method, module in (("baseline", demo), ("plasticity", demo_plasticity)):
      for seed in seeds:
        config = module.get_config(model)
        config.seed = seed
        config.train.progress = False
        summary = experiment.run(config, os.path.join(args.out, f"{model}_{method}_{seed}"))
        last = summary["stages"][-1]
        results.setdefault((model, method), []).append(
            {"seed": seed, "dev": last["dev"]["eer"], "eval": last["eval"]["eer"],
             "params": last["params_total"], "epochs": sum(s.num_epochs for s in config.stages)})
  rows = []
  for (model, method), runs in results.items():
    dev, ev = np.array([r["dev"] for r in runs]), np.array([r["eval"] for r in runs])
    rows.append({"model": model, "method": method, "seeds": len(runs), "epochs": runs[0]["epochs"],
                 "params": runs[0]["params"], "dev EER %": f"{dev.mean():.2f} +- {dev.std(ddof=1):.2f}",
                 "eval EER %": f"{ev.mean():.2f} +- {ev.std(ddof=1):.2f}",
                 "per-seed eval": " ".join(f"{x:.2f}" for x in ev)})
  table = evaluation.format_table(rows, list(rows[0]))
  print(table)
  with open(os.path.join(args.out, "summary.json"), "w") as f:
    json.dump({f"{m}/{k}": v for (m, k), v in results.items()}, f, indent=2)


if __name__ == "__main__":
  main()
