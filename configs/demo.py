"""The embedded demo corpus (generated on first use, ASVspoof 2019 LA layout): ResNet-18 or GRNN, minutes on a CPU.

  python run.py --config=configs/demo.py:resnet18 --workdir=runs/demo_resnet18
  python run.py --config=configs/demo.py:grnn --workdir=runs/demo_grnn

`make demo` runs both and prints the comparison. The recipe differs from the paper configs it imports in named
fields (docs/demo_corpus.md, "Why the models stayed near chance"): repeat padding, ResNet-18's frame count and
hop, and the GRNN's input (LFCC of 256 linear filters with deltas, 2 s), pooling, learning rate and epochs.
"""

from configs import base
from configs import la_grnn
from configs import la_resnet

# ResNet-18 input: 160 log-Mel frames at hop 256 (40,704 samples, 2.5 s). Not fewer: under ~140 frames the last
# stage's map is 2 x 4 or smaller, where XLA:CPU's 3x3 convolution is 30-90x slower (benchmarks/xla_small_conv.py).
RESNET_FRAMES = 160
# 16 ms hop (the authors': 32 ms): demo utterances are 1-3 s, so 160 frames at hop 512 were mostly repeats.
RESNET_HOP = 256


def get_config(arg="resnet18"):
  if arg == "resnet18":
    config = la_resnet.get_config()
  elif arg == "grnn":
    config = la_grnn.get_config()
  else:
    raise ValueError(f"configs/demo.py:<model> takes resnet18 or grnn, got {arg!r}")
  config.data.corpus = "demo"
  # Generated here on first use (a few minutes), reused afterwards.
  config.data.root = "runs/demo_corpus"
  config.data.demo_size = "default"
  config.data.cache_audio = True
  # Demo utterances are 1-3.5 s: zero padding to the input length would make most of the input padding, which the
  # models read instead of the speech (docs/results/demo_gradcam.png); tiling the utterance gives every frame speech.
  config.data.pad = "repeat"
  config.train.log_every_steps = 20
  config.train.checkpoint_every_steps = 200
  if arg == "resnet18":
    config.model.num_frames = RESNET_FRAMES
    config.model.hop_length = RESNET_HOP
    # Exactly the samples of num_frames frames (center-padded STFT): no padded frames.
    config.data.num_samples = (RESNET_FRAMES - 1) * config.model.hop_length
    config.stages = [base.stage("baseline", num_epochs=6)]
  else:
    # The authors' LC input is a spectral envelope, which these copy-synthesis attacks keep; LFCC with deltas (as
    # the ASVspoof 2019 baseline's, 10 ms hop) carries their dynamics. 256 linear filters (31 Hz) over 40 ms
    # windows instead of the baseline's 20 (400 Hz) over 20 ms resolve the harmonics, where the MLSA vocoder's
    # pulse excitation (A03) differs from speech (docs/demo_corpus.md, point 10).
    config.model.features = "lfcc"
    config.model.n_fft = 1024
    config.model.hop_length = 160
    config.model.win_length = 640
    config.model.num_filters = 256
    config.model.num_coeffs = 256
    # The head reads the top GRU's states averaged over time, not its final state: with the final state the GRNN fit
    # its training voices but stayed at A03 26 % (docs/demo_corpus.md, point 11).
    config.model.pooling = "mean"
    # 2 s (201 frames): the GRU's time loop is the step's cost, and demo utterances are 1-3 s.
    config.data.num_samples = 32000
    # The GRNN learns slowly at the authors' 1e-4; the demo's few epochs need a larger step.
    config.optim.learning_rate = 1e-3
    config.stages = [base.stage("baseline", num_epochs=15)]
  return config
