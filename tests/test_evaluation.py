"""Tests for jaxplastic.evaluation: EER, min t-DCF, per-attack breakdown, score files, tables."""
import numpy as np
import pytest

from jaxplastic import evaluation as ev

# The hand-worked example used below. Bona fide [0.8, 0.3, 0.9], spoof [0.1, 0.5, 0.2, 0.4].
# Stable sort: 0.1s 0.2s 0.3b 0.4s 0.5s 0.8b 0.9b.
#   frr = [0, 0, 0, 1/3, 1/3, 1/3, 2/3, 1]
#   far = [1, 3/4, 2/4, 2/4, 1/4, 0, 0, 0]
#   |frr - far| = [1, .75, .5, .1667, .0833, .3333, .6667, 1] -> k = 4
#   EER = (1/3 + 1/4) / 2 = 7/24, threshold = thresholds[4] = 0.4 (4th lowest score).
BONA = np.array([0.8, 0.3, 0.9])
SPOOF = np.array([0.1, 0.5, 0.2, 0.4])
FRR = np.array([0, 0, 0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
FAR = np.array([1, 3 / 4, 2 / 4, 2 / 4, 1 / 4, 0, 0, 0])

# ASV scores for the t-DCF case: targets [4, 5, 6, 7], nontargets [0, 1, 2, 3] -> ASV EER at
# k = 4, threshold 3 (the 4th lowest score). Pfa_asv = P(non >= 3) = 1/4, Pmiss_asv = 0,
# spoofs [2, 3.5, 4, 6]: Pmiss_spoof_asv = P(spoof < 3) = 1/4.
ASV_TAR = np.array([4.0, 5.0, 6.0, 7.0])
ASV_NON = np.array([0.0, 1.0, 2.0, 3.0])
ASV_SPOOF = np.array([2.0, 3.5, 4.0, 6.0])


def test_det_curve_hand_worked():
  frr, far, thr = ev.compute_det_curve(BONA, SPOOF)
  np.testing.assert_allclose(frr, FRR, atol=1e-15)
  np.testing.assert_allclose(far, FAR, atol=1e-15)
  np.testing.assert_allclose(thr, [0.1 - 0.001, 0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9])


def test_eer_hand_worked():
  eer, thr = ev.compute_eer(BONA, SPOOF)
  assert eer == pytest.approx(7 / 24, abs=1e-15)
  assert thr == 0.4


def test_eer_perfectly_separated_and_inverted():
  # Sorted labels 0 0 0 1 1 1: k = 3 gives frr = far = 0; threshold is the 3rd lowest, 2.0.
  assert ev.compute_eer([3.0, 4.0, 5.0], [0.0, 1.0, 2.0]) == (0.0, 2.0)
  # Sorted labels 1 1 1 0 0 0: frr = far = 1 at k = 3.
  assert ev.compute_eer([0.0, 1.0, 2.0], [3.0, 4.0, 5.0])[0] == 1.0


def test_eer_fully_overlapping_distributions():
  # Interleaved scores 0b 1s 2b 3s 4b 5s 6b 7s:
  #   frr = [0, .25, .25, .5, .5, .75, .75, 1, 1], far = [1, 1, .75, .75, .5, .5, .25, .25, 0]
  #   |frr - far| = 0 first at k = 4 -> EER 50 %, threshold = 4th lowest score = 3.
  eer, thr = ev.compute_eer([0.0, 2.0, 4.0, 6.0], [1.0, 3.0, 5.0, 7.0])
  assert eer == 0.5 and thr == 3.0
  rng = np.random.default_rng(1)
  x = rng.normal(size=20000)
  eer, _ = ev.compute_eer(x[:10000], x[10000:])
  assert abs(eer - 0.5) < 0.02


def test_eer_all_scores_tied():
  # Official curve: stable sort keeps bona fide first, labels 1 1 0 0:
  # frr = [0, .5, 1, 1, 1], far = [1, 1, 1, .5, 0] -> k = 2, EER = (1 + 1) / 2 = 100 %.
  assert ev.compute_eer([1.0, 1.0], [1.0, 1.0])[0] == 1.0
  # Tie-aware curve keeps only k = 0 (frr 0, far 1) and k = 4 (frr 1, far 0) -> EER 50 %.
  eer, thr = ev.compute_eer([1.0, 1.0], [1.0, 1.0], tie_aware=True)
  assert eer == 0.5 and thr == pytest.approx(0.999)
  assert ev.evaluate([1.0] * 4, [1, 1, 0, 0], tie_aware=True)["eer"] == 50.0


def test_tie_aware_equals_official_without_ties():
  rng = np.random.default_rng(2)
  b, s = rng.normal(1, 1, 300), rng.normal(0, 1, 500)
  for got, want in zip(ev.compute_det_curve(b, s, tie_aware=True), ev.compute_det_curve(b, s)):
    np.testing.assert_array_equal(got, want)


def test_eer_invariant_to_monotone_transform():
  rng = np.random.default_rng(3)
  b, s = rng.normal(0.7, 1, 400), rng.normal(0, 1.3, 900)
  f = lambda x: 3.0 * x ** 3 + x - 5.0  # strictly increasing
  eer, thr = ev.compute_eer(b, s)
  eer_f, thr_f = ev.compute_eer(f(b), f(s))
  assert eer == eer_f
  assert thr_f == pytest.approx(f(thr))


def _brute_force_eer(bona, spoof):
  """Independent reference: sweep 'bona fide iff score > t' over -inf and every score."""
  best = None
  for t in np.concatenate([[-np.inf], np.sort(np.concatenate([bona, spoof]))]):
    frr = np.sum(bona <= t) / bona.size
    far = np.sum(spoof > t) / spoof.size
    if best is None or abs(frr - far) < best[0]:
      best = (abs(frr - far), (frr + far) / 2)
  return best[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_matches_brute_force_sweep(seed):
  rng = np.random.default_rng(seed)
  b = rng.normal(1.0, 1.0, 137 + seed)
  s = rng.normal(-0.5, 2.0, 411)
  assert ev.compute_eer(b, s)[0] == pytest.approx(_brute_force_eer(b, s), abs=1e-12)


def test_min_tdcf_hand_computed():
  # Ptar = .9405, Pnon = .0095, Pspoof = .05 and the ASV rates in the header comment:
  # C1 = Ptar (1 - 1 * 0) - Pnon * 10 * 1/4 = .9405 - .02375 = .91675
  # C2 = 10 * .05 * (1 - 1/4) = .375
  # C1 * FRR + C2 * FAR = [.375, .28125, .1875, .49308, .39933, .30558, .61117, .91675]
  # min = .1875 (k = 2); / min(C1, C2) = .1875 / .375 = 0.5
  got = ev.compute_min_tdcf(BONA, SPOOF, ASV_TAR, ASV_NON, ASV_SPOOF)
  assert got == pytest.approx(0.5, abs=1e-12)
  # Revised 2021: C0 = .9405 * 0 + .0095 * 10 * 1/4 = .02375, C1 = .9405 - C0 = .91675, C2 = .375
  # min (C0 + C1 FRR + C2 FAR) = .02375 + .1875 (k = 2); / (C0 + min(C1, C2)) = / .39875.
  got = ev.compute_min_tdcf(BONA, SPOOF, ASV_TAR, ASV_NON, ASV_SPOOF, revised=True)
  assert got == pytest.approx(0.21125 / 0.39875, abs=1e-12)


def _official_style_min_tdcf(bona_cm, spoof_cm, tar_asv, non_asv, spoof_asv):
  """Independent re-implementation of ASVspoof 2019 eval_metrics.py (legacy t-DCF)."""
  cost = {"Pspoof": 0.05, "Ptar": (1 - 0.05) * 0.99, "Pnon": (1 - 0.05) * 0.01,
          "Cmiss_asv": 1, "Cfa_asv": 10, "Cmiss_cm": 1, "Cfa_cm": 10}

  def det(tar, non):
    # Threshold sweep 'accept iff score > t' (equals the positional DET when scores are untied).
    ts = np.concatenate([[np.min(np.concatenate([tar, non])) - 0.001],
                         np.sort(np.concatenate([tar, non]))])
    miss = np.array([np.mean(tar <= t) for t in ts])
    fa = np.array([np.mean(non > t) for t in ts])
    return miss, fa, ts

  miss, fa, ts = det(tar_asv, non_asv)
  asv_t = ts[np.argmin(np.abs(miss - fa))]
  pfa_asv = np.sum(non_asv >= asv_t) / non_asv.size
  pmiss_asv = np.sum(tar_asv < asv_t) / tar_asv.size
  pmiss_spoof_asv = np.sum(spoof_asv < asv_t) / spoof_asv.size
  pmiss_cm, pfa_cm, _ = det(bona_cm, spoof_cm)
  c1 = cost["Ptar"] * (cost["Cmiss_cm"] - cost["Cmiss_asv"] * pmiss_asv) \
      - cost["Pnon"] * cost["Cfa_asv"] * pfa_asv
  c2 = cost["Cfa_cm"] * cost["Pspoof"] * (1 - pmiss_spoof_asv)
  return np.min((c1 * pmiss_cm + c2 * pfa_cm) / np.minimum(c1, c2))


@pytest.mark.parametrize("seed", [0, 1])
def test_min_tdcf_matches_official_reimplementation(seed):
  rng = np.random.default_rng(seed)
  bona, spoof = rng.normal(2.0, 1.0, 150), rng.normal(-1.0, 1.5, 400)
  tar, non, spf = rng.normal(3, 1, 200), rng.normal(-3, 1, 300), rng.normal(1, 2, 250)
  got = ev.compute_min_tdcf(bona, spoof, tar, non, spf)
  assert got == pytest.approx(_official_style_min_tdcf(bona, spoof, tar, non, spf), rel=1e-12)
  assert 0.0 < got <= 1.0  # the min over thresholds includes the accept/reject-all points (= 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(p_spoof=0.1), "sum to 1"),
    (dict(c_fa_asv=1000.0), "C1="),  # Pnon * 1000 * 1/4 = 2.375 > Ptar -> C1 < 0
    (dict(c_fa_cm=-1.0), "C2="),
])
def test_min_tdcf_refuses_bad_costs(kwargs, match):
  with pytest.raises(ev.MetricError, match=match):
    ev.compute_min_tdcf(BONA, SPOOF, ASV_TAR, ASV_NON, ASV_SPOOF, **kwargs)


@pytest.mark.parametrize("which", range(5))
@pytest.mark.parametrize("bad, match", [(np.nan, "NaN/Inf"), (np.inf, "NaN/Inf"),
                                        (None, "empty")])
def test_min_tdcf_refuses_bad_scores(which, bad, match):
  args = [BONA, SPOOF, ASV_TAR, ASV_NON, ASV_SPOOF]
  args[which] = np.array([]) if bad is None else np.append(args[which], bad)
  with pytest.raises(ev.MetricError, match=match):
    ev.compute_min_tdcf(*args)


def test_min_tdcf_refuses_hard_decisions_and_zero_normaliser():
  with pytest.raises(ev.MetricError, match="unique"):
    ev.compute_min_tdcf([1.0, 1.0, 1.0], [0.0, 0.0], ASV_TAR, ASV_NON, ASV_SPOOF)
  # Every ASV spoof is rejected by the ASV -> C2 = 0 -> nothing to normalise by.
  with pytest.raises(ev.MetricError, match="normaliser"):
    ev.compute_min_tdcf(BONA, SPOOF, ASV_TAR, ASV_NON, [-5.0, -6.0])


def test_evaluate_pooled_and_per_attack():
  rng = np.random.default_rng(4)
  bona = rng.normal(2.0, 1.0, 60)
  a01 = rng.normal(-3.0, 0.5, 40)  # well separated
  a02 = rng.normal(1.5, 1.0, 30)  # overlapping
  scores = np.concatenate([bona, a01, a02])
  labels = np.array([1] * 60 + [0] * 70)
  attacks = ["-"] * 60 + ["A01"] * 40 + ["A02"] * 30
  asv = {"target": rng.normal(3, 1, 100), "nontarget": rng.normal(-3, 1, 100),
         "spoof": rng.normal(1, 2, 100),
         "spoof_by_attack": {"A01": rng.normal(-1, 2, 50), "A02": rng.normal(2, 1, 50)}}
  res = ev.evaluate(scores, labels, attacks, asv)
  eer, thr = ev.compute_eer(bona, np.concatenate([a01, a02]))
  assert res["eer"] == pytest.approx(100 * eer) and res["eer_threshold"] == thr
  assert res["num_bonafide"] == 60 and res["num_spoof"] == 70
  correct = np.sum(bona > thr) + np.sum(np.concatenate([a01, a02]) <= thr)
  assert res["accuracy"] == pytest.approx(100 * correct / 130)
  assert res["min_tdcf"] == pytest.approx(ev.compute_min_tdcf(
      bona, np.concatenate([a01, a02]), asv["target"], asv["nontarget"], asv["spoof"]))
  assert sorted(res["per_attack"]) == ["A01", "A02"]
  for name, spoof in [("A01", a01), ("A02", a02)]:
    per = res["per_attack"][name]
    assert per["count"] == spoof.size
    assert per["eer"] == pytest.approx(100 * ev.compute_eer(bona, spoof)[0])
    assert per["min_tdcf"] == pytest.approx(ev.compute_min_tdcf(
        bona, spoof, asv["target"], asv["nontarget"], asv["spoof_by_attack"][name]))
  assert res["per_attack"]["A01"]["eer"] == 0.0 and res["per_attack"]["A01"]["accuracy"] == 100.0
  assert res["per_attack"]["A02"]["eer"] > 10.0
  # Without spoof_by_attack the pooled ASV spoof scores are used for every attack.
  del asv["spoof_by_attack"]
  res2 = ev.evaluate(scores, labels, attacks, asv)
  assert res2["per_attack"]["A02"]["min_tdcf"] == pytest.approx(ev.compute_min_tdcf(
      bona, a02, asv["target"], asv["nontarget"], asv["spoof"]))
  assert res2["per_attack"]["A02"]["min_tdcf"] != res["per_attack"]["A02"]["min_tdcf"]
  no_asv = ev.evaluate(scores, labels)
  assert no_asv["min_tdcf"] is None and no_asv["per_attack"] == {}


def test_evaluate_refusals():
  with pytest.raises(ev.MetricError, match="NaN"):
    ev.evaluate([0.1, np.nan, 0.3], [1, 0, 0])
  with pytest.raises(ev.MetricError, match="both classes"):
    ev.evaluate([0.1, 0.2], [1, 1])
  with pytest.raises(ev.MetricError, match="labels"):
    ev.evaluate([0.1, 0.2], [1, 2])
  with pytest.raises(ev.MetricError, match="3 scores but 2 labels"):
    ev.evaluate([0.1, 0.2, 0.3], [1, 0])


def test_score_file_round_trip(tmp_path):
  path = tmp_path / "scores.txt"
  utts = ["LA_E_1", "LA_E_2", "LA_E_3"]
  ev.write_score_file(path, utts, ["-", "A11", "A07"], [1, 0, 0], [1.25, -3.21, 0.1234564])
  assert path.read_text().splitlines() == [
      "LA_E_1 - bonafide 1.250000", "LA_E_2 A11 spoof -3.210000", "LA_E_3 A07 spoof 0.123456"]
  got = ev.read_score_file(path)
  assert got["utt_ids"] == utts and got["attacks"] == ["-", "A11", "A07"]
  np.testing.assert_array_equal(got["labels"], [1, 0, 0])
  np.testing.assert_allclose(got["scores"], [1.25, -3.21, 0.123456])
  with pytest.raises(ev.MetricError, match="NaN/Inf"):
    ev.write_score_file(path, utts, None, [1, 0, 0], [1.0, np.nan, 0.0])
  with pytest.raises(ev.MetricError, match="length mismatch"):
    ev.write_score_file(path, utts, None, [1, 0], [1.0, 2.0, 0.0])


@pytest.mark.parametrize("bad_line, match", [
    ("LA_E_9 A07 spoof", "expected 4 fields"),
    ("LA_E_9 A07 fake 0.5", "KEY must be"),
    ("LA_E_9 A07 spoof abc", "not a number"),
    ("LA_E_9 A07 spoof nan", "not finite"),
    ("LA_E_9 A07 bonafide 0.5", "SOURCE 'A07'"),
    ("LA_E_1 A07 spoof 0.5", "already scored on line 1"),
])
def test_score_file_malformed_lines(tmp_path, bad_line, match):
  path = tmp_path / "bad.txt"
  path.write_text(f"LA_E_1 - bonafide 1.0\n\nLA_E_2 A07 spoof -1.0\n{bad_line}\n")
  with pytest.raises(ev.ScoreFileError, match=match) as info:
    ev.read_score_file(path)
  assert f"{path}:4:" in str(info.value)


def test_format_table():
  rows = [{"model": "resnet", "eer": 2.5, "n": 10, "min_tdcf": None},
          {"model": "grnn_long", "eer": 12.25, "n": 7}]
  assert ev.format_table(rows, ["model", "eer", "n", "min_tdcf"]) == (
      "model          eer   n  min_tdcf\n"
      "---------  -------  --  --------\n"
      "resnet      2.5000  10         -\n"
      "grnn_long  12.2500   7         -")
