"""Plasticity on the GRNN, ASVspoof 2019 LA: 15 epochs in thirds (lr 1e-4 each): baseline -> layer 2 widened to
128 units, everything trained -> pruned back to 64 -> retrained. Each phase starts from the previous phase's best
dev checkpoint, as the authors' `run_experiment` reloads it. Layout: GRU layer 2 widened in place (the authors'
GRU cell, la_grnn.py), an ordinary wider layer while grown (`--config.dropin.old_reads_new=False` isolates the old
units from the new ones in the grown stage too, as in dropin).

  python run.py --config=configs/la_grnn_plasticity.py --config.data.root=/data/LA \
      --workdir=runs/la_grnn_plasticity
"""

from configs import base
from configs import la_grnn


def get_config():
  config = la_grnn.get_config()
  config.stages = base.plasticity_stages({"hidden_sizes": (64, 128, 32, 32)}, epochs=(5, 5, 5),
                                         learning_rates=(1e-4, 1e-4, 1e-4), start_point="best")
  return config
