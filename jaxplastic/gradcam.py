"""GradCAM for the ResNet-18 (paper Fig. 4): which time-frequency regions of the log-Mel input drive a class.

  python -m jaxplastic.gradcam --runs runs/base runs/dropin runs/plast --utterances LA_E_2834763 LA_E_8688571 \
      --out gradcam.png

For each run (a run workdir or its exported model/; any widths: the model is rebuilt from model.json) and each
utterance, the map is ReLU(sum_k alpha_k A_k) with A the last feature map (`ResNet18.from_features`) and alpha_k
the spatial mean of d logit_c / d A_k, computed with jax.grad; it is upsampled (bilinear) to the log-Mel image's
[n_mels, num_frames] and drawn over it. Utterances are looked up in a corpus split (by default the one the first
run trained on, eval split) and cropped / repeat-padded exactly as dev/eval scoring does.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxplastic import models
from jaxplastic.crosseval import load_model

CLASSES = {"spoof": 0, "bonafide": 1}


class GradCAMError(ValueError):
  """A model GradCAM cannot explain, or an utterance that cannot be found."""


def gradcam_from_image(model, variables, image: jax.Array, target: int | Sequence[int] | None = 1
                       ) -> dict[str, jax.Array]:
  """GradCAM of a ResNet18 on spectrogram images.

  Args:
    model: a models.ResNet18 (any widths).
    variables: its variables ({'params', 'batch_stats'}).
    image: [B, H, W, 1] log-Mel images (the model's `frontend` output).
    target: the class whose logit is explained: an int for all rows, one int per row, or None for each row's
      predicted class.

  Returns:
    {'cam': [B, H, W] >= 0 (the map at the image's shape), 'cam_features': [B, h, w] (at the feature map's
     resolution), 'logits': [B, classes], 'target': [B] int32, 'alpha': [B, K]}.

  Raises:
    GradCAMError: the model is not a ResNet18, or its logits are not a linear head on the global average of the
      last feature map (checked numerically on this input).
  """
  if not isinstance(model, models.ResNet18):
    raise GradCAMError(f"GradCAM explains the ResNet18's log-Mel input; got a {type(model).__name__}")
  if image.ndim != 4:
    raise GradCAMError(f"image must be [batch, height, width, 1], got {image.shape}")
  # -1 asks for the predicted class inside the jitted function.
  tgt = jnp.broadcast_to(jnp.asarray(-1 if target is None else target, jnp.int32), (image.shape[0],))
  out = _gradcam(model, variables, image, tgt)
  # The gradient was taken through the re-applied head; that must be the model's own computation.
  if not np.allclose(np.asarray(out.pop("head_logits")), np.asarray(out["logits"]), rtol=1e-4, atol=1e-4):
    raise GradCAMError("the model's logits are not its head applied to the mean of the last feature map")
  return out


@functools.partial(jax.jit, static_argnums=(0,))
def _frontend(model, audio):
  return model.apply({}, audio, method=type(model).frontend)  # the log-Mel front-end has no parameters


@functools.partial(jax.jit, static_argnums=(0,))
def _gradcam(model, variables, image, target):
  logits, _, fmap = model.apply(variables, image, train=False, method=type(model).from_features)
  fmap = fmap.astype(jnp.float32)
  head = nn.Dense(model.num_classes)
  head_params = {"params": variables["params"]["head"]}

  def head_logits(a):
    return head.apply(head_params, jnp.mean(a, axis=(1, 2)))

  target = jnp.where(target < 0, jnp.argmax(logits, axis=-1), target).astype(jnp.int32)
  onehot = jax.nn.one_hot(target, logits.shape[-1])
  # Row b's logit depends only on row b's map, so the gradient of the sum is each row's own gradient.
  grads = jax.grad(lambda a: jnp.sum(head_logits(a) * onehot))(fmap)
  alpha = jnp.mean(grads, axis=(1, 2))
  cam_small = jax.nn.relu(jnp.einsum("bhwk,bk->bhw", fmap, alpha))
  b, h, w = image.shape[:3]
  cam = jnp.maximum(jax.image.resize(cam_small, (b, h, w), method="bilinear"), 0.0)
  return {"cam": cam, "cam_features": cam_small, "logits": logits, "target": target, "alpha": alpha,
          "head_logits": head_logits(fmap)}


def gradcam(model, variables, audio: jax.Array, target: int | Sequence[int] | None = 1) -> dict[str, jax.Array]:
  """GradCAM on raw audio [B, num_samples]: `gradcam_from_image` of the model's log-Mel image, plus 'image'
  ([B, n_mels, num_frames])."""
  if not isinstance(model, models.ResNet18):
    raise GradCAMError(f"GradCAM explains the ResNet18's log-Mel input; got a {type(model).__name__}")
  image = _frontend(model, audio)
  out = gradcam_from_image(model, variables, image, target)
  out["image"] = image[..., 0]
  return out


# ----------------------------------------------------------------------------------------------------------------
# Runs and utterances.


def run_data_config(run: str):
  """The data section of a run's config.json (None for a bare export)."""
  path = os.path.join(run, "config.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f).get("data")


def find_utterances(data_config, split: str, utt_ids: Sequence[str], num_per_class: int = 1):
  """Utterances of a corpus split by id, or (no ids) the first `num_per_class` bona fide and spoof ones."""
  import ml_collections  # pylint: disable=g-import-not-at-top

  from jaxplastic import data as data_lib  # pylint: disable=g-import-not-at-top
  items = data_lib.load_split(ml_collections.ConfigDict(dict(data_config)), split).items
  if not utt_ids:
    bona = [u for u in items if u.label == 1][:num_per_class]
    spoof = [u for u in items if u.label == 0][:num_per_class]
    return bona + spoof
  by_id = {u.utt_id: u for u in items}
  missing = [u for u in utt_ids if u not in by_id]
  if missing:
    raise GradCAMError(f"utterances {missing} are not in the {split} split of {data_config['corpus']} at "
                       f"{data_config['root']}")
  return [by_id[u] for u in utt_ids]


def load_input(path: str, meta: dict) -> np.ndarray:
  """Audio as dev/eval scoring sees it: decoded at the model's rate, first crop / repeat-pad to its length."""
  from jaxplastic.data import audio  # pylint: disable=g-import-not-at-top
  return audio.fix_length(audio.load_audio(path, int(meta["sample_rate"])), int(meta["num_samples"]))


def figure(rows: Sequence[dict], runs: Sequence[str], *, title: str = ""):
  """The PNG's figure: one row per utterance; its log-Mel image, then each run's map over it."""
  from jaxplastic import plots  # pylint: disable=g-import-not-at-top
  n_rows, n_cols = len(rows), 1 + len(runs)
  fig = plots._new_figure((3.2 * n_cols, 2.2 * n_rows + 0.4))  # pylint: disable=protected-access
  axes = fig.subplots(n_rows, n_cols, squeeze=False)
  for i, row in enumerate(rows):
    ax = axes[i, 0]
    ax.imshow(row["image"][0], origin="lower", aspect="auto", cmap="magma")
    ax.set_title(f"{row['utt']} ({row['key']})", fontsize=8)
    ax.set_ylabel("mel bin")
    for j, res in enumerate(row["runs"]):
      ax = axes[i, j + 1]
      ax.imshow(res["image"], origin="lower", aspect="auto", cmap="gray")
      peak = float(np.max(res["cam"]))
      ax.imshow(res["cam"] / peak if peak > 0 else res["cam"], origin="lower", aspect="auto", cmap="jet",
                alpha=0.5, vmin=0.0, vmax=1.0)
      ax.set_title(f"{runs[j]}\nscore {res['score']:+.2f}, class {res['class']}", fontsize=8)
    for ax in axes[i]:
      ax.set_xlabel("frame", fontsize=7)
      ax.tick_params(labelsize=6)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return fig


def main(argv: Sequence[str]) -> int:
  p = argparse.ArgumentParser(prog="python -m jaxplastic.gradcam", description=__doc__.split("\n\n")[0])
  p.add_argument("--runs", nargs="+", required=True, help="run workdirs or exported model folders (ResNet-18)")
  p.add_argument("--labels", nargs="*", default=None, help="column titles, one per run (default: folder names)")
  p.add_argument("--utterances", nargs="*", default=[], help="utterance ids of the split (default: the first "
                 "--num_per_class bona fide and spoof ones)")
  p.add_argument("--num_per_class", type=int, default=1)
  p.add_argument("--split", default="eval", choices=("train", "dev", "eval"))
  p.add_argument("--corpus", default="", help="corpus name (default: the first run's config.json)")
  p.add_argument("--root", default="", help="corpus root (default: the first run's config.json)")
  p.add_argument("--audio", nargs="*", default=[], help="audio files to explain instead of corpus utterances")
  p.add_argument("--target", default="bonafide", choices=("bonafide", "spoof", "predicted"),
                 help="class whose logit is explained")
  p.add_argument("--out", required=True, help="PNG to write (the maps go to the same name with .npz)")
  args = p.parse_args(argv)
  if args.labels and len(args.labels) != len(args.runs):
    p.error(f"{len(args.labels)} labels for {len(args.runs)} runs")
  labels = args.labels or [os.path.basename(os.path.normpath(r)) for r in args.runs]
  loaded = [load_model(r) for r in args.runs]
  if args.audio:
    inputs = [(os.path.basename(a), a, "file") for a in args.audio]
  else:
    data_config = dict(run_data_config(args.runs[0]) or {})
    for key in ("corpus", "root"):
      if getattr(args, key):
        data_config[key] = getattr(args, key)
    if not data_config.get("corpus") or not data_config.get("root"):
      p.error(f"{args.runs[0]} has no config.json: pass --corpus and --root (or --audio)")
    inputs = [(u.utt_id, u.path, "bonafide" if u.label == 1 else u.attack)
              for u in find_utterances(data_config, args.split, args.utterances, args.num_per_class)]
  target = None if args.target == "predicted" else CLASSES[args.target]
  rows, arrays = [], {}
  for utt, path, key in inputs:
    row = {"utt": utt, "key": key, "runs": []}
    for (meta, model, variables), label in zip(loaded, labels):
      audio = jnp.asarray(load_input(path, meta))[None]
      out = jax.device_get(gradcam(model, variables, audio, target))
      logits = np.asarray(out["logits"][0], np.float64)
      row.setdefault("image", out["image"])
      row["runs"].append({"image": out["image"][0], "cam": out["cam"][0], "score": logits[1] - logits[0],
                          "class": {v: k for k, v in CLASSES.items()}[int(out["target"][0])]})
      arrays[f"{label}/{utt}"] = out["cam"][0]
    rows.append(row)
  from jaxplastic import plots  # pylint: disable=g-import-not-at-top
  plots.save(figure(rows, labels, title=f"GradCAM of the {args.target} logit"), args.out)
  np.savez_compressed(os.path.splitext(args.out)[0] + ".npz", **arrays)
  print(args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
