"""The summary table `make demo` prints: every stage, with the eval EER of each attack in its own column."""

import json

from jaxplastic import summarize


def test_summary_prints_per_attack_eval_eer(tmp_path, capsys):
  stage = {"stage": "baseline", "params_total": 10, "params_trainable": 4, "epoch_seconds": 1.5,
           "dev": {"eer": 12.5}, "eval": {"eer": 30.0, "per_attack": {"A05": {"eer": 41.25}, "A03": {"eer": 7.75}}}}
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "results.json").write_text(json.dumps({"stages": [stage, {**stage, "stage": "dropin"}]}))
  assert summarize.main(["summarize", str(tmp_path / "run")]) == 0
  header, _, *rows = capsys.readouterr().out.strip().splitlines()
  cols = header.split()
  assert cols.index("A03") < cols.index("A05") < cols.index("params")  # attacks sorted, before the sizes
  assert [r.split()[1] for r in rows] == ["baseline", "dropin"]
  for r in rows:
    assert "7.7500" in r and "41.2500" in r and "30.0000" in r
