"""As la_resnet.py on Fake-or-Real (any version: for-original, for-norm, for-2sec, for-rerec).

  python run.py --config=configs/for_resnet.py --config.data.root=/data/for-norm --workdir=runs/for_resnet
"""

from configs import la_resnet


def get_config():
  config = la_resnet.get_config()
  config.data.corpus = "fakeorreal"
  return config
