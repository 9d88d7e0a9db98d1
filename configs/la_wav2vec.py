"""Dropin on pretrained Wav2Vec 2.0 base, ASVspoof 2019 LA, the authors' settings.

  python run.py --config=configs/la_wav2vec.py --config.data.root=/data/LA \
      --config.model.pretrained=/models/wav2vec2-base --workdir=runs/la_wav2vec

`model.pretrained` is required: a local copy of facebook/wav2vec2-base (config.json +
model.safetensors; see docs/wav2vec2.md for getting it onto an offline machine). Its architecture is
checked against `config.model`.

Recipe (the authors'): fine-tune the pretrained model with a new head (mean-pool -> 256 -> ReLU ->
dropout 0.1 -> 2) for 30 epochs (baseline), AdamW lr 1e-4, weight decay 0.01, grad clip 1.0,
reduce-on-plateau x0.5 after 3 epochs without dev-loss improvement, batch 16, 4 s (64,000 samples)
of raw waveform, SpecAugment-style time masking at transformers' defaults (`mask_time_prob` 0.05,
spans of 10 frames, at least 2). Then dropin at encoder layer index 5 (0-based, HF's
`encoder.layers[5]`, the sixth layer) for another 30 epochs, with a fresh head (`reinit`).

Layout (the config argument, `configs/la_wav2vec.py:<layout>`):
  parallel  (default, the authors') a new encoder layer beside layer 5 reads the same hidden states;
            the two outputs are concatenated (1536) and projected back to 768 by a new Linear
            (`model.parallel_layers`, index 5 set to 1): 8,268,288 new parameters (layer 7,087,872 +
            merge 1,180,416). Only they and the fresh head (197,378) train: 8,465,666 of 102,837,378.
  widen     our generic widening of layer 5 in place: attention heads 12 -> 24 (head width stays 64)
            and FFN 3072 -> 6144 (`model.num_heads`, `model.ffn_dims`), no projection; the 7,083,264
            new slices and the head train: 7,280,642 of 101,652,354.
e.g. python run.py --config=configs/la_wav2vec.py:widen ... (as above)

The unfrozen comparison (the same grown model, everything but the feature encoder trainable:
98,636,930 parameters in the parallel layout) starts, as the authors', from the pretrained checkpoint
rather than the fine-tuned baseline (`unfrozen_start="init"`: the parallel layer, its merge and the
head fresh), and runs last.

The convolutional feature encoder is frozen throughout (`freeze_feature_encoder`), as usual when
fine-tuning wav2vec 2.0 (transformers' `freeze_feature_encoder()`): it is kept out of the optimizer
(no gradient, no weight decay, no moments) and counts as frozen in every stage.

Start from an already fine-tuned baseline instead of training one:
  --config.stages[0].checkpoint=runs/la_wav2vec_baseline
(a finished run's workdir or its model/ folder).
"""

import ml_collections

from configs import base

# Encoder layer that receives the new neurons (0-based, as encoder.layers[5]).
DROPIN_LAYER = 5


