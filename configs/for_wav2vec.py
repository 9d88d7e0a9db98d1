"""As la_wav2vec.py on Fake-or-Real (any version: for-original, for-norm, for-2sec, for-rerec); same
layouts (`:parallel`, the authors' and the default, or `:widen`).

  python run.py --config=configs/for_wav2vec.py --config.data.root=/data/for-norm \
      --config.model.pretrained=/models/wav2vec2-base --workdir=runs/for_wav2vec
"""

from configs import la_wav2vec


def get_config(arg="parallel"):
  config = la_wav2vec.get_config(arg)
  config.data.corpus = "fakeorreal"
  return config
