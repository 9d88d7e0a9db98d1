"""As la_grnn_dropin.py on ASVspoof 2019 PA.

  python run.py --config=configs/pa_grnn_dropin.py --config.data.root=/data/PA --workdir=runs/pa_grnn_dropin
"""

from configs import la_grnn_dropin


def get_config():
  config = la_grnn_dropin.get_config()
  config.data.corpus = "asvspoof2019_pa"
  return config
