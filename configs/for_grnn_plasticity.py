"""As la_grnn_plasticity.py on Fake-or-Real.

  python run.py --config=configs/for_grnn_plasticity.py --config.data.root=/data/for-norm --workdir=runs/for_grnn_plasticity
"""

from configs import la_grnn_plasticity


def get_config():
  config = la_grnn_plasticity.get_config()
  config.data.corpus = "fakeorreal"
  return config
