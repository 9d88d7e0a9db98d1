"""Dropin on the GRNN, ASVspoof 2019 LA: GRU layer 2 grows 64 -> 128 units (the authors' setting), and as in
their code the old units never read the new ones (the new->old recurrent block stays zero and frozen). 10 epochs
each for the baseline, dropin and the unfrozen comparison, which the authors train from scratch.

  python run.py --config=configs/la_grnn_dropin.py --config.data.root=/data/LA --workdir=runs/la_grnn_dropin
"""

from configs import base
from configs import la_grnn


def get_config():
  config = la_grnn.get_config()
  # Score with the dropin model; dropin_unfrozen is the comparison.
  config.export_stage = "dropin"
  config.stages = base.dropin_stages({"hidden_sizes": (64, 128, 32, 32)}, baseline_epochs=10, dropin_epochs=10,
                                     unfrozen_start="init")
  # The grown layer's new->old recurrent blocks stay zero (the authors' GRU: old units never read new ones), in the
  # dropin and the unfrozen stage alike; True lets old units read the new ones.
  config.dropin.old_reads_new = False
  return config
