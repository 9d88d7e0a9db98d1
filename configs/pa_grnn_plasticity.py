"""As la_grnn_plasticity.py on ASVspoof 2019 PA.

  python run.py --config=configs/pa_grnn_plasticity.py --config.data.root=/data/PA --workdir=runs/pa_grnn_plasticity
"""

from configs import la_grnn_plasticity


def get_config():
  config = la_grnn_plasticity.get_config()
  config.data.corpus = "asvspoof2019_pa"
  return config
