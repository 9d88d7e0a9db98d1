"""Cross-corpus evaluation and the silence shortcut check for an exported model, as one command.

  python -m jaxplastic.crosseval --checkpoint runs/la_resnet --corpus fakeorreal --root /data/for-norm \
      --split eval --out runs/la_resnet/cross_for
  python -m jaxplastic.crosseval --checkpoint runs/pa_resnet --corpus asvspoof2019_pa --root /data/PA \
      --trim_silence_db 40 --out runs/pa_resnet/shortcut      # EER with silence trimmed next to untrimmed

(`--config.data.corpus` / `--config.data.root` are accepted as spellings of `--corpus` / `--root`.)

The model (a run workdir or its exported model/) scores every utterance of the split through the training
pipeline's eval path (decode at the model's rate, first crop / pad to its length as training did), and the same
metrics as training are reported: EER and accuracy pooled and per attack, min t-DCF where the corpus ships ASV
scores, plus the error rates at the model's own dev-EER threshold (what a deployed detector would do on the new
corpus). With `--trim_silence_db`, leading and trailing silence (frames that many dB under the peak) is cut before
cropping and everything is reported again: a large rise in EER means the model used the silence-duration cue, not
the speech.
Writes `<out>/scores_<split>[_trimmed].txt` (2019 format) and `<out>/results.json`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxplastic import checkpoints
from jaxplastic import evaluation
from jaxplastic import models
from jaxplastic.data import pipeline


def load_model(path: str) -> tuple[dict, Any, dict]:
  """A run workdir or exported model folder -> (model.json meta, module, variables)."""
  export = path if os.path.exists(os.path.join(path, "model.json")) else os.path.join(path, "model")
  meta, variables = checkpoints.load_export(export)
  return meta, models.build_model(dict(meta["model"])), variables


def score_split(model, variables, split, *, num_samples: int, sample_rate: int, batch_size: int = 64,
                num_threads: int = 2, skip_bad_files: bool = False, trim_silence_db: float | None = None,
                skipped: pipeline.SkipLog | None = None, pad: str = "repeat") -> np.ndarray:
  """Scores [N] (logit bona fide - logit spoof; NaN for skipped files) of every utterance of `split`, in order,
  cropped / padded (`pad`: "zero" or "repeat") as the model's training evaluated."""
  forward = jax.jit(lambda v, a: (lambda lg: lg[:, 1] - lg[:, 0])(model.apply(v, a, train=False)))
  scores = np.full(len(split.items), np.nan)
  for batch in pipeline.batches(split, batch_size=batch_size, num_samples=num_samples, train=False, seed=0,
                                sample_rate=sample_rate, num_threads=num_threads, skip_bad_files=skip_bad_files,
                                skipped=skipped, trim_silence_db=trim_silence_db, pad=pad):
    out = np.asarray(jax.device_get(forward(variables, jnp.asarray(batch["audio"]))), np.float64)
    keep = (batch["mask"] > 0) & (batch["index"] >= 0)
    scores[batch["index"][keep]] = out[keep]
  return scores


def at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
  """Error rates (%) of the decision "bona fide iff score > threshold"."""
  bona, spoof = scores[labels == 1], scores[labels == 0]
  return {"threshold": float(threshold), "bonafide_rejected": float(100.0 * np.mean(bona <= threshold)),
          "spoof_accepted": float(100.0 * np.mean(spoof > threshold))}