def wav2vec2_base_model():
  """facebook/wav2vec2-base's architecture, every per-layer width spelled out."""
  n = 12
  return ml_collections.ConfigDict(
      dict(
          name="wav2vec2",
          # Checkpoint to start from: None trains from scratch, "" means this config requires one
          # (set it).
          pretrained="",
          num_classes=2,
          hidden_size=768,
          num_layers=n,
          # Attention heads, head width and FFN units per encoder layer (dropin/plasticity change
          # one entry).
          num_heads=(12,) * n,
          # Explicit, so that adding heads adds 64-wide heads instead of shrinking all heads of the
          # layer.
          head_dim=(64,) * n,
          ffn_dims=(3072,) * n,
          # Convolutional feature encoder: 7 layers, 512 channels, 320x downsampling (20 ms frames).
          conv_dims=(512,) * 7,
          conv_kernels=(10, 3, 3, 3, 3, 2, 2),
          conv_strides=(5, 2, 2, 2, 2, 2, 2),
          conv_bias=False,
          # "group": GroupNorm on the first conv only (base); "layer": LayerNorm after each conv
          # (large/XLS-R).
          feat_extract_norm="group",
          # "base": post-LN transformer; "stable": pre-LN with a final encoder LayerNorm
          # (large/XLS-R).
          layout="base",
          # Positional convolution: kernel and groups.
          num_conv_pos_embeddings=128,
          num_conv_pos_embedding_groups=16,
          layer_norm_eps=1e-5,
          hidden_act="gelu",
          feat_extract_activation="gelu",
          # Dropout: transformers' Wav2Vec2Config defaults (the checkpoint's config.json values are
          # not applied).
          hidden_dropout=0.1,
          attention_dropout=0.1,
          activation_dropout=0.1,
          feat_proj_dropout=0.0,
          # Probability of skipping a whole encoder layer per training batch.
          layerdrop=0.1,
          # The authors' head: mean-pool -> Dense(256) -> ReLU -> Dropout(0.1) -> Dense(2).
          head_hidden=256,
          head_dropout=0.1,
          # Per-utterance zero-mean unit-variance input (the HF feature extractor's do_normalize);
          # the authors feed raw.
          do_normalize=False,
          # stop_gradient after the conv feature encoder (fine-tuning keeps it fixed).
          freeze_feature_encoder=True,
          # Recompute each encoder layer in the backward pass (less memory, ~30 % more compute).
          remat=False,
          # Compute dtype ("float32" or "bfloat16"); parameters stay float32.
          dtype="float32",
          # LoRA on the encoder projections in lora_targets (q, k, v, out, intermediate, output);
          # rank 0 = none.
          lora_rank=0,
          lora_alpha=16.0,
          lora_targets=("q", "v"),
          # Dropout on the LoRA branch's input (PEFT's lora_dropout).
          lora_dropout=0.0,
          # Per-layer encoder width (empty: hidden_size everywhere); a layer of another width sits
          # between Dense projectors hidden -> width and width -> hidden (the authors' small-model
          # plasticity).
          layer_hidden=(),
          # Per-layer 0/1 (empty: none): 1 adds a parallel encoder layer beside layer i, its output
          # concatenated after layer i's and projected back by a new Dense (the authors' dropin).
          parallel_layers=(),
          # SpecAugment time masking in training: probability, span length (frames), fewest spans
          # (transformers' Wav2Vec2Config defaults, active in the authors' fine-tuning; 0.0 = off).
          mask_time_prob=0.05,
          mask_time_length=10,
          mask_time_min_masks=2,
      ))


def widened(model, layer, *, num_heads, ffn_dim):
  """Width overrides for a stage: layer `layer` gets `num_heads` heads and `ffn_dim` FFN units."""
  heads, ffn = list(model.num_heads), list(model.ffn_dims)
  heads[layer], ffn[layer] = num_heads, ffn_dim
  return {"num_heads": tuple(heads), "ffn_dims": tuple(ffn)}


def parallel(model, layer):
  """Width overrides for a stage: a parallel encoder layer beside layer `layer` (the authors' dropin)."""
  return {"parallel_layers": tuple(int(i == layer) for i in range(model.num_layers))}


def projected(model, layer, *, hidden, num_heads, ffn_dim):
  """Width overrides for a stage: layer `layer` runs `hidden` wide with `num_heads` heads and `ffn_dim` FFN units
  between projectors from and back to `model.hidden_size` (the authors' small-model plasticity)."""
  widths = list(model.layer_hidden or (model.hidden_size,) * model.num_layers)
  widths[layer] = hidden
  return dict(widened(model, layer, num_heads=num_heads, ffn_dim=ffn_dim), layer_hidden=tuple(widths))


# layout -> the grown stage's width overrides for DROPIN_LAYER.
LAYOUTS = {
    "parallel": lambda model: parallel(model, DROPIN_LAYER),
    "widen": lambda model: widened(model, DROPIN_LAYER, num_heads=24, ffn_dim=6144),
}


def get_config(arg="parallel"):
  layout = arg or "parallel"
  if layout not in LAYOUTS:
    raise ValueError(f"configs/la_wav2vec.py:<layout> takes one of {sorted(LAYOUTS)}, got {arg!r}")
  config = base.get_config()
  config.model = wav2vec2_base_model()
  config.data.corpus = "asvspoof2019_la"
  config.data.num_samples = 64000
  config.data.batch_size = 16
  config.data.eval_batch_size = 32
  config.optim.name = "adamw"
  config.optim.learning_rate = 1e-4
  config.optim.weight_decay = 0.01
  config.optim.grad_clip_norm = 1.0
  config.optim.loss = "ce"
  config.optim.plateau_factor = 0.5
  config.optim.plateau_patience = 3
  config.train.log_every_steps = 100
  # The head trains with the new neurons, as the authors'.
  config.dropin.train_patterns = ("head/.*",)
  grown = LAYOUTS[layout](config.model)
  # Dropin gets a fresh head (the authors' dropin model has its own); the unfrozen comparison starts from the
  # pretrained checkpoint, not the fine-tuned baseline.
  config.stages = base.dropin_stages(grown, baseline_epochs=30, dropin_epochs=30, unfrozen_start="init",
                                     reinit=("head/.*",))
  # Score with the dropin model; dropin_unfrozen is the comparison.
  config.export_stage = "dropin"
  return config
