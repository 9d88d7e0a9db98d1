"""GradCAM: on a ResNet18 whose weights are set by hand so that one planted region of the input drives the bona
fide logit and another the spoof logit, each class's map has the input's shape and sits on its own region; the
CLI draws maps for exported models of any widths."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplastic import checkpoints
from jaxplastic import gradcam
from jaxplastic import models
from jaxplastic import surgery

H = W = 128
BONA_REGION = (slice(16, 48), slice(16, 48))      # planted +3: read by feature channel 0 -> bona fide logit
SPOOF_REGION = (slice(72, 104), slice(64, 112))   # planted -3: read by feature channel 1 -> spoof logit


def _hand_built():
  """A two-stage ResNet18 (stem 2, stages 2 and 4 channels) computing, up to its pooling and strides,
  A_0 = relu(x) and A_1 = relu(-x); head: bona fide logit = mean A_0, spoof logit = mean A_1.

  Every weight is 0 or 1 and BatchNorm is the identity (mean 0, var 1, scale 1, bias 0), so the maps are exact
  sums of copies of the input: the verdicts below do not depend on float kernels."""
  model = models.ResNet18(stage_widths=(2, 4), blocks_per_stage=(1, 1), branch_widths=(0, 0), stem_width=2)
  image = jnp.zeros((1, H, W, 1))
  shapes = jax.eval_shape(lambda: surgery._to_dict(model.init(jax.random.PRNGKey(0), image, train=False,
                                                               method=models.ResNet18.from_features)))
  flat = {}
  for key, leaf in surgery.flatten(shapes).items():
    one = key.endswith("/scale") or key.endswith("/var")
    flat[key] = (np.ones if one else np.zeros)(leaf.shape, np.float32)
  stem = np.zeros((7, 7, 1, 2), np.float32)
  stem[3, 3, 0, 0], stem[3, 3, 0, 1] = 1.0, -1.0          # centre tap: channel 0 = x, channel 1 = -x
  shortcut = np.zeros((1, 1, 2, 4), np.float32)
  shortcut[0, 0, 0, 0] = shortcut[0, 0, 1, 1] = 1.0       # stage 2's strided projection copies both channels
  head = np.zeros((4, 2), np.float32)
  head[0, 1] = head[1, 0] = 1.0
  flat["params/stem/conv/kernel"] = stem
  flat["params/stage2/block1/shortcut_conv/kernel"] = shortcut
  flat["params/head/kernel"] = head
  return model, surgery.unflatten(flat)


def _image():
  x = np.random.default_rng(0).uniform(-0.02, 0.02, (1, H, W, 1)).astype(np.float32)
  x[(0,) + BONA_REGION + (0,)] = 3.0
  x[(0,) + SPOOF_REGION + (0,)] = -3.0
  return jnp.asarray(x)


def _inside_and_outside(cam, region, margin=0):
  """Values inside `region`, and outside it grown by `margin` pixels on every side."""
  mask = np.zeros(cam.shape, bool)
  mask[region] = True
  grown = np.zeros(cam.shape, bool)
  grown[slice(max(region[0].start - margin, 0), region[0].stop + margin),
        slice(max(region[1].start - margin, 0), region[1].stop + margin)] = True
  return cam[mask], cam[~grown]


@pytest.mark.parametrize("target, region, other", [(1, BONA_REGION, SPOOF_REGION), (0, SPOOF_REGION, BONA_REGION)])
def test_map_has_input_shape_and_sits_on_the_planted_region(target, region, other):
  model, variables = _hand_built()
  out = gradcam.gradcam_from_image(model, variables, _image(), target)
  cam = np.asarray(out["cam"][0])
  assert cam.shape == (H, W)
  assert out["cam_features"].shape == (1, H // 8, W // 8)
  # One feature-map cell (8 pixels) of blur around the region is the map's resolution, not an error.
  inside, outside = _inside_and_outside(cam, region, margin=8)
  assert inside.mean() > 20 * outside.mean(), (inside.mean(), outside.mean())
  assert inside.sum() > 0.5 * cam.sum()
  assert np.unravel_index(np.argmax(cam), cam.shape) in {(i, j) for i in range(H) for j in range(W)
                                                        if region[0].start <= i < region[0].stop
                                                        and region[1].start <= j < region[1].stop}
  # The other class's region is not highlighted (its channel has alpha 0 for this class).
  other_inside, _ = _inside_and_outside(cam, other)
  assert other_inside.max() < 0.05 * inside.max()
  # alpha is the spatial mean of the gradient: head weight / (h * w) for the class's channel, 0 elsewhere.
  expected = np.zeros(4)
  expected[1 - target] = 1.0 / ((H // 8) * (W // 8))
  np.testing.assert_allclose(np.asarray(out["alpha"][0]), expected, rtol=1e-6)


def test_predicted_target_and_per_row_targets():
  model, variables = _hand_built()
  image = jnp.concatenate([_image(), -_image()])   # row 1: regions swap classes
  out = gradcam.gradcam_from_image(model, variables, image, None)
  np.testing.assert_array_equal(np.asarray(out["target"]), np.argmax(np.asarray(out["logits"]), -1))
  rows = gradcam.gradcam_from_image(model, variables, image, [1, 0])
  # Row 1 is the negated image, so its spoof map is row 0's bona fide map.
  np.testing.assert_allclose(np.asarray(rows["cam"][1]), np.asarray(rows["cam"][0]), rtol=1e-6, atol=1e-7)


def test_refuses_a_model_without_a_spectrogram_trunk():
  grnn = models.GRNN(hidden_sizes=(4, 4))
  with pytest.raises(gradcam.GradCAMError, match="ResNet18"):
    gradcam.gradcam_from_image(grnn, {}, jnp.zeros((1, 8, 8, 1)))


def test_cli_draws_grown_and_plain_exports(tmp_path):
  """Exports of two widths (as a baseline and its grown dropin would be), scored on audio files: one PNG, and
  maps of each model's own log-Mel shape in the .npz."""
  rng = np.random.default_rng(1)
  import soundfile as sf
  audio_paths = []
  for i in range(2):
    path = str(tmp_path / f"clip{i}.wav")
    sf.write(path, (0.1 * rng.standard_normal(6000)).astype(np.float32), 16000)
    audio_paths.append(path)
  runs = []
  for name, widths in (("base", (4, 8, 8, 8)), ("grown", (4, 12, 16, 8))):
    fields = dict(name="resnet18", stage_widths=widths, stem_width=4, n_mels=16, num_frames=16)
    shapes = surgery.flatten(surgery.abstract_variables(models.build_model(fields), (1, 8000)))
    # Random weights of the right shapes (no init compile); BatchNorm variances must stay positive.
    variables = surgery.unflatten({k: (np.ones(v.shape, np.float32) if k.endswith("/var") else
                                       0.3 * rng.standard_normal(v.shape).astype(np.float32))
                                   for k, v in shapes.items()})
    checkpoints.export_model(str(tmp_path / name / "model"), model_fields=fields, variables=variables,
                             info={"sample_rate": 16000, "num_samples": 8000, "threshold": 0.0})
    runs.append(str(tmp_path / name))
  out = str(tmp_path / "gradcam.png")
  assert gradcam.main(["--runs", *runs, "--audio", *audio_paths, "--target", "predicted", "--out", out]) == 0
  assert os.path.getsize(out) > 0
  maps = np.load(str(tmp_path / "gradcam.npz"))
  assert sorted(maps.files) == sorted(f"{r}/clip{i}.wav" for r in ("base", "grown") for i in range(2))
  for key in maps.files:
    assert maps[key].shape == (16, 16) and np.all(maps[key] >= 0)
