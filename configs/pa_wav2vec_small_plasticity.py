"""As la_wav2vec_small_plasticity.py on ASVspoof 2019 PA (replay); same layouts (`:projected`,
the authors' and the default, or `:widen`).

  python run.py --config=configs/pa_wav2vec_small_plasticity.py --config.data.root=/data/PA \
      --workdir=runs/pa_wav2vec_small_plasticity
"""

from configs import la_wav2vec_small_plasticity


def get_config(arg="projected"):
  config = la_wav2vec_small_plasticity.get_config(arg)
  config.data.corpus = "asvspoof2019_pa"
  return config
