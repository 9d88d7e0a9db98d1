"""As la_resnet_dropin.py on Fake-or-Real.

  python run.py --config=configs/for_resnet_dropin.py --config.data.root=/data/for-norm --workdir=runs/for_resnet_dropin
"""

from configs import la_resnet_dropin


def get_config():
  config = la_resnet_dropin.get_config()
  config.data.corpus = "fakeorreal"
  return config
