"""As la_grnn.py on ASVspoof 2019 PA (replay).

  python run.py --config=configs/pa_grnn.py --config.data.root=/data/PA --workdir=runs/pa_grnn
"""

from configs import la_grnn


def get_config():
  config = la_grnn.get_config()
  config.data.corpus = "asvspoof2019_pa"
  return config
