"""An XLA:CPU slow path that decides ResNet-18's input length on CPU: a 3x3 convolution over a tiny feature map.

ResNet-18 divides the log-Mel image by 32; with 64 mels its last stage sees 2 x ceil(frames / 32) positions. With
the paper's 224 frames that is 2 x 7 and fast; at 2 x 4 and 2 x 2 (under ~128 frames, e.g. a 2 s crop at hop 512) the
same 512-channel 3x3 convolution runs orders of magnitude slower on the pinned jax, so a *shorter* input trains far
slower. This prints the convolution's time per spatial size, side by side in one run, and the whole ResNet-18 forward
pass at several frame counts.

  python benchmarks/xla_small_conv.py
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxplastic.models.resnet import ResNet18


def _time(f, *args, repeats=3):
  jax.block_until_ready(f(*args))
  t0 = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(f(*args))
  return (time.perf_counter() - t0) / repeats


def conv_seconds(hw, channels=512, batch=32):
  x = jnp.ones((batch,) + hw + (channels,), jnp.float32)
  w = jnp.ones((3, 3, channels, channels), jnp.float32)
  f = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                        dimension_numbers=("NHWC", "HWIO", "NHWC")))
  return _time(f, x, w)


def resnet_forward_seconds(frames, batch=32):
  model = ResNet18(num_frames=frames)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, 64, frames, 1)), jnp.float32)
  variables = model.init(jax.random.PRNGKey(0), x[:1], train=False, method=ResNet18.from_features)
  f = jax.jit(lambda a: model.apply(variables, a, train=False, method=ResNet18.from_features)[0])
  return _time(f, x, repeats=2)


def main():
  print(f"jax {jax.__version__}, {jax.devices()[0].platform}, load average {open('/proc/loadavg').read().split()[:3]}")
  print("3x3 conv, 512 -> 512 channels, batch 32:")
  ref = conv_seconds((2, 7))
  for hw in [(2, 7), (2, 6), (2, 5), (4, 4), (2, 4), (2, 2)]:
    s = conv_seconds(hw)
    print(f"  {hw[0]} x {hw[1]}: {1e3 * s:9.1f} ms  ({s / ref:6.1f}x the 2 x 7 map; {hw[0] * hw[1] / 14:.2f}x its positions)")
  print("ResNet-18 forward (from log-Mel), batch 32, 64 mels:")
  ref = resnet_forward_seconds(224)
  for frames in [224, 160, 128, 63]:
    s = resnet_forward_seconds(frames)
    print(f"  {frames:3d} frames: {1e3 * s:9.1f} ms  ({s / ref:5.2f}x 224 frames)")


if __name__ == "__main__":
  main()
