"""As la_wav2vec.py on Fake-or-Real (any version: for-original, for-norm, for-2sec, for-rerec).

  python run.py --config=configs/for_wav2vec.py --config.data.root=/data/for-norm \
      --config.model.pretrained=/models/wav2vec2-base --workdir=runs/for_wav2vec
"""

from configs import la_wav2vec


def get_config():
  config = la_wav2vec.get_config()
  config.data.corpus = "fakeorreal"
  return config
