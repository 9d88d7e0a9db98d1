"""As la_resnet_dropin.py on Fake-or-Real (same layouts: `:parallel` (default, the authors'), `:parallel_train`,
`:widen`).

  python run.py --config=configs/for_resnet_dropin.py --config.data.root=/data/for-norm --workdir=runs/for_resnet_dropin
"""

from configs import la_resnet_dropin


def get_config(arg="parallel"):
  config = la_resnet_dropin.get_config(arg)
  config.data.corpus = "fakeorreal"
  return config
