"""Plasticity on the small from-scratch Wav2Vec 2.0, ASVspoof 2019 LA (the authors' recipe): 45
epochs in thirds, lr 1e-4 / 5e-5 / 1e-5: baseline -> encoder layer index 1 widened to 12 heads (12 x
64 = 768, the authors' width) and FFN 2048, LayerDrop 0, everything trained -> pruned back to the
baseline widths (exactly the added neurons) -> retrained. Each phase continues from the previous
one's last parameters; no gradient clipping, and no plateau schedule (the authors create one but
never step it).

  python run.py --config=configs/la_wav2vec_small_plasticity.py --config.data.root=/data/LA \
      --workdir=runs/la_wav2vec_small_plasticity

Layer index 1 is 0-based (HF's `encoder.layers[1]`, the second layer). Importance pruning instead:
  --config.stages[2].prune=importance
"""

from configs import base
from configs import la_wav2vec
from configs import la_wav2vec_small

# Encoder layer that is grown then pruned (0-based).
PLASTICITY_LAYER = 1


def get_config():
  config = la_wav2vec_small.get_config()
  # The authors' scheduler is created but never stepped: the learning rate stays constant per phase.
  config.optim.plateau_patience = 0
  grown = la_wav2vec.widened(config.model, PLASTICITY_LAYER, num_heads=12, ffn_dim=2048)
  # The authors' grown model has LayerDrop 0.
  grown["layerdrop"] = 0.0
  config.stages = base.plasticity_stages(grown,
                                         epochs=(15, 15, 15),
                                         learning_rates=(1e-4, 5e-5, 1e-5),
                                         start_point="last")
  return config
