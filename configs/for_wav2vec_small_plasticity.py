"""As la_wav2vec_small_plasticity.py on Fake-or-Real (any version: for-original, for-norm, for-2sec,
for-rerec).

  python run.py --config=configs/for_wav2vec_small_plasticity.py --config.data.root=/data/for-norm \
      --workdir=runs/for_wav2vec_small_plasticity
"""

from configs import la_wav2vec_small_plasticity


def get_config():
  config = la_wav2vec_small_plasticity.get_config()
  config.data.corpus = "fakeorreal"
  return config
