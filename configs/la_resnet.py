"""ResNet-18 on log-Mel, ASVspoof 2019 LA, the authors' settings (Adam 1e-3, batch 32, 4 s = 64,000 samples).

  python run.py --config=configs/la_resnet.py --config.data.root=/data/LA --workdir=runs/la_resnet

`data.root` is the folder holding ASVspoof2019_LA_train/, _dev/, _eval/ and _cm_protocols/.
"""

import ml_collections

from configs import base


def resnet18_model():
  return ml_collections.ConfigDict(dict(
      name="resnet18",
      # Output channels of the four stages (BasicBlock [2, 2, 2, 2]).
      stage_widths=(64, 128, 256, 512),
      # Inner width (first conv) of each of the 8 blocks; None = the stage width.
      block_widths=None,
      blocks_per_stage=(2, 2, 2, 2),
      stem_width=64,
      num_classes=2,
      # Front-end: Mel spectrogram (n_fft 1024, hop 512, 64 mels) -> dB -> 224 frames -> per-utterance z-norm.
      sample_rate=16000,
      n_fft=1024,
      hop_length=512,
      n_mels=64,
      num_frames=224,
      # Compute dtype ("float32" or "bfloat16"); parameters stay float32.
      dtype="float32",
  ))


def get_config():
  config = base.get_config()
  config.model = resnet18_model()
  config.data.corpus = "asvspoof2019_la"
  config.data.num_samples = 64000
  config.data.batch_size = 32
  config.optim.name = "adam"
  config.optim.learning_rate = 1e-3
  config.optim.loss = "ce"
  config.stages = [base.stage("baseline", num_epochs=5)]
  return config
