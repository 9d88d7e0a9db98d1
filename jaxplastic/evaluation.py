"""Countermeasure metrics (EER, min t-DCF), per-attack breakdown and 2019-style score files.

Host-side numpy. EER and t-DCF follow the official ASVspoof 2019 `eval_metrics.py` exactly (see
shared/DATA.md): one DET curve from a stable sort of all scores, EER at argmin |frr - far|, and
the 2019 ("legacy") min t-DCF with the ASV threshold at the ASV system's own EER. Label 1 is
bona fide, 0 spoof; higher scores mean more bona fide.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np


class MetricError(ValueError):
  """A metric cannot be computed from the given scores or costs."""


class ScoreFileError(MetricError):
  """A score file line is malformed; the message names file and line."""


def _scores(values: Any, name: str) -> np.ndarray:
  """1-D float64 copy of `values`; refuses empty, NaN and Inf."""
  arr = np.asarray(values, dtype=np.float64).reshape(-1)
  if arr.size == 0:
    raise MetricError(f"{name} is empty")
  if not np.all(np.isfinite(arr)):
    raise MetricError(f"{name} contains {np.sum(~np.isfinite(arr))} NaN/Inf values")
  return arr


def compute_det_curve(bonafide_scores: Any, spoof_scores: Any, *, tie_aware: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """DET curve of the official scripts: (frr, far, thresholds), each of length N_b + N_s + 1.

  Entry k rejects the k lowest scores of the stable (mergesort) order, bona fide before spoof:
  frr[k] is the fraction of bona fide among them, far[k] the fraction of spoofs not among them.
  thresholds[0] is the lowest score - 0.001 and thresholds[k] the k-th lowest score, so with
  untied scores entry k is the decision "bona fide iff score > thresholds[k]".

  Tied scores are split by position there, so all-equal scores give an EER of 100 %. With
  tie_aware=True only the entries that reject whole groups of equal scores are kept (the points
  a real threshold can reach; all-equal scores give 50 %); untied scores give the same curve.
  """
  bona = _scores(bonafide_scores, "bonafide_scores")
  spoof = _scores(spoof_scores, "spoof_scores")
  all_scores = np.concatenate([bona, spoof])
  labels = np.concatenate([np.ones(bona.size), np.zeros(spoof.size)])
  order = np.argsort(all_scores, kind="mergesort")
  bona_below = np.cumsum(labels[order])
  spoof_above = spoof.size - (np.arange(1, all_scores.size + 1) - bona_below)
  frr = np.concatenate([[0.0], bona_below / bona.size])
  far = np.concatenate([[1.0], spoof_above / spoof.size])
  thresholds = np.concatenate([[all_scores[order[0]] - 0.001], all_scores[order]])
  if tie_aware:
    sorted_scores = all_scores[order]
    keep = np.concatenate([[True], sorted_scores[:-1] != sorted_scores[1:], [True]])
    return frr[keep], far[keep], thresholds[keep]
  return frr, far, thresholds


def compute_eer(bonafide_scores: Any, spoof_scores: Any, *, tie_aware: bool = False
                ) -> tuple[float, float]:
  """Equal error rate as a fraction, and its threshold (official DET-based formula).

  tie_aware: see `compute_det_curve`; the default reproduces the official scripts.
  """
  frr, far, thresholds = compute_det_curve(bonafide_scores, spoof_scores, tie_aware=tie_aware)
  k = int(np.argmin(np.abs(frr - far)))
  return float((frr[k] + far[k]) / 2.0), float(thresholds[k])


def compute_min_tdcf(bonafide_cm: Any, spoof_cm: Any, asv_target: Any, asv_nontarget: Any,
                     asv_spoof: Any, *, p_spoof: float = 0.05, p_tar: float = 0.95 * 0.99,
                     p_non: float = 0.95 * 0.01, c_miss_asv: float = 1, c_fa_asv: float = 10,
                     c_miss_cm: float = 1, c_fa_cm: float = 10, revised: bool = False) -> float:
  """Normalised minimum tandem detection cost of a CM in front of a fixed ASV system.

  Default: the ASVspoof 2019 ("legacy") t-DCF,
    C1 = Ptar (Cmiss_cm - Cmiss_asv Pmiss_asv) - Pnon Cfa_asv Pfa_asv,
    C2 = Cfa_cm Pspoof (1 - Pmiss_spoof_asv),
    min over s of (C1 Pmiss_cm(s) + C2 Pfa_cm(s)) / min(C1, C2).
  revised=True: the ASVspoof 2021 t-DCF (not comparable with 2019 numbers),
    C0 = Ptar Cmiss_asv Pmiss_asv + Pnon Cfa_asv Pfa_asv, C1 = Ptar Cmiss_asv - C0,
    C2 = Cfa_cm Pspoof (1 - Pmiss_spoof_asv),
    min over s of (C0 + C1 Pmiss_cm(s) + C2 Pfa_cm(s)) / (C0 + min(C1, C2)); c_miss_cm unused.
  The ASV threshold is the ASV EER threshold (target vs nontarget); Pfa_asv = P(nontarget >= t),
  Pmiss_asv = P(target < t), Pmiss_spoof_asv = P(spoof < t).

  Raises:
    MetricError: empty inputs, NaN/Inf scores, fewer than 3 unique CM scores, priors not
      non-negative or not summing to 1, C1 or C2 negative, or a zero normaliser.
  """
  priors = (p_spoof, p_tar, p_non)
  if min(priors) < 0 or abs(sum(priors) - 1.0) > 1e-10:
    raise MetricError(f"priors must be non-negative and sum to 1: p_spoof={p_spoof}, "
                      f"p_tar={p_tar}, p_non={p_non} (sum {sum(priors)!r})")
  bona = _scores(bonafide_cm, "bonafide_cm")
  spoof = _scores(spoof_cm, "spoof_cm")
  tar = _scores(asv_target, "asv_target")
  non = _scores(asv_nontarget, "asv_nontarget")
  asv_spf = _scores(asv_spoof, "asv_spoof")
  num_unique = np.unique(np.concatenate([bona, spoof])).size
  if num_unique < 3:
    raise MetricError(f"CM scores have {num_unique} unique values (< 3): t-DCF needs soft "
                      "scores, not binary decisions")

  _, asv_threshold = compute_eer(tar, non)
  pfa_asv = np.mean(non >= asv_threshold)
  pmiss_asv = np.mean(tar < asv_threshold)
  pmiss_spoof_asv = np.mean(asv_spf < asv_threshold)
  pmiss_cm, pfa_cm, _ = compute_det_curve(bona, spoof)

  if revised:
    c0 = p_tar * c_miss_asv * pmiss_asv + p_non * c_fa_asv * pfa_asv
    c1 = p_tar * c_miss_asv - c0
  else:
    c0 = 0.0
    c1 = p_tar * (c_miss_cm - c_miss_asv * pmiss_asv) - p_non * c_fa_asv * pfa_asv
  c2 = c_fa_cm * p_spoof * (1.0 - pmiss_spoof_asv)
  if c1 < 0 or c2 < 0:
    raise MetricError(f"t-DCF cost weights are negative (C1={c1:.6g}, C2={c2:.6g}); the ASV "
                      "error rates or costs are inconsistent")
  norm = c0 + min(c1, c2)
  if norm <= 0:
    raise MetricError(f"t-DCF normaliser is zero (C0={c0:.6g}, C1={c1:.6g}, C2={c2:.6g}): the "
                      "ASV system accepts no spoofs or misses every target")
  return float(np.min(c0 + c1 * pmiss_cm + c2 * pfa_cm) / norm)


def _accuracy(bona: np.ndarray, spoof: np.ndarray, threshold: float) -> float:
  """Percent correct with "bona fide iff score > threshold" (the DET convention above)."""
  correct = np.sum(bona > threshold) + np.sum(spoof <= threshold)
  return float(100.0 * correct / (bona.size + spoof.size))


def _min_tdcf_or_none(bona: np.ndarray, spoof: np.ndarray, asv: Mapping[str, Any] | None,
                      asv_spoof: Any) -> float | None:
  if asv is None:
    return None
  return compute_min_tdcf(bona, spoof, asv["target"], asv["nontarget"], asv_spoof)


def evaluate(scores: Any, labels: Any, attacks: Sequence[str] | None = None,
             asv: Mapping[str, Any] | None = None, *, tie_aware: bool = False
             ) -> dict[str, Any]:
  """Pooled and per-attack EER (%), min t-DCF (2019 legacy) and accuracy (%).

  Args:
    scores: [N] CM scores, higher = more bona fide.
    labels: [N] 1 = bona fide, 0 = spoof.
    attacks: optional [N] attack ids (e.g. 'A07'); only the spoofs' entries are used.
    asv: optional dict from `jaxplastic.data.asvspoof.read_asv_scores` with 'target',
      'nontarget', 'spoof' and optionally 'spoof_by_attack' ({attack: scores}); without it
      min_tdcf is None.
    tie_aware: EER on the tie-aware DET curve (see `compute_det_curve`); default official.

  Returns:
    {'eer', 'eer_threshold', 'min_tdcf', 'accuracy', 'num_bonafide', 'num_spoof',
     'per_attack': {attack: {'eer', 'min_tdcf', 'accuracy', 'count'}}}. Per-attack metrics
    compare all bona fide trials against that attack's spoofs, with accuracy at that pair's own
    EER threshold and t-DCF using the attack's ASV spoof scores when given; count = its spoofs.
    Accuracy uses "bona fide iff score > eer_threshold".
  """
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  if scores.shape != labels.shape:
    raise MetricError(f"{scores.size} scores but {labels.size} labels")
  if not np.all(np.isfinite(scores)):
    raise MetricError(f"scores contain {np.sum(~np.isfinite(scores))} NaN/Inf values")
  if not np.all((labels == 0) | (labels == 1)):
    raise MetricError(f"labels must be 0 (spoof) or 1 (bona fide), got {np.unique(labels)}")
  is_bona = labels == 1
  bona, spoof = scores[is_bona], scores[~is_bona]
  if bona.size == 0 or spoof.size == 0:
    raise MetricError(f"need both classes: {bona.size} bona fide, {spoof.size} spoof")

  eer, threshold = compute_eer(bona, spoof, tie_aware=tie_aware)
  result: dict[str, Any] = {
      "eer": 100.0 * eer,
      "eer_threshold": threshold,
      "min_tdcf": _min_tdcf_or_none(bona, spoof, asv, None if asv is None else asv["spoof"]),
      "accuracy": _accuracy(bona, spoof, threshold),
      "num_bonafide": int(bona.size),
      "num_spoof": int(spoof.size),
      "per_attack": {},
  }
  if attacks is None:
    return result
  attacks = np.asarray([str(a) for a in attacks])
  if attacks.shape != scores.shape:
    raise MetricError(f"{attacks.size} attack ids but {scores.size} scores")
  spoof_attacks = attacks[~is_bona]
  by_attack = (asv or {}).get("spoof_by_attack") or {}
  for attack in sorted(set(spoof_attacks.tolist())):
    attack_spoof = spoof[spoof_attacks == attack]
    a_eer, a_threshold = compute_eer(bona, attack_spoof, tie_aware=tie_aware)
    asv_spoof = None if asv is None else by_attack.get(attack, asv["spoof"])
    result["per_attack"][attack] = {
        "eer": 100.0 * a_eer,
        "min_tdcf": _min_tdcf_or_none(bona, attack_spoof, asv, asv_spoof),
        "accuracy": _accuracy(bona, attack_spoof, a_threshold),
        "count": int(attack_spoof.size),
    }
  return result


def write_score_file(path: str | os.PathLike, utt_ids: Sequence[str],
                     attacks: Sequence[str] | None, labels: Any, scores: Any) -> None:
  """Writes a 2019-style CM score file: one `UTT SOURCE KEY SCORE` line per trial.

  SOURCE is the attack id for spoofs and '-' for bona fide (and for spoofs when attacks is
  None); KEY is bonafide|spoof; SCORE is written with %.6f.
  """
  labels = np.asarray(labels).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  n = len(utt_ids)
  if not (labels.size == scores.size == n) or (attacks is not None and len(attacks) != n):
    raise MetricError(f"length mismatch: {n} utt_ids, {labels.size} labels, {scores.size} "
                      f"scores, {'-' if attacks is None else len(attacks)} attacks")
  if not np.all(np.isfinite(scores)):
    raise MetricError(f"refusing to write {np.sum(~np.isfinite(scores))} NaN/Inf scores to {path}")
  lines = []
  for i, utt in enumerate(utt_ids):
    if not utt or any(c.isspace() for c in utt):
      raise MetricError(f"utterance id {utt!r} (index {i}) is empty or contains whitespace")
    if labels[i] not in (0, 1):
      raise MetricError(f"label {labels[i]!r} of {utt} is neither 0 nor 1")
    bona_fide = labels[i] == 1
    source = "-" if bona_fide or attacks is None else str(attacks[i])
    if not source or any(c.isspace() for c in source):
      raise MetricError(f"attack id {source!r} of {utt} is empty or contains whitespace")
    lines.append(f"{utt} {source} {'bonafide' if bona_fide else 'spoof'} {scores[i]:.6f}\n")
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(lines)


def read_score_file(path: str | os.PathLike) -> dict[str, Any]:
  """Reads a 2019-style CM score file written by `write_score_file` (or the official tools).

  Returns:
    {'utt_ids': list[str], 'attacks': list[str], 'labels': int32 [N], 'scores': float64 [N]}.

  Raises:
    ScoreFileError: naming `path:line` for a line without 4 fields, an unknown KEY, a bona fide
      line whose SOURCE is not '-', an unparsable or non-finite score, or a repeated utterance.
  """
  utt_ids, attacks, labels, scores = [], [], [], []
  first_line: dict[str, int] = {}
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      where = f"{path}:{lineno}"
      fields = line.split()
      if not fields:
        continue
      if len(fields) != 4:
        raise ScoreFileError(f"{where}: expected 4 fields 'UTT SOURCE KEY SCORE', got "
                             f"{len(fields)}: {line.rstrip()!r}")
      utt, source, key, score_text = fields
      if key not in ("bonafide", "spoof"):
        raise ScoreFileError(f"{where}: KEY must be 'bonafide' or 'spoof', got {key!r}")
      if key == "bonafide" and source != "-":
        raise ScoreFileError(f"{where}: bona fide trial {utt} has SOURCE {source!r}, expected '-'")
      try:
        score = float(score_text)
      except ValueError:
        raise ScoreFileError(f"{where}: score {score_text!r} is not a number") from None
      if not math.isfinite(score):
        raise ScoreFileError(f"{where}: score {score_text!r} is not finite")
      if utt in first_line:
        raise ScoreFileError(f"{where}: utterance {utt} already scored on line {first_line[utt]}")
      first_line[utt] = lineno
      utt_ids.append(utt)
      attacks.append(source)
      labels.append(1 if key == "bonafide" else 0)
      scores.append(score)
  return {"utt_ids": utt_ids, "attacks": attacks, "labels": np.asarray(labels, np.int32),
          "scores": np.asarray(scores, np.float64)}


def _cell(value: Any) -> str:
  if value is None:
    return "-"
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  if isinstance(value, (float, np.floating)):
    return f"{float(value):.4f}"
  return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
  """Plain aligned text table: header, dashed rule, one line per row.

  Floats print with 4 decimals, missing or None cells as '-'; numbers are right-aligned and
  text left-aligned. No trailing newline.
  """
  if not columns:
    raise ValueError("format_table needs at least one column")
  cells = [[_cell(row.get(c)) for c in columns] for row in rows]
  numeric = [all(isinstance(row.get(c), (int, float, np.integer, np.floating))
                 and not isinstance(row.get(c), (bool, np.bool_))
                 for row in rows if row.get(c) is not None) for c in columns]
  widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]

  def fmt(values: Sequence[str]) -> str:
    parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
    return "  ".join(parts).rstrip()

  lines = [fmt(list(columns)), "  ".join("-" * w for w in widths)]
  lines += [fmt(r) for r in cells]
  return "\n".join(lines)
