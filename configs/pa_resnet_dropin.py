"""As la_resnet_dropin.py on ASVspoof 2019 PA (same layouts: `:parallel` (default, the authors'), `:parallel_train`,
`:widen`).

  python run.py --config=configs/pa_resnet_dropin.py --config.data.root=/data/PA --workdir=runs/pa_resnet_dropin
"""

from configs import la_resnet_dropin


def get_config(arg="parallel"):
  config = la_resnet_dropin.get_config(arg)
  config.data.corpus = "asvspoof2019_pa"
  return config
