"""As la_grnn_dropin.py on Fake-or-Real.

  python run.py --config=configs/for_grnn_dropin.py --config.data.root=/data/for-norm --workdir=runs/for_grnn_dropin
"""

from configs import la_grnn_dropin


def get_config():
  config = la_grnn_dropin.get_config()
  config.data.corpus = "fakeorreal"
  return config
