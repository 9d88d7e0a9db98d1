"""Plasticity on the demo corpus: baseline -> grown (all trainable) -> pruned to the baseline widths -> retrained.

  python run.py --config=configs/demo_plasticity.py:resnet18 --workdir=runs/demo_plasticity_resnet18
  python run.py --config=configs/demo_plasticity.py:grnn --workdir=runs/demo_plasticity_grnn

The matching baseline with the same total epoch budget: configs/demo.py with --config.stages[0].num_epochs=6.
"""

from configs import base
from configs import demo
from configs import la_grnn_plasticity
from configs import la_resnet_plasticity


def get_config(arg="resnet18"):
  config = demo.get_config(arg)
  recipe = (la_resnet_plasticity if arg == "resnet18" else la_grnn_plasticity).get_config()
  lr = config.optim.learning_rate
  config.method = recipe.method
  config.stages = base.plasticity_stages(dict(recipe.stages[1].widths), epochs=(2, 2, 2),
                                         learning_rates=(lr, lr, lr), prune=recipe.stages[2].prune)
  return config
