"""The experiment grid on the demo corpus: ResNet-18 and GRNN x baseline / baseline trained 2x and 3x as long (the
equal-epoch control) / dropin frozen / dropin unfrozen / plasticity x seeds 42, 43, 44; `:sweep` adds the per-layer
dropin sweep (paper Fig. 5) to the same folder.

  python -m jaxplastic.grid --config=configs/grid_demo.py --workdir=runs/grid_demo
  python -m jaxplastic.grid --config=configs/grid_demo.py:sweep --workdir=runs/grid_demo
  python -m jaxplastic.grid --config=configs/grid_demo.py:sweep,parallel --workdir=runs/grid_demo_parallel
  python -m jaxplastic.grid --config=configs/grid_demo.py:wav2vec --workdir=runs/grid_demo   # tiny Wav2Vec 2.0

Layouts. The ResNet-18 dropin cells (dropin frozen / unfrozen) take configs/demo_dropin.py's recipe, i.e.
la_resnet_dropin.py's default: the authors' parallel branches beside stages 2 and 3, only the branches training.
The ResNet-18 sweep point k by default widens stage k in place (doubling its channels, every new slice training:
`RESNET_SWEEPS["widen"]`), and the sweep figure (`sweep_resnet18.png`, docs/results/README.md) is made that way;
`:sweep,parallel` puts the authors' layout at stage k instead, a parallel BasicBlock as wide as stage k beside it
with only the branch training (`RESNET_SWEEPS["parallel"]`: `branch_widths[k]` = `stage_widths[k]`,
`dropin.grown_slices="freeze"`); give it its own --workdir, since its cells have other configs. The GRNN sweep
doubles GRU layer k with old units isolated from the new ones.

Cells are the demo configs' stages (configs/demo.py, demo_dropin.py, demo_plasticity.py) with `epochs_per_stage`
epochs per trained stage. The same command runs on another corpus:
  --config.data.corpus=asvspoof2019_la --config.data.root=/data/LA   (see configs/grid_la.py for the paper sizes)

Budget, measured on 2 idle CPU cores, corpus version 4, 2026-12-01, on two machines of the same kind. Earlier
machine, the four methods without the control: ResNet-18 28 min, GRNN 35 min. Per seed, the wall time of a cell's
trained stages ("train s" in table.md): ResNet-18 baseline 96 s, dropin frozen 66, dropin unfrozen 117, plasticity
245; GRNN 120, 119, 156, 283; an epoch about (ResNet-18) 37 s baseline, 23 s frozen dropin, 46 s unfrozen, 61 s
grown; (GRNN) 11.7 / 11.6 / 15.7 / 15.6 s. A later machine (GRNN epochs ~20 s) ran the GRNN's six default methods
in 91 min (train s per seed: baseline 206, baseline_2x 192, baseline_3x 399, dropin frozen 209, unfrozen 247,
plasticity ~445) and ResNet-18's six in 96 min (213, 199, 362, 157, 275, 575 s; epochs 83 s baseline, 53 frozen
dropin, 109 unfrozen, 144 grown). The rest of a cell is compiling, its step-time measurement and dev/eval scoring.
Scale RESNET_EPOCHS / GRNN_EPOCHS from these. The sweep's and `:wav2vec`'s times are in docs/results/README.md.
"""

import ml_collections

# Epochs per trained stage, per model (the per-cell budget).
RESNET_EPOCHS = 2
GRNN_EPOCHS = 8
WAV2VEC_EPOCHS = 3


def model_spec(name, *, epochs, sweep_fields, sweep_add=None, sweep_reference="", sweep_dropin=None):
  """One model of the grid: the config of each method family, its budget and its per-layer sweep."""
  return ml_collections.ConfigDict(dict(
      # Config ('module:arg') per method family; '' = that family does not apply to this model.
      configs=dict(baseline=f"configs.demo:{name}", dropin=f"configs.demo_dropin:{name}",
                   plasticity=f"configs.demo_plasticity:{name}", lora=""),
      # Epochs of every trained stage of this model's cells (-1: the grid's epochs_per_stage).
      epochs_per_stage=epochs,
      sweep=dict(
          # Width fields whose entry k grows in sweep point k (several fields grow together).
          fields=tuple(sweep_fields),
          # Units added at k per field; -1 = the current value at k of `reference` (default: the field: doubling).
          add=tuple(sweep_add or (-1,) * len(sweep_fields)),
          reference=sweep_reference,
          # Layer indices to sweep; () = all.
          layers=(),
          # config.dropin overrides per sweep point; '{k}' / '{layer}' become the 0- / 1-based layer.
          dropin=dict(sweep_dropin or {}),
      ),
  ))


