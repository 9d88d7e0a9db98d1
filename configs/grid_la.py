"""The paper's grid at the authors' sizes: ResNet-18, GRNN and the small from-scratch Wav2Vec 2.0 x baseline /
baseline trained 2x and 3x as long (the equal-epoch control) / dropin frozen / dropin unfrozen / plasticity / LoRA
(Wav2Vec only) x seeds 42, 43, 44, on ASVspoof 2019 LA (or PA, Fake-or-Real). Each cell uses its config's own
epochs (the authors'); `:sweep` runs the per-layer dropin sweep (paper Fig. 5) for all three models into the same
folder.

  python -m jaxplastic.grid --config=configs/grid_la.py --config.data.root=/data/LA --workdir=runs/grid_la
  python -m jaxplastic.grid --config=configs/grid_la.py:sweep --config.data.root=/data/LA --workdir=runs/grid_la
  python -m jaxplastic.grid --config=configs/grid_la.py:pa --config.data.root=/data/PA --workdir=runs/grid_pa
  python -m jaxplastic.grid --config=configs/grid_la.py:for --config.data.root=/data/for-norm --workdir=runs/grid_for
  python -m jaxplastic.grid --config=configs/grid_la.py:la,sweep,parallel --config.data.root=/data/LA \
      --workdir=runs/grid_la_parallel

Layouts: each method family's config in its default, the authors' layout (ResNet-18 dropin: parallel branches
beside stages 2 and 3, only they train; GRNN: layer 2 grown, old units isolated; Wav2Vec small: the projected
plasticity layout, LoRA on q/v). The ResNet-18 sweep widens stage k by default; `,parallel` after `sweep` puts the
authors' branch of stage k's width beside stage k instead (grid_demo.RESNET_SWEEPS), in its own --workdir. The
Wav2Vec sweep widens layer k (configs/la_wav2vec_small_dropin.py).

This is GPU-sized work (the small Wav2Vec trains 45 epochs per baseline); `--config.epochs_per_stage=N` gives every
trained stage N epochs instead, and `--config.models.wav2vec_small.configs.baseline=''` style overrides drop a
model's method family; `--config.model_names=('grnn',)` runs one model's cells.
"""

import ml_collections

from configs import grid_demo

CORPORA = {"la": "asvspoof2019_la", "pa": "asvspoof2019_pa", "for": "fakeorreal"}


def get_config(arg="la"):
  corpus, _, variant = arg.partition(",")
  if corpus == "sweep":
    corpus, variant = "la", "sweep" + ("," + variant if variant else "")
  mode, _, layout = variant.partition(",")
  layout = layout or "widen"
  if corpus not in CORPORA or mode not in ("", "sweep") or layout not in grid_demo.RESNET_SWEEPS:
    raise ValueError("configs/grid_la.py takes la, pa, for or sweep, optionally followed by ',sweep' and "
                     f"',<ResNet sweep layout>' (one of {sorted(grid_demo.RESNET_SWEEPS)}), got {arg!r}")
  config = grid_demo.get_config("sweep" if mode == "sweep" else "main")
  families = {
      "resnet18": dict(baseline="configs.la_resnet", dropin="configs.la_resnet_dropin",
                       plasticity="configs.la_resnet_plasticity", lora=""),
      "grnn": dict(baseline="configs.la_grnn", dropin="configs.la_grnn_dropin",
                   plasticity="configs.la_grnn_plasticity", lora=""),
      "wav2vec_small": dict(baseline="configs.la_wav2vec_small", dropin="configs.la_wav2vec_small_dropin",
                            plasticity="configs.la_wav2vec_small_plasticity", lora="configs.la_wav2vec_small_lora"),
  }
  config.models = ml_collections.ConfigDict()
  config.models.resnet18 = grid_demo.model_spec("resnet18", epochs=-1, **grid_demo.RESNET_SWEEPS[layout])
  config.models.grnn = grid_demo.model_spec("grnn", epochs=-1, sweep_fields=("hidden_sizes",),
                                            sweep_dropin={"old_reads_new": False})
  # Layer k gets 8 more heads and 1536 more FFN units: 12 heads / FFN 2048, as la_wav2vec_small_dropin.py.
  config.models.wav2vec_small = grid_demo.model_spec("wav2vec_small", epochs=-1,
                                                     sweep_fields=("num_heads", "ffn_dims"), sweep_add=(8, 1536))
  for name, spec in config.models.items():
    spec.configs = ml_collections.ConfigDict(families[name])
  if mode != "sweep":
    config.methods = ("baseline", "baseline_2x", "baseline_3x", "dropin_frozen", "dropin_unfrozen", "plasticity",
                      "lora")
  # -1: every stage keeps its config's own epochs (the authors').
  config.epochs_per_stage = -1
  config.data = ml_collections.ConfigDict(dict(corpus=CORPORA[corpus], root=""))
  config.train = ml_collections.ConfigDict(dict(progress=False))
  return config
