"""How hard is the demo corpus? A linear LFCC baseline and a nuisance-cue probe, in plain numpy.

Trains a logistic regression on per-utterance mean/std of 20 LFCCs (train split) and reports EER on
dev (seen attacks), on each eval attack, on the eval attacks held out of train/dev, and pooled eval.
A second regression on nuisance features only (duration, level, peak, out-of-band energy, leading
and trailing silence) shows whether those leak the label; its EERs should sit near 50 %. A third,
richer regression (0-4 kHz LFCC plus the spread of its frame differences) shows that the task is
learnable at all.

  python benchmarks/demo_difficulty.py --root /tmp/demo_corpus            # generates if missing
  python benchmarks/demo_difficulty.py --root /tmp/demo_corpus --size tiny --seed 1
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.fft
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jaxplastic.data import demo  # noqa: E402  pylint: disable=g-import-not-at-top

SR = 16000


def linear_filterbank(n_filters: int, n_fft: int, sr: int,
                      f_max: float | None = None) -> np.ndarray:
  """Triangular filters equally spaced on a linear axis up to f_max: [n_filters, n_fft // 2 + 1]."""
  freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
  edges = np.linspace(0, f_max or sr / 2, n_filters + 2)
  fb = np.zeros((n_filters, freqs.size))
  for i in range(n_filters):
    lo, mid, hi = edges[i:i + 3]
    fb[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
  return fb


_FB = linear_filterbank(20, 512, SR)
# The same 20 filters over 0-4 kHz, where all of the corpus's speech lies.
_FB_4K = linear_filterbank(20, 512, SR, f_max=4000.0)


def lfcc(x: np.ndarray, n_coef: int = 20, fb: np.ndarray = _FB) -> np.ndarray:
  """LFCC frames [T, n_coef]: 20 ms Hamming frames, 10 ms hop, |FFT|^2, linear FB, log, DCT-II."""
  frame, hop = 320, 160
  if x.size < frame:
    x = np.pad(x, (0, frame - x.size))
  n = 1 + (x.size - frame) // hop
  idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
  frames = x[idx] * np.hamming(frame)
  power = np.abs(np.fft.rfft(frames, 512)) ** 2
  return scipy.fft.dct(np.log(power @ fb.T + 1e-10), type=2, norm="ortho", axis=1)[:, :n_coef]


def nuisance(x: np.ndarray) -> np.ndarray:
  """Features that must not predict the label: length, level, peak, energy at and beyond the channel's
  band edges (above 3.4 kHz, below 150 Hz), and leading / trailing silence."""
  spec = np.abs(np.fft.rfft(x)) ** 2
  f = np.fft.rfftfreq(x.size, 1 / SR)
  total = spec.sum() + 1e-12
  frame = SR // 100
  n = max(1, x.size // frame)
  level = 10 * np.log10(np.mean(np.pad(x, (0, max(0, n * frame - x.size)))[:n * frame]
                                .reshape(n, frame) ** 2, axis=1) + 1e-12)
  loud = np.flatnonzero(level > level.max() - 30.0)
  return np.array([x.size / SR, 10 * np.log10(np.mean(x**2) + 1e-12), np.max(np.abs(x)),
                   10 * np.log10(spec[f > 3400].sum() / total + 1e-12),
                   10 * np.log10(spec[f < 150].sum() / total + 1e-12),
                   loud[0] / 100.0, (n - 1 - loud[-1]) / 100.0])


def richer(x: np.ndarray) -> np.ndarray:
  """0-4 kHz LFCC mean/std plus std of its first and second differences: [80]."""
  c = lfcc(x, fb=_FB_4K)
  d1 = np.diff(c, axis=0)
  return np.concatenate([c.mean(0), c.std(0), d1.std(0), np.diff(d1, axis=0).std(0)])


def read_split(la_dir: str, split: str) -> tuple[np.ndarray, ...]:
  """Returns (LFCC stats [N, 40], nuisance [N, 7], richer [N, 80], labels [N], attacks [N])."""
  name = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}[split]
  protocol = os.path.join(la_dir, "ASVspoof2019_LA_cm_protocols", f"ASVspoof2019.LA.cm.{name}.txt")
  feats, nuis, rich, labels, attacks = [], [], [], [], []
  with open(protocol) as f:
    for line in f:
      _, utt, _, attack, key = line.split()
      x, sr = sf.read(os.path.join(la_dir, f"ASVspoof2019_LA_{split}", "flac", utt + ".flac"))
      assert sr == SR, (utt, sr)
      c = lfcc(x)
      feats.append(np.concatenate([c.mean(0), c.std(0)]))
      nuis.append(nuisance(x))
      rich.append(richer(x))
      labels.append(1 if key == "bonafide" else 0)
      attacks.append(attack)
  return np.array(feats), np.array(nuis), np.array(rich), np.array(labels), np.array(attacks)


def fit_logreg(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50):
  """Class-balanced L2 logistic regression by Newton's method; returns a scoring function."""
  mu, sd = x.mean(0), x.std(0) + 1e-8
  z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
  w_class = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
  w = np.zeros(z.shape[1])
  for _ in range(steps):
    p = 1 / (1 + np.exp(-z @ w))
    grad = z.T @ (w_class * (p - y)) / len(y) + l2 * w
    hess = (z * (w_class * p * (1 - p))[:, None]).T @ z / len(y) + l2 * np.eye(z.shape[1])
    w -= np.linalg.solve(hess, grad)
  return lambda xs: np.hstack([(xs - mu) / sd, np.ones((len(xs), 1))]) @ w


def eer(scores: np.ndarray, labels: np.ndarray) -> float:
  """DET-based EER in % as in the official ASVspoof scripts (higher score = more bona fide)."""
  order = np.argsort(scores, kind="mergesort")
  is_bona = labels[order] == 1
  n_b, n_s = is_bona.sum(), (~is_bona).sum()
  cum_b = np.cumsum(is_bona)
  frr = np.concatenate([[0.0], cum_b / n_b])
  far = np.concatenate([[1.0], (n_s - (np.arange(1, len(scores) + 1) - cum_b)) / n_s])
  k = np.argmin(np.abs(frr - far))
  return 100.0 * (frr[k] + far[k]) / 2


def report(name: str, score_fn, data: dict, which: int) -> None:
  """Prints EERs of one model on dev and on eval attack subsets."""
  s_dev = score_fn(data["dev"][which])
  print(f"[{name}] dev EER (seen attacks {','.join(demo.TRAIN_DEV_ATTACKS)}): "
        f"{eer(s_dev, data['dev'][3]):.2f} %")
  s_ev, y_ev, att = score_fn(data["eval"][which]), data["eval"][3], data["eval"][4]
  for a in demo.EVAL_ATTACKS:
    keep = (y_ev == 1) | (att == a)
    tag = "held-out" if a in demo.UNSEEN_ATTACKS else "seen"
    print(f"[{name}] eval EER {a} ({tag}): {eer(s_ev[keep], y_ev[keep]):.2f} %")
  keep = (y_ev == 1) | np.isin(att, demo.UNSEEN_ATTACKS)
  print(f"[{name}] eval EER held-out attacks pooled ({','.join(demo.UNSEEN_ATTACKS)}): "
        f"{eer(s_ev[keep], y_ev[keep]):.2f} %")
  print(f"[{name}] eval EER pooled (all eval attacks): {eer(s_ev, y_ev):.2f} %")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", default="/tmp/jaxplastic_demo_corpus")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--size", default="default", choices=sorted(demo.SIZES))
  args = parser.parse_args()
  t0 = time.time()
  la_dir = demo.ensure_demo_corpus(args.root, seed=args.seed, size=args.size)
  print(f"corpus {la_dir} ready in {time.time() - t0:.1f} s (seed {args.seed}, size {args.size})")
  t0 = time.time()
  data = {s: read_split(la_dir, s) for s in demo.SPLITS}
  for s in demo.SPLITS:
    print(f"{s}: {len(data[s][3])} utterances, {int(data[s][3].sum())} bona fide")
  print(f"features in {time.time() - t0:.1f} s")
  y_train = data["train"][3]
  report("LFCC mean/std + logreg", fit_logreg(data["train"][0], y_train), data, 0)
  report("nuisance cues + logreg", fit_logreg(data["train"][1], y_train), data, 1)
  # Not the specified baseline: shows that the task is learnable from richer features.
  report("0-4 kHz LFCC + delta stats + logreg", fit_logreg(data["train"][2], y_train), data, 2)


if __name__ == "__main__":
  main()
