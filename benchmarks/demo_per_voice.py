"""EER per eval speaker and attack of a score file: does a model separate the classes within each voice, and do
its scores shift from voice to voice (which a pooled EER mixes in)?

For every speaker of the eval protocol: its bona fide count and mean score, then per attack the EER against the
same speaker's bona fide ("within") and against all eval bona fide ("pooled", what the run's per-attack EER
uses). A speaker whose within-EER is low but pooled-EER high is separated well but scored on another scale.

  python benchmarks/demo_per_voice.py --root runs/demo_corpus/LA runs/demo_resnet18/scores/0_baseline_eval.txt
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# pylint: disable=g-import-not-at-top
from jaxplastic import evaluation  # noqa: E402
from jaxplastic.data import asvspoof  # noqa: E402


def per_voice(protocol: str, score_file: str) -> list[dict]:
  """One row per eval speaker: bona fide count and mean score, and per attack (within, pooled) EER in %."""
  speaker = {utt: spk for spk, utt, _, _, _ in asvspoof.read_cm_protocol(protocol, "LA", "eval")}
  scores = evaluation.read_score_file(score_file)
  values = scores["scores"]
  spk = np.array([speaker[u] for u in scores["utt_ids"]])
  bona = scores["labels"] == 1
  attacks = np.array(scores["attacks"])
  rows = []
  for s in sorted(set(spk)):
    own = values[bona & (spk == s)]
    row = {"speaker": s, "bonafide": int(own.size), "mean_bonafide_score": float(own.mean()) if own.size else None}
    for a in sorted(set(attacks[~bona])):
      spoof = values[(attacks == a) & (spk == s)]
      if spoof.size and own.size:
        row[a] = (100 * evaluation.compute_eer(own, spoof)[0], 100 * evaluation.compute_eer(values[bona], spoof)[0],
                  int(spoof.size))
    rows.append(row)
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--root", required=True, help="the corpus's LA folder (holding ASVspoof2019_LA_cm_protocols)")
  parser.add_argument("score_files", nargs="+", help="eval score files (scores/<i>_<stage>_eval.txt)")
  args = parser.parse_args()
  protocol = asvspoof.asvspoof2019_paths(args.root, "LA", "eval")["protocol"]
  for path in args.score_files:
    print(path)
    print(f"{'speaker':8} {'bona':>4} {'mean':>6}  attack: EER within / pooled (n)")
    for row in per_voice(protocol, path):
      cells = [f"{a} {w:5.1f} / {p:5.1f} ({n})" for a, (w, p, n) in
               ((k, v) for k, v in row.items() if k.startswith("A"))]
      mean = "-" if row["mean_bonafide_score"] is None else f"{row['mean_bonafide_score']:6.2f}"
      print(f"{row['speaker']:8} {row['bonafide']:4d} {mean:>6}  " + "   ".join(cells))


if __name__ == "__main__":
  main()
