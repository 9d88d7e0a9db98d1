"""Dropin on the demo corpus (the authors' growth, scaled to a CPU): baseline, dropin (new neurons only) and
dropin unfrozen, with the efficiency table.

  python run.py --config=configs/demo_dropin.py:resnet18 --workdir=runs/demo_dropin_resnet18
  python run.py --config=configs/demo_dropin.py:grnn --workdir=runs/demo_dropin_grnn
"""

from configs import demo
from configs import la_grnn_dropin
from configs import la_resnet_dropin


def get_config(arg="resnet18"):
  config = demo.get_config(arg)
  source = la_resnet_dropin if arg == "resnet18" else la_grnn_dropin
  recipe = source.get_config()
  config.dropin = recipe.dropin
  config.export_stage = recipe.export_stage
  config.stages = recipe.stages
  # Baseline as configs/demo.py; each dropin variant gets half that budget again.
  base_epochs = demo.get_config(arg).stages[0].num_epochs
  for st, epochs in zip(config.stages, (base_epochs, base_epochs // 2, base_epochs // 2)):
    st.num_epochs = epochs
  return config
