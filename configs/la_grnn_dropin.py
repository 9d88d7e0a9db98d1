"""Dropin on the GRNN, ASVspoof 2019 LA, the authors' layout: GRU layer 2 widens in place from 64 to 128 units
(new units get their own gate weights from the input, the old and the new hidden units; layer 3's input grows), and
as in their code the old units never read the new ones: the new->old blocks of the three hidden kernels stay zero
and frozen (`dropin.old_reads_new=False`), so dropin trains 43,392 of 112,962 parameters (55,680 new minus
3 x 64 x 64). 10 epochs each for the baseline, dropin and the unfrozen comparison (everything but those blocks
trainable: 100,674), which the authors train from scratch (`unfrozen_start="init"`).

  python run.py --config=configs/la_grnn_dropin.py --config.data.root=/data/LA --workdir=runs/la_grnn_dropin

Options: --config.dropin.old_reads_new=True (an ordinary wider layer: 55,680 trainable in dropin, all 112,962 in
the unfrozen comparison); --config.stages[2].start_point=best (the unfrozen comparison grown from the baseline
instead of from scratch).
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
