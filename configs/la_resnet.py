"""ResNet-18 on log-Mel, ASVspoof 2019 LA, the authors' settings (Adam 1e-3, batch 32, 4 s = 64,000 samples,
zero-padded; torchaudio's HTK mel filterbank without area normalisation; PyTorch's default layer init).

  python run.py --config=configs/la_resnet.py --config.data.root=/data/LA --workdir=runs/la_resnet

`data.root` is the folder holding ASVspoof2019_LA_train/, _dev/, _eval/ and _cm_protocols/. Our alternatives
(docs/fidelity.md): `--config.model.mel_htk=False --config.model.mel_norm=slaney` (librosa's Slaney filterbank),
`--config.model.weight_init=torchvision` (kaiming fan-out convs, torchvision's ResNet).
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
      # Channels of one parallel BasicBlock beside each stage, concatenated after its output (0 = none); the
      # authors' dropin grows (0, 0, 0, 0) -> (0, 128, 256, 0).
      branch_widths=(0, 0, 0, 0),
      num_classes=2,
      # Front-end: Mel spectrogram (n_fft 1024, hop 512, 64 mels) -> dB -> 224 frames -> per-utterance z-norm.
      sample_rate=16000,
      n_fft=1024,
      hop_length=512,
      n_mels=64,
      num_frames=224,
      # Mel scale: HTK (True: torchaudio's MelSpectrogram default, the authors') or Slaney (False: librosa's).
      mel_htk=True,
      # Filterbank area normalisation: None (torchaudio's default, the authors') or "slaney" (librosa's).
      mel_norm=ml_collections.config_dict.placeholder(str),
      # Layer init: "pytorch" (nn.Conv2d / nn.Linear defaults, the authors') or "torchvision" (kaiming fan-out
      # normal convs, zero head bias).
      weight_init="pytorch",
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
