"""Seconds-long runs for tests and quick checks: the tiny demo corpus, tiny widths, a few steps.

  python run.py --config=configs/smoke.py:resnet18 --workdir=/tmp/smoke
  python run.py --config=configs/smoke.py:grnn,plasticity --workdir=/tmp/smoke_grnn_plasticity
  python run.py --config=configs/smoke.py:resnet18,dropin_parallel --workdir=/tmp/smoke_resnet_parallel

The argument is `<model>[,<method>]`, model resnet18 or grnn, method baseline, dropin, plasticity or (resnet18
only) dropin_parallel. The models are the paper configs' (la_resnet.py, la_grnn.py) at tiny widths. Layouts:
resnet18 `dropin` and `plasticity` widen stages 2-3; `dropin_parallel` is the authors' layout (branches beside
stages 2 and 3, only they train: dropin.grown_slices="freeze"); grnn grows GRU layer 2, isolated in dropin.
"""

from configs import base
from configs import demo


def get_config(arg="resnet18"):
  arg, _, method = arg.partition(",")
  method = method or "baseline"
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
  if method == "baseline":
    config.stages = [base.stage("baseline", num_epochs=2)]
  elif method == "dropin":
    grown = {"stage_widths": (4, 12, 16, 8)} if arg == "resnet18" else {"hidden_sizes": (8, 12, 4, 4)}
    config.stages = base.dropin_stages(grown, baseline_epochs=1, dropin_epochs=1)
    if arg == "grnn":
      config.dropin.old_reads_new = False  # the grown layer's old units never read its new ones (authors' GRU)
  elif method == "dropin_parallel" and arg == "resnet18":
    config.stages = base.dropin_stages({"branch_widths": (0, 8, 8, 0)}, baseline_epochs=1, dropin_epochs=1)
    config.dropin.grown_slices = "freeze"  # only the branches train, as in la_resnet_dropin.py
  elif method == "plasticity":
    grown = {"stage_widths": (4, 12, 16, 8)} if arg == "resnet18" else {"hidden_sizes": (8, 12, 4, 4)}
    lr = config.optim.learning_rate
    config.stages = base.plasticity_stages(grown, epochs=(1, 1, 1), learning_rates=(lr, lr, lr))
  else:
    raise ValueError(f"unknown method {method!r} for {arg}: baseline, dropin, plasticity or (resnet18) "
                     "dropin_parallel")
  return config
