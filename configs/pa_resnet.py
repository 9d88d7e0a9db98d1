"""As la_resnet.py on ASVspoof 2019 PA (replay).

  python run.py --config=configs/pa_resnet.py --config.data.root=/data/PA --workdir=runs/pa_resnet
"""

from configs import la_resnet


def get_config():
  config = la_resnet.get_config()
  config.data.corpus = "asvspoof2019_pa"
  return config
