"""Shared defaults for every experiment; model configs import this and override a few fields.

Not runnable by itself: it has no model section. See `la_resnet.py`, `la_grnn.py` and friends.
"""

import ml_collections


def stage(name, *, num_epochs, learning_rate=None, widths=None, kind="train", trainable="all", start_from="",
          start_point="best", init="random", prune="added", checkpoint="", reinit=()):
  """One entry of `config.stages`.

  Args:
    name: unique name; checkpoints go to `workdir/checkpoints/<index>_<name>/`.
    num_epochs: epochs to train in this stage (0: surgery or loading only).
    learning_rate: overrides `optim.learning_rate` for this stage (None keeps it).
    widths: fields of `config.model` for this stage; missing fields keep the base model's values.
    kind: "train" (same shapes as the stage it starts from), "grow" or "prune" (widths larger / smaller).
    trainable: "all", or "new" (dropin: only the grown slices and `dropin.train_patterns` train).
    start_from: the stage whose parameters this one starts from ('' = the previous stage, none for the first).
    start_point: "best" (best dev EER of that stage), "last", or "init": a fresh initialisation of this stage's
      widths, not any earlier stage's parameters (a model with a pretrained checkpoint starts from it, grown into
      these widths); the authors' "dropin unfrozen" for the GRNN and Wav2Vec 2.0.
    init: new slices on grow: "random" (the authors') or "function_preserving".
    prune: on prune: "added" (remove exactly the grown units, the authors') or "importance" (keep the units with
      the largest weight norms, whichever they are).
    checkpoint: for a first stage: a finished run's workdir or exported model to load instead of training.
    reinit: regexes over `params` paths (e.g. "head/.*") re-initialised fresh after the surgery; a pattern that
      matches nothing is an error (the authors' Wav2Vec dropin trains a fresh head).
  """
  return ml_collections.ConfigDict(dict(
      name=name, num_epochs=num_epochs, learning_rate=learning_rate, widths=dict(widths or {}), kind=kind,
      trainable=trainable, start_from=start_from, start_point=start_point, init=init, prune=prune,
      checkpoint=checkpoint, reinit=tuple(reinit)))


def get_config():
  config = ml_collections.ConfigDict()
  # Seed for parameters, data order, crops and dropout.
  config.seed = 42

  config.data = ml_collections.ConfigDict()
  # "asvspoof2019_la", "asvspoof2019_pa", "fakeorreal" or "demo".
  config.data.corpus = "asvspoof2019_la"
  # Corpus root on disk (for "demo": where the generated corpus goes).
  config.data.root = ""
  # Samples per utterance after crop / pad (64,600 ~ 4.04 s is the field's default; the authors used 64,000).
  config.data.num_samples = 64600
  # Clips shorter than num_samples: "zero"-padded at the end (the authors') or "repeat"-padded (tiled, AASIST's).
  config.data.pad = "zero"
  # Longer training clips: the "first" num_samples (the authors', as in eval) or a "random" window per epoch.
  config.data.train_crop = "first"
  # False keeps the last partial training batch as a smaller batch (the authors'; one more compilation per
  # stage); True drops it so every batch has one shape.
  config.data.drop_last_train_batch = False
  # All audio is resampled to this rate.
  config.data.sample_rate = 16000
  config.data.batch_size = 32
  config.data.eval_batch_size = 64
  # Skip (and count) unreadable files instead of stopping.
  config.data.skip_bad_files = False
  # Keep decoded audio in memory after the first epoch.
  config.data.cache_audio = False
  # Batches decoded ahead of the accelerator, and decoding threads.
  config.data.prefetch_batches = 2
  config.data.num_threads = 2
  # Demo corpus only: generator seed and size ("default" or "tiny").
  config.data.demo_seed = 0
  config.data.demo_size = "default"

  config.optim = ml_collections.ConfigDict()
  # "adam", "adamw" or "sgd".
  config.optim.name = "adam"
  config.optim.learning_rate = 1e-3
  config.optim.weight_decay = 0.0
  # Global-norm gradient clipping; 0 disables.
  config.optim.grad_clip_norm = 0.0
  # "ce" (cross-entropy), "hinge" (the authors' GRNN "SVM layer": sum over wrong classes of relu(1 - x_y + x_i),
  # mean over the batch) or "multi_margin" (PyTorch's MultiMarginLoss: the same divided by the number of classes).
  config.optim.loss = "ce"
  # Per-class loss weights (spoof, bona fide); None for unweighted.
  config.optim.class_weights = ml_collections.config_dict.placeholder(tuple)
  # Reduce-on-plateau on the dev loss, once per epoch: multiply the lr by `plateau_factor` after
  # `plateau_patience` epochs without improvement; patience 0 disables.
  config.optim.plateau_factor = 0.5
  config.optim.plateau_patience = 0

  config.train = ml_collections.ConfigDict()
  # Cap on steps per epoch (-1: the whole training split); tiny runs use it.
  config.train.max_steps_per_epoch = -1
  # Cap on dev/eval batches (-1: all); only for smoke runs, never for reported numbers.
  config.train.max_eval_batches = -1
  config.train.log_every_steps = 50
  # Save a resumable checkpoint every this many steps (and at every epoch end).
  config.train.checkpoint_every_steps = 500
  # Score the eval split at the end of every stage.
  config.train.eval_at_stage_end = True
  # If set (dB below the peak, e.g. 40.0): every stage end also scores dev and eval with leading/trailing silence
  # trimmed (record keys dev_trimmed / eval_trimmed, scores/<i>_<stage>_{dev,eval}_trimmed.txt): the PA
  # silence-shortcut check.
  config.train.eval_trim_silence_db = ml_collections.config_dict.placeholder(float)
  # Show tqdm progress bars.
  config.train.progress = True

  config.dropin = ml_collections.ConfigDict()
  # Parameters (regex over '/'-joined names, e.g. 'head/.*') that train whole during dropin.
  config.dropin.train_patterns = ()
  # False: in every grown recurrent kernel the model declares (GRNN's hidden->hidden), the block through which
  # new units would feed old ones stays zero and frozen, in dropin and in the grown all-trainable comparison:
  # old units never read new ones (the authors' GRU). True: the grown layer is an ordinary wider layer.
  config.dropin.old_reads_new = True
  # New slices of tensors that exist in the baseline: "train" (widening: they are the new neurons) or "freeze"
  # (the authors' parallel branches: only added tensors train; the next layers' new input slices stay at init).
  config.dropin.grown_slices = "train"
  # BatchNorm running statistics of the original channels during dropin: "update" (the authors': PyTorch keeps
  # updating every running buffer in train mode) or "freeze" (kept bit-identical with the frozen weights).
  config.dropin.batch_stats = "update"

  # The stage whose best-by-dev model is exported to workdir/model for scoring ('' = the last stage).
  config.export_stage = ""
  # The stage list; each model config fills it with its recipe (see `stage`, `dropin_stages`, `plasticity_stages`).
  config.stages = [stage("baseline", num_epochs=5)]
  return config


