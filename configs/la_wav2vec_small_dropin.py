"""Dropin on the small from-scratch Wav2Vec 2.0, ASVspoof 2019 LA, one encoder layer at a time (the paper's
Fig. 5 sweep): baseline (45 epochs, as la_wav2vec_small.py) -> encoder layer k widened to 12 heads (12 x 64 = 768)
and FFN 2048, only the new neurons and the head train (15 epochs) -> the same grown model with everything
trainable (15 epochs).

  python run.py --config=configs/la_wav2vec_small_dropin.py:2 --config.data.root=/data/LA \
      --workdir=runs/la_wav2vec_small_dropin_k2

The argument is k (0-based, HF's `encoder.layers[k]`; default 2, the third layer, which the paper found best on
LA). Every layer in turn, with seeds and the EER-vs-k plot: configs/grid_la.py:sweep. The grown width is the one
the authors' small-model plasticity grows to; the paper does not state the dropin width, layout or epochs of its
sweep, so 12 heads / FFN 2048, 15 dropin epochs (one plasticity third) and the layout are our choices.

Layout: widening layer k in place (`model.num_heads[k]`, `model.ffn_dims[k]`; the layer stays 256 wide), so the
original slices keep computing what they computed. The authors' projected layout (la_wav2vec_small_plasticity.py)
replaces layer k's input by a fresh projection, which frozen originals cannot follow; it suits plasticity, where
everything trains, not dropin.
"""

from configs import base
from configs import la_wav2vec
from configs import la_wav2vec_small

# Encoder layer that receives the new neurons when no argument is given (0-based).
DROPIN_LAYER = 2
# Heads (of width 64) and FFN units of the grown layer.
GROWN_HEADS = 12
GROWN_FFN = 2048


def get_config(arg=""):
  layer = int(arg) if arg else DROPIN_LAYER
  config = la_wav2vec_small.get_config()
  if not 0 <= layer < config.model.num_layers:
    raise ValueError(f"encoder layer {layer} out of range 0..{config.model.num_layers - 1}")
  # The head trains with the new neurons, as in la_wav2vec.py.
  config.dropin.train_patterns = ("head/.*",)
  grown = la_wav2vec.widened(config.model, layer, num_heads=GROWN_HEADS, ffn_dim=GROWN_FFN)
  config.stages = base.dropin_stages(grown, baseline_epochs=45, dropin_epochs=15)
  # Score with the dropin model; dropin_unfrozen is the comparison.
  config.export_stage = "dropin"
  return config
