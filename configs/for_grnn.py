"""As la_grnn.py on Fake-or-Real (any version: for-original, for-norm, for-2sec, for-rerec).

  python run.py --config=configs/for_grnn.py --config.data.root=/data/for-norm --workdir=runs/for_grnn
"""

from configs import la_grnn


def get_config():
  config = la_grnn.get_config()
  config.data.corpus = "fakeorreal"
  return config