def dropin_stages(grown_widths, *, baseline_epochs, dropin_epochs, baseline_checkpoint="", unfrozen=True,
                  init="random", unfrozen_start="baseline", reinit=()):
  """The authors' dropin comparison: train (or load) a baseline, then from its best checkpoint grow the chosen
  layers and train only the new neurons; optionally also train the same grown model with everything trainable.

  Args:
    unfrozen_start: where "dropin_unfrozen" starts: "baseline" (the baseline's best, grown as the dropin model)
      or "init" (a fresh model of the grown widths; pretrained weights where the model has them: the authors'
      GRNN and Wav2Vec 2.0).
    reinit: `params` regexes re-initialised in the dropin stage after growing (e.g. ("head/.*",)).
  Set `config.export_stage = "dropin"` to export the dropin model rather than the last stage.
  """
  if unfrozen_start not in ("baseline", "init"):
    raise ValueError(f"unfrozen_start must be 'baseline' or 'init', got {unfrozen_start!r}")
  stages = [stage("baseline", num_epochs=0 if baseline_checkpoint else baseline_epochs,
                  checkpoint=baseline_checkpoint),
            stage("dropin", kind="grow", widths=grown_widths, trainable="new", num_epochs=dropin_epochs,
                  start_from="baseline", start_point="best", init=init, reinit=reinit)]
  if unfrozen:
    stages.append(stage("dropin_unfrozen", kind="grow", widths=grown_widths, trainable="all",
                        num_epochs=dropin_epochs, start_from="baseline",
                        start_point="best" if unfrozen_start == "baseline" else "init", init=init))
  return stages


def plasticity_stages(grown_widths, *, epochs, learning_rates, prune="added", init="random", start_point="last"):
  """The authors' plasticity: train the baseline, grow and train everything, prune back to the baseline widths
  (exactly the added neurons, or the least important ones), retrain. Optimizer moments restart at every stage.

  Args:
    start_point: where the grown and pruned phases start: the previous phase's "best" dev checkpoint (the authors'
      ResNet and GRNN) or its "last" parameters (the authors' small Wav2Vec 2.0).
  """
  e1, e2, e3 = epochs
  lr1, lr2, lr3 = learning_rates
  return [stage("baseline", num_epochs=e1, learning_rate=lr1),
          stage("grown", kind="grow", widths=grown_widths, num_epochs=e2, learning_rate=lr2,
                start_point=start_point, init=init),
          stage("pruned", kind="prune", widths={}, num_epochs=e3, learning_rate=lr3,
                start_point=start_point, prune=prune)]