# The ResNet-18 sweep per layout: `model_spec` arguments. The sweep reuses the model's "dropin" config, whose
# dropin.grown_slices is the authors' "freeze"; each layout sets the value its plan needs.
RESNET_SWEEPS = {
    # Stage k's channels doubled in place; the new slices are the new neurons and train.
    "widen": dict(sweep_fields=("stage_widths",), sweep_dropin={"grown_slices": "train"}),
    # The authors' layout at stage k: a parallel BasicBlock of stage k's width (branch_widths[k] += stage_widths[k])
    # beside it; only the branch trains, the next layer's new input slices stay at init.
    "parallel": dict(sweep_fields=("branch_widths",), sweep_reference="stage_widths",
                     sweep_dropin={"grown_slices": "freeze"}),
}


def _parse(arg, modes, name):
  """'<mode>[,<resnet sweep layout>]' -> (mode, layout)."""
  mode, _, layout = arg.partition(",")
  layout = layout or "widen"
  if mode not in modes or layout not in RESNET_SWEEPS:
    raise ValueError(f"{name} takes one of {modes}, optionally followed by ',<layout>' with layout in "
                     f"{sorted(RESNET_SWEEPS)}, got {arg!r}")
  return mode, layout


def get_config(arg="main"):
  mode, layout = _parse(arg, ("main", "sweep", "wav2vec"), "configs/grid_demo.py")
  config = ml_collections.ConfigDict()
  config.models = ml_collections.ConfigDict()
  # ResNet-18: sweep point k grows stage k in the chosen layout (see RESNET_SWEEPS).
  config.models.resnet18 = model_spec("resnet18", epochs=RESNET_EPOCHS, **RESNET_SWEEPS[layout])
  # GRNN: GRU layer k doubles; its old units never read the new ones (as in configs/la_grnn_dropin.py).
  config.models.grnn = model_spec("grnn", epochs=GRNN_EPOCHS, sweep_fields=("hidden_sizes",),
                                  sweep_dropin={"old_reads_new": False})
  # Models of `models` to run in this invocation (e.g. ('resnet18',)); () = all.
  config.model_names = ()
  # Methods run for every model that has their config family (see jaxplastic/grid.py METHODS); "sweep" expands
  # into one method sweep_k<k> per swept layer.
  # baseline_2x / baseline_3x train the baseline as long as dropin / plasticity (the equal-epoch control).
  config.methods = ("baseline", "baseline_2x", "baseline_3x", "dropin_frozen", "dropin_unfrozen", "plasticity")
  if mode == "sweep":
    config.methods = ("baseline", "sweep")
  elif mode == "wav2vec":
    # The tiny from-scratch Wav2Vec 2.0 of configs/demo_wav2vec.py (4 encoder layers of 4 heads, FFN 128): dropin
    # frozen / unfrozen and the per-layer sweep (layer k doubled to 8 heads, FFN 256), the demo's Fig. 5.
    config.models = ml_collections.ConfigDict()
    config.models.wav2vec = model_spec("wav2vec", epochs=WAV2VEC_EPOCHS, sweep_fields=("num_heads", "ffn_dims"))
    config.models.wav2vec.configs = ml_collections.ConfigDict(dict(
        baseline="configs.demo_wav2vec", dropin="configs.demo_wav2vec", plasticity="", lora=""))
    config.methods = ("baseline", "baseline_2x", "dropin_frozen", "dropin_unfrozen", "sweep")
  config.seeds = (42, 43, 44)
  # Epochs per trained stage for models whose spec says -1; -1 here keeps each config's own epochs.
  config.epochs_per_stage = 3
  # Applied to every cell's config.data / config.train ('' or None keeps the cell's own value).
  config.data = ml_collections.ConfigDict(dict(corpus="demo", root="runs/demo_corpus"))
  config.train = ml_collections.ConfigDict(dict(progress=False, max_steps_per_epoch=-1, max_eval_batches=-1))
  # Paired bootstrap over seeds and eval utterances: replicates and RNG seed.
  config.bootstrap_samples = 1000
  config.bootstrap_seed = 0
  return config
