"""Seconds-long runs for tests and quick checks: the tiny demo corpus, tiny widths, a few steps.

  python run.py --config=configs/smoke.py:resnet18 --workdir=/tmp/smoke
  python run.py --config=configs/smoke.py:grnn --workdir=/tmp/smoke_grnn
"""

from configs import base
from configs import demo


def get_config(arg="resnet18"):
  config = demo.get_config(arg)
  config.data.demo_size = "tiny"
  config.data.root = "runs/demo_corpus_tiny"
  config.data.num_samples = 8000
  config.data.batch_size = 4
  config.data.eval_batch_size = 8
  config.data.num_threads = 1
  if arg == "resnet18":
    config.model.stage_widths = (4, 8, 8, 8)
    config.model.stem_width = 4
    config.model.num_frames = 16
    config.model.n_mels = 16
  else:
    config.model.hidden_sizes = (8, 8, 4, 4)
  config.train.log_every_steps = 2
  config.train.checkpoint_every_steps = 2
  config.train.progress = False
  config.stages = [base.stage("baseline", num_epochs=2)]
  return config
