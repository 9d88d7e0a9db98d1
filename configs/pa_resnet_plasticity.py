"""As la_resnet_plasticity.py on ASVspoof 2019 PA.

  python run.py --config=configs/pa_resnet_plasticity.py --config.data.root=/data/PA --workdir=runs/pa_resnet_plasticity
"""

from configs import la_resnet_plasticity


def get_config():
  config = la_resnet_plasticity.get_config()
  config.data.corpus = "asvspoof2019_pa"
  return config
