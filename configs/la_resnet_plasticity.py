"""Plasticity on ResNet-18, ASVspoof 2019 LA: 15 epochs in thirds (lr 1e-3 each): baseline -> stages 2 and 3
widened (+128/+256 channels) and everything trained -> pruned back to the baseline widths -> retrained. Each phase
starts from the previous phase's best dev checkpoint, as the authors' `run_experiment` reloads it.

  python run.py --config=configs/la_resnet_plasticity.py --config.data.root=/data/LA \
      --workdir=runs/la_resnet_plasticity

Importance-based pruning (keep the strongest units, not necessarily the original ones):
  --config.stages[2].prune=importance

Layout: widening in place (`model.stage_widths` (64, 128, 256, 512) -> (64, 256, 512, 512)), every tensor sliced
back exactly; the authors' code copies old weights "top-left" without saying which layers grow (docs/fidelity.md).
The front-end and init are la_resnet.py's (the authors').
"""

from configs import base
from configs import la_resnet


def get_config():
  config = la_resnet.get_config()
  config.stages = base.plasticity_stages({"stage_widths": (64, 256, 512, 512)}, epochs=(5, 5, 5),
                                         learning_rates=(1e-3, 1e-3, 1e-3), start_point="best")
  return config
