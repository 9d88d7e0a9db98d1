"""As la_resnet_plasticity.py on Fake-or-Real.

  python run.py --config=configs/for_resnet_plasticity.py --config.data.root=/data/for-norm --workdir=runs/for_resnet_plasticity
"""

from configs import la_resnet_plasticity


def get_config():
  config = la_resnet_plasticity.get_config()
  config.data.corpus = "fakeorreal"
  return config
