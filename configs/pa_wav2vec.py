"""As la_wav2vec.py on ASVspoof 2019 PA (replay).

  python run.py --config=configs/pa_wav2vec.py --config.data.root=/data/PA \
      --config.model.pretrained=/models/wav2vec2-base --workdir=runs/pa_wav2vec
"""

from configs import la_wav2vec


def get_config():
  config = la_wav2vec.get_config()
  config.data.corpus = "asvspoof2019_pa"
  return config
