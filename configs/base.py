"""Shared defaults for every experiment; model configs import this and override a few fields.

Not runnable by itself: it has no model section. See `la_resnet.py`, `la_grnn.py` and friends.
"""

import ml_collections


def stage(name, *, num_epochs, learning_rate=None, widths=None, kind="train", trainable="all", start_from="",
          start_point="best", init="random", prune="added", checkpoint=""):
  """One entry of `config.stages`.

  Args:
    name: unique name; checkpoints go to `workdir/checkpoints/<index>_<name>/`.
    num_epochs: epochs to train in this stage (0: surgery or loading only).
    learning_rate: overrides `optim.learning_rate` for this stage (None keeps it).
    widths: width fields of `config.model` for this stage; missing fields keep the base model's values.
    kind: "train" (same widths as the stage it starts from), "grow" or "prune" (widths larger / smaller).
    trainable: "all", or "new" (dropin: only the grown slices and `dropin.train_patterns` train).
    start_from: the stage whose parameters this one starts from ('' = the previous stage, none for the first).
    start_point: "best" (best dev EER of that stage) or "last".
    init: new slices on grow: "random" (the authors') or "function_preserving".
    prune: on prune: "added" (remove exactly the grown units, the authors') or "importance" (keep the units with
      the largest weight norms, whichever they are).
    checkpoint: for a first stage: a finished run's workdir or exported model to load instead of training.
  """
  return ml_collections.ConfigDict(dict(
      name=name, num_epochs=num_epochs, learning_rate=learning_rate, widths=dict(widths or {}), kind=kind,
      trainable=trainable, start_from=start_from, start_point=start_point, init=init, prune=prune,
      checkpoint=checkpoint))


def get_config():
  config = ml_collections.ConfigDict()
  # Seed for parameters, data order, crops and dropout.
  config.seed = 42
  # "baseline", "dropin" or "plasticity"; documents which recipe `stages` holds.
  config.method = "baseline"

  config.data = ml_collections.ConfigDict()
  # "asvspoof2019_la", "asvspoof2019_pa", "fakeorreal" or "demo".
  config.data.corpus = "asvspoof2019_la"
  # Corpus root on disk (for "demo": where the generated corpus goes).
  config.data.root = ""
  # Samples per utterance after crop / repeat-pad (64,600 ~ 4.04 s is the field's default; the authors used 64,000).
  config.data.num_samples = 64600
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
  # "ce" (cross-entropy) or "hinge" (multiclass hinge, margin 1: the GRNN's "SVM layer").
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
  # Show tqdm progress bars.
  config.train.progress = True

  config.dropin = ml_collections.ConfigDict()
  # Parameters (regex over '/'-joined names, e.g. 'head/.*') that train whole during dropin.
  config.dropin.train_patterns = ()
  # Grown recurrent kernels whose new->old block stays zero: old units never read new ones (authors' GRU).
  config.dropin.isolate_patterns = ()

  # The stage whose best-by-dev model is exported to workdir/model for scoring ('' = the last stage).
  config.export_stage = ""
  # The stage list; each model config fills it from its method (see `stage`).
  config.stages = [stage("baseline", num_epochs=5)]
  return config


def dropin_stages(grown_widths, *, baseline_epochs, dropin_epochs, baseline_checkpoint="", unfrozen=True,
                  init="random"):
  """The authors' dropin comparison: train (or load) a baseline, then from its best checkpoint grow the chosen
  layers and train only the new neurons; optionally also train the same grown model with everything trainable.
  Set `config.export_stage = "dropin"` to export the dropin model rather than the last stage."""
  stages = [stage("baseline", num_epochs=0 if baseline_checkpoint else baseline_epochs,
                  checkpoint=baseline_checkpoint),
            stage("dropin", kind="grow", widths=grown_widths, trainable="new", num_epochs=dropin_epochs,
                  start_from="baseline", start_point="best", init=init)]
  if unfrozen:
    stages.append(stage("dropin_unfrozen", kind="grow", widths=grown_widths, trainable="all",
                        num_epochs=dropin_epochs, start_from="baseline", start_point="best", init=init))
  return stages


def plasticity_stages(grown_widths, *, epochs, learning_rates, prune="added", init="random"):
  """The authors' plasticity: train the baseline, grow and train everything, prune back to the baseline widths
  (exactly the added neurons, or the least important ones), retrain. Each stage continues from the previous one's
  last parameters; optimizer moments restart at every stage."""
  e1, e2, e3 = epochs
  lr1, lr2, lr3 = learning_rates
  return [stage("baseline", num_epochs=e1, learning_rate=lr1),
          stage("grown", kind="grow", widths=grown_widths, num_epochs=e2, learning_rate=lr2, start_point="last",
                init=init),
          stage("pruned", kind="prune", widths={}, num_epochs=e3, learning_rate=lr3, start_point="last",
                prune=prune)]
