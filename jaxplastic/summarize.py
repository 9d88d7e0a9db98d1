"""Prints one comparison table from finished runs: `python -m jaxplastic.summarize WORKDIR [WORKDIR ...]`."""

import json
import os
import sys

from jaxplastic import evaluation


def rows_of(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  rows = []
  for r in results["stages"]:
    rows.append({"run": os.path.basename(os.path.normpath(workdir)), "stage": r["stage"],
                 "dev EER %": r.get("dev", {}).get("eer"), "eval EER %": r.get("eval", {}).get("eer"),
                 "params": r["params_total"], "trainable": r["params_trainable"],
                 "epoch s": r.get("epoch_seconds")})
  return rows


def main(argv):
  if len(argv) < 2:
    print(__doc__)
    return 2
  rows = [row for w in argv[1:] for row in rows_of(w)]
  print(evaluation.format_table(rows, list(rows[0])))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
