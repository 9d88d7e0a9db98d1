"""Plasticity on the small from-scratch Wav2Vec 2.0, ASVspoof 2019 LA (the authors' recipe): 45
epochs in thirds, lr 1e-4 / 5e-5 / 1e-5: baseline -> encoder layer index 1 grown, LayerDrop 0,
everything trained -> pruned back to the baseline widths (exactly the added neurons) -> retrained.
Each phase continues from the previous one's last parameters; no gradient clipping, and no plateau
schedule (the authors create one but never step it).

  python run.py --config=configs/la_wav2vec_small_plasticity.py --config.data.root=/data/LA \
      --workdir=runs/la_wav2vec_small_plasticity

Layout (the config argument, `configs/la_wav2vec_small_plasticity.py:<layout>`):
  projected  (default, the authors') layer 1 becomes 768 wide (LayerNorm 768, 12 heads x 64, FFN
             2048) between a new 256 -> 768 projector after layer 0 (`encoder/proj_in1`, 197,376
             parameters) and a new 768 -> 256 projector (`encoder/proj_out1`, 196,864):
             `model.layer_hidden[1]` 256 -> 768 with `num_heads[1]` 4 -> 12, `ffn_dims[1]` 512 -> 2048.
             Pruning drops the projectors and slices layer 1 back to 256.
  widen      our generic widening of layer 1 in place (the layer stays 256 wide): heads 4 -> 12 (x 64)
             and FFN 512 -> 2048, no projectors.
e.g. python run.py --config=configs/la_wav2vec_small_plasticity.py:widen ... (as above)

Layer index 1 is 0-based (HF's `encoder.layers[1]`, the second layer). Importance pruning instead:
  --config.stages[2].prune=importance
"""

from configs import base
from configs import la_wav2vec
from configs import la_wav2vec_small

# Encoder layer that is grown then pruned (0-based).
PLASTICITY_LAYER = 1
# layout -> the grown stage's width overrides (the authors' grown layer: 12 heads x 64 = 768, FFN 2048).
LAYOUTS = {
    "projected": lambda model: la_wav2vec.projected(model, PLASTICITY_LAYER, hidden=768, num_heads=12,
                                                    ffn_dim=2048),
    "widen": lambda model: la_wav2vec.widened(model, PLASTICITY_LAYER, num_heads=12, ffn_dim=2048),
}


def get_config(arg="projected"):
  layout = arg or "projected"
  if layout not in LAYOUTS:
    raise ValueError(f"configs/la_wav2vec_small_plasticity.py:<layout> takes one of {sorted(LAYOUTS)}, got "
                     f"{arg!r}")
  config = la_wav2vec_small.get_config()
  # The authors' scheduler is created but never stepped: the learning rate stays constant per phase.
  config.optim.plateau_patience = 0
  grown = LAYOUTS[layout](config.model)
  # The authors' grown model has LayerDrop 0.
  grown["layerdrop"] = 0.0
  config.stages = base.plasticity_stages(grown,
                                         epochs=(15, 15, 15),
                                         learning_rates=(1e-4, 5e-5, 1e-5),
                                         start_point="last")
  return config