def run(checkpoint: str, data_config: Mapping[str, Any], *, split: str = "eval", out: str,
        trim_silence_db: float | None = None, batch_size: int = 64, num_threads: int = 2,
        skip_bad_files: bool = False) -> dict:
  """Scores `checkpoint` on `split` of the corpus `data_config` names (corpus, root and, for the demo corpus,
  demo_seed / demo_size) and writes score files and results.json to `out`.

  Returns:
    results.json's content: {'checkpoint', 'trained_on', 'corpus', 'root', 'split', 'counts', split: metrics,
    split + '_trimmed': metrics (with trim_silence_db), 'score_files', 'skipped_files', ...}; metrics as
    `evaluation.evaluate` plus 'at_model_threshold' when the export records a threshold.
  """
  from jaxplastic import data as data_lib  # pylint: disable=g-import-not-at-top
  meta, model, variables = load_model(checkpoint)
  variables = jax.device_put(variables)
  the_split = data_lib.load_split(ml_collections.ConfigDict(dict(data_config)), split)
  logging.info("crosseval: %s (trained on %s) on %s %s: %s", checkpoint, meta.get("corpus"), data_config["corpus"],
               split, the_split.counts())
  os.makedirs(out, exist_ok=True)
  skipped = pipeline.SkipLog()
  labels = the_split.labels()
  results: dict[str, Any] = {
      "checkpoint": os.path.abspath(checkpoint), "exported_stage": meta.get("stage"),
      "trained_on": meta.get("corpus"), "corpus": data_config["corpus"], "root": data_config["root"],
      "split": split, "counts": the_split.counts(), "trim_silence_db": trim_silence_db, "score_files": {}}
  conditions = [(split, None)] + ([(f"{split}_trimmed", trim_silence_db)] if trim_silence_db is not None else [])
  for name, trim in conditions:
    t0 = time.perf_counter()
    scores = score_split(model, variables, the_split, num_samples=int(meta["num_samples"]),
                         sample_rate=int(meta["sample_rate"]), batch_size=batch_size, num_threads=num_threads,
                         skip_bad_files=skip_bad_files, trim_silence_db=trim, skipped=skipped,
                         pad=checkpoints.export_pad(meta, checkpoint))
    ok = np.isfinite(scores)
    attacks = [it.attack for it, k in zip(the_split.items, ok) if k]
    metrics = evaluation.evaluate(scores[ok], labels[ok], attacks, asv=the_split.asv_scores)
    if meta.get("threshold") is not None:
      metrics["at_model_threshold"] = at_threshold(scores[ok], labels[ok], meta["threshold"])
    metrics["seconds"] = time.perf_counter() - t0
    results[name] = metrics
    file_name = f"scores_{name}.txt"
    evaluation.write_score_file(os.path.join(out, file_name), [it.utt_id for it, k in zip(the_split.items, ok) if k],
                                attacks, labels[ok], scores[ok])
    results["score_files"][name] = file_name
  results["skipped_files"] = skipped.count
  results["skipped_paths"] = skipped.paths[:20]
  checkpoints.write_json_atomic(os.path.join(out, "results.json"), results)
  return results


def summary_table(results: Mapping) -> str:
  rows = []
  for name, path in results["score_files"].items():
    m = results[name]
    thr = m.get("at_model_threshold") or {}
    rows.append({"condition": name, "EER %": m["eer"], "min t-DCF": m["min_tdcf"],
                 "bona fide rejected % @model thr": thr.get("bonafide_rejected"),
                 "spoof accepted % @model thr": thr.get("spoof_accepted"),
                 **{f"EER {a} %": pa["eer"] for a, pa in sorted(m["per_attack"].items())}})
  return evaluation.format_table(rows, list(dict.fromkeys(k for r in rows for k in r)))


def main(argv: Sequence[str]) -> int:
  p = argparse.ArgumentParser(prog="python -m jaxplastic.crosseval", description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", required=True, help="a run workdir or an exported model folder")
  p.add_argument("--corpus", "--config.data.corpus", dest="corpus", required=True,
                 help="asvspoof2019_la, asvspoof2019_pa, fakeorreal or demo")
  p.add_argument("--root", "--config.data.root", dest="root", required=True, help="the corpus folder")
  p.add_argument("--split", default="eval", choices=("train", "dev", "eval"))
  p.add_argument("--out", required=True, help="folder for score files and results.json")
  p.add_argument("--trim_silence_db", type=float, default=None,
                 help="also score with leading/trailing silence this many dB under the peak removed")
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--num_threads", type=int, default=2)
  p.add_argument("--skip_bad_files", action="store_true", help="skip (and count) undecodable files")
  p.add_argument("--demo_seed", "--config.data.demo_seed", dest="demo_seed", type=int, default=0)
  p.add_argument("--demo_size", "--config.data.demo_size", dest="demo_size", default="default")
  args = p.parse_args(argv)
  data_config = {"corpus": args.corpus, "root": args.root, "demo_seed": args.demo_seed, "demo_size": args.demo_size}
  results = run(args.checkpoint, data_config, split=args.split, out=args.out, trim_silence_db=args.trim_silence_db,
                batch_size=args.batch_size, num_threads=args.num_threads, skip_bad_files=args.skip_bad_files)
  print(f"{args.checkpoint} (trained on {results['trained_on']}) on {args.corpus} {args.split}: {results['counts']}")
  print(summary_table(results))
  if results["skipped_files"]:
    print(f"skipped {results['skipped_files']} unreadable files; first: {results['skipped_paths'][:5]}")
  return 0


if __name__ == "__main__":
  logging.basicConfig(level=logging.INFO)
  sys.exit(main(sys.argv[1:]))
