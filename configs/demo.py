"""The embedded demo corpus (generated on first use, ASVspoof 2019 LA layout): ResNet-18 or GRNN, minutes on a CPU.

  python run.py --config=configs/demo.py:resnet18 --workdir=runs/demo_resnet18
  python run.py --config=configs/demo.py:grnn --workdir=runs/demo_grnn

`make demo` runs both and prints the comparison. See docs/demo_corpus.md for what the corpus is and is not.
"""

from configs import base
from configs import la_grnn
from configs import la_resnet


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
  config.train.log_every_steps = 10
  config.train.checkpoint_every_steps = 100
  if arg == "grnn":
    # The GRNN learns slowly at the authors' 1e-4; the demo's few epochs need a larger step.
    config.optim.learning_rate = 1e-3
  # ~40 s per ResNet-18 epoch and ~5 s per GRNN epoch on 2 CPU cores.
  config.stages = [base.stage("baseline", num_epochs=6 if arg == "resnet18" else 18)]
  return config
