"""Dropin on ResNet-18, ASVspoof 2019 LA: baseline vs dropin (only the new neurons train) vs dropin unfrozen (the
same grown model, everything trainable, started from the baseline's best). 5 epochs each, Adam 1e-3.

  python run.py --config=configs/la_resnet_dropin.py --config.data.root=/data/LA --workdir=runs/la_resnet_dropin

Layout (the config argument, `configs/la_resnet_dropin.py:<layout>`):
  parallel        (default, the authors') one parallel BasicBlock beside stage 2 (128 channels, stride 2) and one
                  beside stage 3 (256 channels), each reading its stage's input, concatenated after the stage's
                  output channels (`model.branch_widths` (0, 0, 0, 0) -> (0, 128, 256, 0)). Only the two branches
                  train: 1,476,864 of 14,286,530 parameters. The 1,638,400 new input slices of stage 3/4 block 1
                  (conv1 and shortcut) that read the branches stay at their random init, as in the authors' code,
                  whose frozen stages hold them (`dropin.grown_slices="freeze"`).
  parallel_train  the same model with those input slices trained too (`dropin.grown_slices="train"`): 3,115,264.
  widen           our generic widening: stages 2 and 3 doubled in place (`model.stage_widths` (64, 128, 256, 512)
                  -> (64, 256, 512, 512), both blocks), every new slice trains: 9,015,040 of 20,186,306.
e.g. python run.py --config=configs/la_resnet_dropin.py:widen --config.data.root=/data/LA --workdir=runs/la_widen

The authors' code does not say where their ResNet "unfrozen" run starts; ours grows the baseline's best
(`base.dropin_stages(unfrozen_start=...)`). To start from an already trained baseline instead of training one:
  --config.stages[0].checkpoint=runs/la_resnet   (a finished run's workdir or its model/ folder)
"""

from configs import base
from configs import la_resnet

# layout -> (stage widths of the grown model, dropin.grown_slices).
LAYOUTS = {
    "parallel": ({"branch_widths": (0, 128, 256, 0)}, "freeze"),
    "parallel_train": ({"branch_widths": (0, 128, 256, 0)}, "train"),
    "widen": ({"stage_widths": (64, 256, 512, 512)}, "train"),
}


def get_config(arg="parallel"):
  layout = arg or "parallel"
  if layout not in LAYOUTS:
    raise ValueError(f"configs/la_resnet_dropin.py:<layout> takes one of {sorted(LAYOUTS)}, got {arg!r}")
  grown, grown_slices = LAYOUTS[layout]
  config = la_resnet.get_config()
  # Score with the dropin model; dropin_unfrozen is the comparison.
  config.export_stage = "dropin"
  # "freeze": only tensors the grown model adds (the branches) train; "train": new slices of grown tensors too.
  config.dropin.grown_slices = grown_slices
  config.stages = base.dropin_stages(grown, baseline_epochs=5, dropin_epochs=5, unfrozen_start="baseline")
  return config
