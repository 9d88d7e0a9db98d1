"""LoRA on the small Wav2Vec 2.0, ASVspoof 2019 LA (the authors' comparison): rank 8, alpha 16 on
the q and v projections of every encoder layer, dropout 0.1, 45 epochs, on top of a trained small
baseline.

  python run.py --config=configs/la_wav2vec_small_lora.py --config.data.root=/data/LA \
      --config.stages[0].checkpoint=runs/la_wav2vec_small --workdir=runs/la_wav2vec_small_lora

Without `stages[0].checkpoint` the baseline is trained first (45 epochs, as la_wav2vec_small.py).
The LoRA stage is an ordinary dropin stage: growing `lora_rank` 0 -> 8 adds exactly the
lora_a/lora_b leaves (B = 0: the function is unchanged at that point), and `trainable="new"` trains
only them: 2 x 12 layers x 8 x (256 + 4 x 64) = 98,304 parameters. The head stays frozen, PEFT's
default and the authors' (`dropin.train_patterns=("head/.*",)` trains it too). No gradient clipping.
Layout: LoRA leaves added beside the frozen q/v kernels (`model.lora_rank` 0 -> 8).
"""

from configs import base
from configs import la_wav2vec_small


def get_config():
  config = la_wav2vec_small.get_config()
  # The LoRA settings live in the stage's widths, so the baseline's fields stay exactly those of
  # la_wav2vec_small.py and its exported model loads as stages[0].checkpoint.
  lora = {"lora_rank": 8, "lora_alpha": 16.0, "lora_targets": ("q", "v"), "lora_dropout": 0.1}
  # Only the LoRA leaves train; the head stays frozen (PEFT's default, the authors').
  config.dropin.train_patterns = ()
  config.stages = [
      base.stage("baseline", num_epochs=45),
      base.stage("lora",
                 kind="grow",
                 widths=lora,
                 trainable="new",
                 num_epochs=45,
                 start_from="baseline",
                 start_point="best")
  ]
  return config
