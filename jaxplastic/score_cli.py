"""`jaxplastic-score`: scores audio files and folders with an exported model.

  jaxplastic-score --checkpoint RUN_OR_MODEL_DIR PATH... [--out FILE]
                   [--format table|csv|json|asvspoof] [--full-length [--aggregate mean|min]]
                   [--batch-size N] [--recursive]

Also runs as `python -m jaxplastic.score_cli`. Exit status: 0 when every file was scored, 1 when any
file could not be (unreadable, empty, 0 samples, silent: each is reported and the rest are still
scored), 2 for usage errors and unusable checkpoints. See docs/scoring.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from typing import Sequence, TextIO

FORMATS = ("table", "csv", "json", "asvspoof")
# Extensions picked up when scanning folders (case-insensitive); files named explicitly are always
# tried.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif",
                    ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf", ".wma")
# Folders with at least this many files show a progress bar (stderr).
PROGRESS_MIN_FILES = 20


class UsageError(Exception):
  """A command line that cannot be acted on (missing path, folder without audio)."""


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="jaxplastic-score",
      description="Score audio with a trained jaxplastic spoofing detector. "
      "score = logit(bona fide) - logit(spoof); higher = more bona fide.",
      epilog="Exit status: 0 all files scored, 1 some files failed (reported per file), "
      "2 usage or checkpoint error.")
  p.add_argument("paths", nargs="+", metavar="PATH", help="audio files and/or folders")
  p.add_argument("--checkpoint", required=True, metavar="DIR",
                 help="an exported model folder (model.json + variables.msgpack) or a run "
                 "workdir containing model/")
  p.add_argument("--out", metavar="FILE", help="write the results here instead of stdout")
  p.add_argument("--format", choices=FORMATS, default="table",
                 help="table (default), csv, json, or asvspoof ('UTT SCORE' lines, the "
                 "challenges' submission format; UTT = file name without extension)")
  p.add_argument("--full-length", action="store_true",
                 help="score the whole file: windows of the training length, 50%% overlap, last "
                 "window aligned to the end; file score = aggregate of window scores")
  p.add_argument("--aggregate", choices=("mean", "min"), default="mean",
                 help="full-length aggregation over windows: mean (default) or min (the most "
                 "spoof-like window)")
  p.add_argument("--batch-size", type=int, default=32, metavar="N",
                 help="windows per forward call (default 32)")
  p.add_argument("--recursive", "-r", action="store_true", help="scan folders recursively")
  p.add_argument("--workers", type=int, default=2, metavar="N",
                 help="decoding threads (default 2)")
  bar = p.add_mutually_exclusive_group()
  bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help=f"always show a progress bar (default: only for {PROGRESS_MIN_FILES}+ "
                   "files)")
  bar.add_argument("--no-progress", dest="progress", action="store_false",
                   help="never show a progress bar")
  return p


def _is_audio(name: str) -> bool:
  return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def collect_files(paths: Sequence[str], recursive: bool = False) -> list[str]:
  """Expands files and folders into the audio files to score, in a stable order.

  Folders contribute their audio files (by extension, hidden files skipped; sorted), recursively
  with `recursive`; files are kept as given, whatever their extension. A file listed twice is scored
  once.

  Raises:
    UsageError: a path that does not exist, or a folder with no audio files.
  """
  out: list[str] = []
  seen: set[str] = set()
  for path in paths:
    if os.path.isdir(path):
      found = []
      if recursive:
        for folder, dirs, files in os.walk(path):
          dirs[:] = sorted(d for d in dirs if not d.startswith("."))
          found += [os.path.join(folder, f) for f in sorted(files) if _is_audio(f)]
      else:
        found = [
            os.path.join(path, f)
            for f in sorted(os.listdir(path))
            if _is_audio(f) and os.path.isfile(os.path.join(path, f))
        ]
      if not found:
        hint = "" if recursive else " (use --recursive to scan sub-folders)"
        raise UsageError(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS[:6])}, ...){hint}")
    elif os.path.exists(path):
      found = [path]
    else:
      raise UsageError(f"{path}: no such file or folder")
    for f in found:
      key = os.path.abspath(f)
      if key not in seen:
        seen.add(key)
        out.append(f)
  return out


def utterance_ids(paths: Sequence[str]) -> list[str]:
  """Score-file ids: the file name without extension.

  Where two files share a name, their paths (without extension) are used instead. Whitespace, which
  would break the columns, becomes '_'.
  """
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  counts: dict[str, int] = {}
  for s in stems:
    counts[s] = counts.get(s, 0) + 1
  ids = [
      s if counts[s] == 1 else os.path.splitext(os.path.normpath(p))[0]
      for s, p in zip(stems, paths)
  ]
  return ["_".join(i.split()) or "_" for i in ids]


def header_lines(detector, args) -> list[str]:
  """What the scores mean: model, threshold, mode, probability."""
  meta = detector.meta
  model = meta.get("model", {})
  dev_eer = meta.get("dev_eer")
  origin = ", ".join(
      x for x in (f"model {model.get('name')}",
                  f"corpus {meta['corpus']}" if meta.get("corpus") else "",
                  f"stage {meta['stage']}" if meta.get("stage") else "",
                  f"dev EER {dev_eer:.3f}%" if isinstance(dev_eer, (int, float)) else "") if x)
  n, rate = detector.num_samples, detector.sample_rate
  if args.full_length:
    mode = (f"full length: {n}-sample windows ({n / rate:.2f} s), hop {n // 2}, last window "
            f"end-aligned; file score = {args.aggregate} of window scores")
  else:
    mode = (f"first {n} samples ({n / rate:.2f} s at {rate} Hz), repeat-padded if shorter "
            "(the training condition)")
  return [
      f"checkpoint: {detector.source} ({origin})",
      "score = logit(bona fide) - logit(spoof); higher = more bona fide",
      f"threshold: {detector.threshold:.6f} -> label 'bonafide' if score > threshold, else 'spoof' "
      f"({detector.threshold_note})",
      f"probability = P(bona fide), {detector.probability_note}",
      f"mode: {mode}",
  ]


def _num(value: float | None, fmt: str = "{:.6f}") -> str:
  return "" if value is None or (isinstance(value, float) and
                                 math.isnan(value)) else fmt.format(value)


def _json_num(value: float | None) -> float | None:
  return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def render(results, detector, args, header: list[str]) -> str:
  """The results in `args.format`."""
  if args.format == "table":
    from jaxplastic import evaluation  # pylint: disable=g-import-not-at-top

    rows = [{
        "file": r.path,
        "score": _json_num(r.score),
        "P(bonafide)": _json_num(r.probability),
        "label": r.label,
        "seconds": None if r.duration is None else round(r.duration, 2),
        "error": r.error
    } for r in results]
    columns = ["file", "score", "P(bonafide)", "label", "seconds"]
    if any(r.error for r in results):
      columns.append("error")
    table = evaluation.format_table(rows, columns)
    return "\n".join([f"# {h}" for h in header] + [table]) + "\n"
  if args.format == "csv":
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "score", "probability", "label", "duration", "windows", "error"])
    for r in results:
      w.writerow([
          r.path,
          _num(r.score),
          _num(r.probability), r.label or "",
          _num(r.duration, "{:.4f}"), r.num_windows, r.error or ""
      ])
    return buf.getvalue()
  if args.format == "json":
    doc = {
        "checkpoint":
            detector.source,
        "threshold":
            detector.threshold,
        "threshold_meaning":
            detector.threshold_note,
        "calibration":
            detector.calibration,
        "probability_meaning":
            detector.probability_note,
        "mode":
            "full_length" if args.full_length else "fixed",
        "aggregate":
            args.aggregate if args.full_length else None,
        "num_samples":
            detector.num_samples,
        "sample_rate":
            detector.sample_rate,
        "results": [{
            "path": r.path,
            "score": _json_num(r.score),
            "probability": _json_num(r.probability),
            "label": r.label,
            "duration": _json_num(r.duration),
            "windows": r.num_windows,
            "error": r.error
        } for r in results],
    }
    return json.dumps(doc, indent=2) + "\n"
  ok = [r for r in results if r.ok]
  return "".join(f"{u} {r.score:.6f}\n" for u, r in zip(utterance_ids([r.path for r in ok]), ok))


def _write(text: str, out: str | None, stdout: TextIO) -> None:
  if out is None:
    stdout.write(text)
    stdout.flush()
    return
  tmp = out + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, out)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status (0 ok, 1 files failed, 2 usage/checkpoint)."""
  parser = _parser()
  try:
    args = parser.parse_args(argv)
  except SystemExit as e:  # argparse exits on --help (0) and bad usage (2)
    return int(e.code or 0)
  err = sys.stderr
  if args.batch_size <= 0:
    print(f"jaxplastic-score: --batch-size must be positive, got {args.batch_size}", file=err)
    return 2
  try:
    files = collect_files(args.paths, args.recursive)
  except UsageError as e:
    print(f"jaxplastic-score: {e}", file=err)
    return 2
  if args.out and os.path.isdir(args.out):
    print(f"jaxplastic-score: --out {args.out} is a folder; give a file name", file=err)
    return 2

  # Heavy imports after the cheap checks, so usage errors answer at once.
  from jaxplastic import checkpoints  # pylint: disable=g-import-not-at-top
  from jaxplastic import scoring  # pylint: disable=g-import-not-at-top

  try:
    detector = scoring.Detector.load(args.checkpoint, batch_size=args.batch_size)
  except checkpoints.CheckpointError as e:
    print(f"jaxplastic-score: cannot load checkpoint: {e}", file=err)
    return 2
  header = header_lines(detector, args)
  if args.format != "table" or args.out:
    for h in header:
      print(f"# {h}", file=err)
  progress = len(files) >= PROGRESS_MIN_FILES if args.progress is None else args.progress
  results = detector.score_files(files,
                                 full_length=args.full_length,
                                 aggregate=args.aggregate,
                                 batch_size=args.batch_size,
                                 progress=progress,
                                 num_workers=args.workers)
  failed = [r for r in results if not r.ok]
  _write(render(results, detector, args, header), args.out, sys.stdout)
  for r in failed:
    print(f"jaxplastic-score: not scored: {r.error}", file=err)
  print(f"jaxplastic-score: scored {len(results) - len(failed)} of {len(results)} files" +
        (f", {len(failed)} failed" if failed else "") +
        (f"; results in {args.out}" if args.out else ""),
        file=err)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
