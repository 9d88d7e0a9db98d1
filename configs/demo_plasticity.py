"""Plasticity on the demo corpus: baseline -> grown (all trainable) -> pruned to the baseline widths -> retrained.

  python run.py --config=configs/demo_plasticity.py:resnet18 --workdir=runs/demo_plasticity_resnet18
  python run.py --config=configs/demo_plasticity.py:grnn --workdir=runs/demo_plasticity_grnn

The matching baseline has the same total epoch budget: configs/demo.py (6 ResNet-18 / 18 GRNN epochs).
benchmarks/plasticity_seeds.py runs both over three seeds.
"""

from configs import base
from configs import demo
from configs import la_grnn_plasticity
from configs import la_resnet_plasticity


def get_config(arg="resnet18"):
  config = demo.get_config(arg)
  recipe = (la_resnet_plasticity if arg == "resnet18" else la_grnn_plasticity).get_config()
  lr = config.optim.learning_rate
  thirds = sum(st.num_epochs for st in config.stages) // 3  # the same total budget as configs/demo.py
  config.stages = base.plasticity_stages(dict(recipe.stages[1].widths), epochs=(thirds,) * 3,
                                         learning_rates=(lr, lr, lr), prune=recipe.stages[2].prune)
  return config
