"""The authors' small Wav2Vec 2.0 trained from scratch on ASVspoof 2019 LA: 45 epochs, baseline
only.

  python run.py --config=configs/la_wav2vec_small.py --config.data.root=/data/LA \
      --workdir=runs/la_wav2vec_small

Hidden 256, 12 encoder layers, 4 heads of width 64, FFN 512; the convolutional feature encoder is
wav2vec2-base's (7 layers, 512 channels) and trains too. Optimiser as la_wav2vec.py (AdamW 1e-4, wd
0.01, plateau x0.5 patience 3, batch 16, 64,000 samples) but without gradient clipping, as the
authors' small-model scripts. Dropout, LayerDrop and SpecAugment time masking (`mask_time_prob`
0.05) are transformers' Wav2Vec2Config defaults, which a model built from that config (the authors')
applies in training; `--config.model.mask_time_prob=0.0` turns masking off (docs/fidelity.md). Its
plasticity and LoRA variants: la_wav2vec_small_plasticity.py, la_wav2vec_small_lora.py.
"""

from configs import base
from configs import la_wav2vec


def small_model():
  """Hidden 256, 12 layers, 4 heads x 64, FFN 512, from scratch."""
  model = la_wav2vec.wav2vec2_base_model()
  n = 12
  # From scratch: no checkpoint.
  model.pretrained = None
  model.hidden_size = 256
  model.num_layers = n
  model.num_heads = (4,) * n
  model.head_dim = (64,) * n
  model.ffn_dims = (512,) * n
  # Spelled out per layer, so importance pruning of the projected plasticity layout can name layer 1's width.
  model.layer_hidden = (256,) * n
  # Trained from scratch, so the conv feature encoder must learn too.
  model.freeze_feature_encoder = False
  return model


def get_config():
  config = la_wav2vec.get_config()
  config.model = small_model()
  # The authors' small-model plasticity and LoRA scripts do not clip gradients.
  config.optim.grad_clip_norm = 0.0
  config.dropin.train_patterns = ()
  config.stages = [base.stage("baseline", num_epochs=45)]
  # Export the last stage (la_wav2vec.py's "dropin" is not a stage here; variants that have one set it again).
  config.export_stage = ""
  return config
