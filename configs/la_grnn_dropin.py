"""Dropin on the GRNN, ASVspoof 2019 LA: GRU layer 2 grows 64 -> 128 units (the authors' setting), and as in
their code the old units never read the new ones (the new->old recurrent block stays zero and frozen).

  python run.py --config=configs/la_grnn_dropin.py --config.data.root=/data/LA --workdir=runs/la_grnn_dropin
"""

from configs import base
from configs import la_grnn


def get_config():
  config = la_grnn.get_config()
  config.method = "dropin"
  # Score with the dropin model; dropin_unfrozen is the comparison.
  config.export_stage = "dropin"
  config.stages = base.dropin_stages({"hidden_sizes": (64, 128, 32, 32)}, baseline_epochs=5, dropin_epochs=5)
  # gru_new_to_old=False in the authors' terms; remove to let old units read the new ones.
  config.dropin.isolate_patterns = (r"gru1/hidden_[rzn]/kernel",)
  return config
