"""GRNN (4 GRU layers [64, 64, 32, 32]) on linear cepstra, ASVspoof 2019 LA, the authors' settings: their GRU
cell (reset gate applied to h before the hidden matrix, h' = (1 - z) h + z h~), hinge "SVM" head (sum over wrong
classes, mean over the batch), Adam 1e-4, batch 32, 4 s zero-padded.

  python run.py --config=configs/la_grnn.py --config.data.root=/data/LA --workdir=runs/la_grnn

PyTorch's nn.GRU cell instead (one fused hidden matmul per step): --config.model.cell=pytorch (docs/fidelity.md).
"""

import ml_collections

from configs import base


def grnn_model():
  return ml_collections.ConfigDict(dict(
      name="grnn",
      # Hidden units of the four stacked GRU layers.
      hidden_sizes=(64, 64, 32, 32),
      num_classes=2,
      # Front-end: "lc" (the authors' LC: STFT -> log power -> DCT-II) or "lfcc" (ASVspoof 2019 baseline LFCC
      # with deltas and delta-deltas: 3 x num_coeffs per frame).
      features="lc",
      n_fft=1024,
      hop_length=512,
      # STFT window in samples (lfcc only; 0 = n_fft) and linear filters (lfcc only).
      win_length=0,
      num_filters=20,
      num_coeffs=20,
      # Append deltas and delta-deltas to the LFCC (lfcc only).
      deltas=True,
      # GRU equations: "authors" (reset before the hidden matrix, h' = (1 - z) h + z h~) or "pytorch" (nn.GRU's).
      cell="authors",
      # What the head reads: "last" (the authors': the top GRU's final state) or "mean" (its states averaged over time).
      pooling="last",
      # lax.scan unroll factor of the time loop (speed only).
      unroll=1,
      dtype="float32",
  ))


def get_config():
  config = base.get_config()
  config.model = grnn_model()
  config.data.corpus = "asvspoof2019_la"
  config.data.num_samples = 64000
  config.data.batch_size = 32
  config.optim.name = "adam"
  config.optim.learning_rate = 1e-4
  # The authors' hinge (no 1/classes); "multi_margin" is PyTorch's MultiMarginLoss.
  config.optim.loss = "hinge"
  config.stages = [base.stage("baseline", num_epochs=5)]
  return config
