"""A tiny from-scratch Wav2Vec 2.0 on the demo corpus: baseline -> dropin -> dropin unfrozen.

  python run.py --config=configs/demo_wav2vec.py --workdir=runs/demo_wav2vec

The demo corpus is generated in runs/demo_corpus on first use (see docs/demo_corpus.md). The model
keeps the wav2vec 2.0 structure at CPU size: hidden 64, 4 pre-LN encoder layers of 4 heads x 16,
FFN 128, a 4-layer conv stack of 32 channels with wav2vec's 320x downsampling (100 frames for the
2 s crops). Dropin widens encoder layer index 2 (0-based) to 8 heads and FFN 256. Epochs 3 / 2 / 2.
Optimiser as la_wav2vec.py except lr 3e-4 (from scratch).

Measured on demo corpus version 1 (2 CPU cores shared with other jobs, load average 5-7; seed 42):
5 min 3 s wall for the whole command, of which 2 min 25 s generated the demo corpus (skipped once it
exists) and 2 min 38 s trained and scored the three stages (epochs of 16 s / 6 s / 26 s). EER % (dev / eval):
baseline 41.8 / 48.4, dropin 41.2 / 48.1 (37,378 trainable of 214,994 parameters), dropin unfrozen
37.5 / 47.2. The demo corpus is hard by design (eval attacks A05/A06 are unseen; a logistic
regression on LFCC statistics gets 38.8 / 42.8), so these numbers only show that the pipeline runs
and learns a little; they say nothing about ASVspoof. On version 4, 3 epochs per stage, 3 seeds (the demo grid,
docs/results/README.md): baseline eval EER 33.9 +- 0.8 %, dropin -1.7 %, dropin unfrozen -6.2 % relative.
"""

from configs import base
from configs import la_wav2vec

# Encoder layer that receives the new neurons (0-based).
DROPIN_LAYER = 2


def get_config():
  config = la_wav2vec.get_config()
  model = config.model
  n = 4
  model.pretrained = None
  model.hidden_size = 64
  model.num_layers = n
  model.num_heads = (4,) * n
  model.head_dim = (16,) * n
  model.ffn_dims = (128,) * n
  model.conv_dims = (32,) * 4
  model.conv_kernels = (10, 8, 8, 8)
  model.conv_strides = (5, 4, 4, 4)
  model.num_conv_pos_embeddings = 16
  model.num_conv_pos_embedding_groups = 4
  model.head_hidden = 64
  model.layerdrop = 0.0
  # From scratch without warm-up: pre-LN trains stably; per-utterance input normalisation undoes the
  # corpus's
  # random gain.
  model.layout = "stable"
  model.do_normalize = True
  # From scratch, so the conv feature encoder trains.
  model.freeze_feature_encoder = False
  config.data.corpus = "demo"
  # Generated here on first use, shared with configs/demo.py.
  config.data.root = "runs/demo_corpus"
  config.data.demo_size = "default"
  config.data.cache_audio = True
  # 2 s crops keep an epoch near half a minute on 2 CPU cores.
  config.data.num_samples = 32000
  config.optim.learning_rate = 3e-4
  config.train.log_every_steps = 10
  config.train.checkpoint_every_steps = 100
  grown = la_wav2vec.widened(model, DROPIN_LAYER, num_heads=8, ffn_dim=256)
  config.stages = base.dropin_stages(grown, baseline_epochs=3, dropin_epochs=2)
  # Score with the dropin model; dropin_unfrozen is the comparison.
  config.export_stage = "dropin"
  return config
