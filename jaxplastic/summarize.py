"""Prints one comparison table from finished runs: `python -m jaxplastic.summarize WORKDIR [WORKDIR ...]`.

One row per stage: dev and eval EER, then the eval EER of each attack (all eval bona fide against that attack's
spoofs), so seen and unseen attacks are reported separately, then parameters and epoch time.
"""

import json
import os
import sys

from jaxplastic import evaluation


def rows_of(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  rows = []
  for r in results["stages"]:
    row = {"run": os.path.basename(os.path.normpath(workdir)), "stage": r["stage"],
           "dev EER %": r.get("dev", {}).get("eer"), "eval EER %": r.get("eval", {}).get("eer")}
    for attack, m in sorted(r.get("eval", {}).get("per_attack", {}).items()):
      row[f"eval {attack} %"] = m["eer"]
    row.update({"params": r["params_total"], "trainable": r["params_trainable"], "epoch s": r.get("epoch_seconds")})
    rows.append(row)
  return rows


def main(argv):
  if len(argv) < 2:
    print(__doc__)
    return 2
  rows = [row for w in argv[1:] for row in rows_of(w)]
  columns = list(dict.fromkeys(k for row in rows for k in row))
  print(evaluation.format_table([{c: row.get(c) for c in columns} for row in rows], columns))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
