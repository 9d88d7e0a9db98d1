"""As la_wav2vec_small_plasticity.py on ASVspoof 2019 PA (replay).

  python run.py --config=configs/pa_wav2vec_small_plasticity.py --config.data.root=/data/PA \
      --workdir=runs/pa_wav2vec_small_plasticity
"""

from configs import la_wav2vec_small_plasticity


def get_config():
  config = la_wav2vec_small_plasticity.get_config()
  config.data.corpus = "asvspoof2019_pa"
  return config
