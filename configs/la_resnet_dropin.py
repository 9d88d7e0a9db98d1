"""Dropin on ResNet-18, ASVspoof 2019 LA: stages 2 and 3 gain +128 and +256 channels (the authors' setting);
baseline vs dropin (new neurons only) vs dropin unfrozen (the same grown model, everything trainable).

  python run.py --config=configs/la_resnet_dropin.py --config.data.root=/data/LA --workdir=runs/la_resnet_dropin

To start from an already trained baseline instead of training one:
  --config.stages[0].checkpoint=runs/la_resnet   (a finished run's workdir or its model/ folder)
"""

from configs import base
from configs import la_resnet


def get_config():
  config = la_resnet.get_config()
  # Score with the dropin model; dropin_unfrozen is the comparison.
  config.export_stage = "dropin"
  # Widening stand-in for the authors' parallel branches (wired to `branch_widths` in a later change).
  # The authors' code does not say where their ResNet "unfrozen" run starts; ours grows the baseline's best.
  config.stages = base.dropin_stages({"stage_widths": (64, 256, 512, 512)}, baseline_epochs=5, dropin_epochs=5,
                                     unfrozen_start="baseline")
  return config
