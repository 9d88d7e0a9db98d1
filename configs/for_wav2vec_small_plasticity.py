"""As la_wav2vec_small_plasticity.py on Fake-or-Real (any version: for-original, for-norm, for-2sec,
for-rerec); same layouts (`:projected`, the authors' and the default, or `:widen`).

  python run.py --config=configs/for_wav2vec_small_plasticity.py --config.data.root=/data/for-norm \
      --workdir=runs/for_wav2vec_small_plasticity
"""

from configs import la_wav2vec_small_plasticity


def get_config(arg="projected"):
  config = la_wav2vec_small_plasticity.get_config(arg)
  config.data.corpus = "fakeorreal"
  return config
