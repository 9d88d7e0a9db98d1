"""As la_wav2vec.py on ASVspoof 2019 PA (replay); same layouts (`:parallel`, the
authors' and the default, or `:widen`).

  python run.py --config=configs/pa_wav2vec.py --config.data.root=/data/PA \
      --config.model.pretrained=/models/wav2vec2-base --workdir=runs/pa_wav2vec
"""

from configs import la_wav2vec


def get_config(arg="parallel"):
  config = la_wav2vec.get_config(arg)
  config.data.corpus = "asvspoof2019_pa"
  return config
