"""Builders of tiny corpus trees laid out file for file like the distributed ASVspoof 2019 and FoR.

Audio is a few hundred samples per file; protocol and score lines look like the real ones. The
builders return what they wrote, so tests compare readers against ground truth, not themselves.
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

# (speaker, utterance, env, attack, key) per split; attack/env per the 2019 conventions.
LA_PROTOCOLS = {
    "train": [
        ("LA_0079", "LA_T_1138215", "-", "-", "bonafide"),
        ("LA_0079", "LA_T_1271820", "-", "A01", "spoof"),
        ("LA_0080", "LA_T_1555134", "-", "A02", "spoof"),
        ("LA_0080", "LA_T_2109932", "-", "-", "bonafide"),
        ("LA_0081", "LA_T_3058931", "-", "A03", "spoof"),
        ("LA_0081", "LA_T_4105392", "-", "A04", "spoof"),
        ("LA_0082", "LA_T_5193221", "-", "A05", "spoof"),
        ("LA_0082", "LA_T_6283716", "-", "A06", "spoof"),
    ],
    "dev": [
        ("LA_0069", "LA_D_1047731", "-", "-", "bonafide"),
        ("LA_0069", "LA_D_1105538", "-", "A01", "spoof"),
        ("LA_0070", "LA_D_2281843", "-", "A05", "spoof"),
        ("LA_0070", "LA_D_3386622", "-", "-", "bonafide"),
        ("LA_0071", "LA_D_4498103", "-", "A06", "spoof"),
    ],
    "eval": [
        ("LA_0039", "LA_E_2834763", "-", "A11", "spoof"),
        ("LA_0014", "LA_E_8688571", "-", "-", "bonafide"),
        ("LA_0039", "LA_E_1001193", "-", "A07", "spoof"),
        ("LA_0015", "LA_E_4912844", "-", "A16", "spoof"),
        ("LA_0014", "LA_E_5531977", "-", "-", "bonafide"),
        ("LA_0040", "LA_E_6620391", "-", "A19", "spoof"),
    ],
}

PA_PROTOCOLS = {
    "train": [
        ("PA_0079", "PA_T_0000001", "aaa", "-", "bonafide"),
        ("PA_0095", "PA_T_0005731", "aaa", "AA", "spoof"),
        ("PA_0095", "PA_T_0005732", "bca", "BC", "spoof"),
        ("PA_0080", "PA_T_0000002", "ccb", "-", "bonafide"),
        ("PA_0096", "PA_T_0009001", "abc", "CA", "spoof"),
    ],
    "dev": [
        ("PA_0069", "PA_D_0000001", "aab", "-", "bonafide"),
        ("PA_0069", "PA_D_0004011", "aab", "AB", "spoof"),
        ("PA_0070", "PA_D_0008922", "cca", "CC", "spoof"),
    ],
    "eval": [
        ("PA_0014", "PA_E_0000001", "bbb", "-", "bonafide"),
        ("PA_0039", "PA_E_0071234", "bbb", "BA", "spoof"),
        ("PA_0039", "PA_E_0100011", "acb", "AC", "spoof"),
    ],
}

# ASV score lines (SOURCE KEY SCORE), dev/eval only, as in
# ASVspoof2019.<track>.asv.<split>.gi.trl.scores.txt.
ASV_SCORES = {
    "LA": {
        "dev": [("bonafide", "target", 7.981530), ("bonafide", "target", 5.112),
                ("bonafide", "nontarget", -3.5012), ("bonafide", "nontarget", -6.25),
                ("A01", "spoof", 2.13), ("A05", "spoof", -1.5), ("A05", "spoof", 0.75)],
        "eval": [("bonafide", "target", 6.5), ("bonafide", "nontarget", -4.0),
                 ("A07", "spoof", -2.13), ("A11", "spoof", 1.25), ("A19", "spoof", 0.5)],
    },
    "PA": {
        "dev": [("bonafide", "target", 3.25), ("bonafide", "nontarget", -2.5),
                ("AA", "spoof", 1.0), ("CC", "spoof", -0.5)],
        "eval": [("bonafide", "target", 4.0), ("bonafide", "nontarget", -1.0),
                 ("BA", "spoof", 0.0)],
    },
}

_PROTOCOL_KIND = {"train": "trn", "dev": "trl", "eval": "trl"}


def tone(num_samples: int, seed: int, sample_rate: int = 16000, channels: int = 1) -> np.ndarray:
  """A deterministic noisy tone in [-0.5, 0.5], [num_samples] or [num_samples, channels]."""
  rng = np.random.default_rng(seed)
  t = np.arange(num_samples) / sample_rate
  freq = 200.0 + 50.0 * (seed % 13)
  cols = [0.3 * np.sin(2 * np.pi * freq * (c + 1) * t) + 0.05 * rng.standard_normal(num_samples)
          for c in range(channels)]
  out = np.stack(cols, axis=-1).astype(np.float32)
  return out[:, 0] if channels == 1 else out


def write_flac(path: str, wav: np.ndarray, sample_rate: int = 16000) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sf.write(path, wav, sample_rate, format="FLAC", subtype="PCM_16")


def make_asvspoof2019(base: str, track: str = "LA") -> str:
  """Writes `<base>/<track>/` as in LA.zip / PA.zip and returns that folder.

  Dev and eval flac folders also get ASV enrollment files that no CM protocol lists.
  """
  protocols = LA_PROTOCOLS if track == "LA" else PA_PROTOCOLS
  root = os.path.join(base, track)
  proto_dir = os.path.join(root, f"ASVspoof2019_{track}_cm_protocols")
  os.makedirs(proto_dir, exist_ok=True)
  seed = 0
  for split, lines in protocols.items():
    name = f"ASVspoof2019.{track}.cm.{split}.{_PROTOCOL_KIND[split]}.txt"
    with open(os.path.join(proto_dir, name), "w") as f:
      f.writelines(" ".join(fields) + "\n" for fields in lines)
    flac_dir = os.path.join(root, f"ASVspoof2019_{track}_{split}", "flac")
    for _, utt, *_ in lines:
      seed += 1
      write_flac(os.path.join(flac_dir, utt + ".flac"), tone(160 + 37 * seed, seed))
    if split != "train":
      letter = split[0].upper()
      for k in range(2):  # enrollment audio: present in the folder, absent from the CM protocol
        write_flac(os.path.join(flac_dir, f"{track}_{letter}_99{k:05d}.flac"), tone(200, 1000 + k))
  score_dir = os.path.join(root, f"ASVspoof2019_{track}_asv_scores")
  os.makedirs(score_dir, exist_ok=True)
  for split, lines in ASV_SCORES[track].items():
    with open(os.path.join(score_dir, f"ASVspoof2019.{track}.asv.{split}.gi.trl.scores.txt"),
              "w") as f:
      f.writelines(f"{src} {key} {score:.6f}\n" for src, key, score in lines)
  asv_proto_dir = os.path.join(root, f"ASVspoof2019_{track}_asv_protocols")
  os.makedirs(asv_proto_dir, exist_ok=True)
  with open(os.path.join(asv_proto_dir, f"ASVspoof2019.{track}.asv.dev.female.trl.txt"), "w") as f:
    f.write(f"{track}_0069 {track}_D_1047731 bonafide target\n")
  with open(os.path.join(root, f"README.{track}.txt"), "w") as f:
    f.write("ASVspoof 2019 fixture\n")
  return root


def for_name(index: int, fake: bool, version: str) -> str:
  """FoR-style file names; fakes carry "mp3" (the label leak the readers must keep from models)."""
  stem = f"file{index}.mp3" if fake else f"file{index}"
  if version == "for-2sec":
    return f"{stem}.wav_16k.wav_norm.wav_mono.wav_silence.wav_2sec.wav"
  return f"{stem}.wav"


# Files per (split folder, class folder) in the FoR fixtures.
FOR_COUNTS = {"training": {"real": 3, "fake": 2}, "validation": {"real": 2, "fake": 2},
              "testing": {"real": 1, "fake": 2}}


def make_for_2sec(base: str) -> str:
  """Writes `<base>/for-2sec/for-2seconds/{training,validation,testing}/{real,fake}/` (16 kHz)."""
  version_root = os.path.join(base, "for-2sec")
  data_root = os.path.join(version_root, "for-2seconds")
  seed = 0
  for split_dir, classes in FOR_COUNTS.items():
    for class_dir, count in classes.items():
      for i in range(count):
        seed += 1
        path = os.path.join(data_root, split_dir, class_dir, for_name(seed, class_dir == "fake",
                                                                      "for-2sec"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sf.write(path, tone(320, seed), 16000, subtype="PCM_16")
  # Archive debris that must be ignored.
  os.makedirs(os.path.join(data_root, "training", "real", ".ipynb_checkpoints"), exist_ok=True)
  with open(os.path.join(data_root, "training", "fake", "._file1.mp3.wav"), "wb") as f:
    f.write(b"\x00\x05\x16\x07")
  return version_root


def make_for_original(base: str) -> tuple[str, str]:
  """Writes `<base>/for-original/` (no extra nesting); training/real holds a 22.05 kHz stereo wav.

  Returns:
    (version root, path of the 22.05 kHz stereo file).
  """
  version_root = os.path.join(base, "for-original")
  stereo_path = ""
  seed = 100
  for split_dir, classes in FOR_COUNTS.items():
    for class_dir, count in classes.items():
      for i in range(count):
        seed += 1
        path = os.path.join(version_root, split_dir, class_dir,
                            for_name(seed, class_dir == "fake", "for-original"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if split_dir == "training" and class_dir == "real" and i == 0:
          stereo_path = path
          sf.write(path, tone(2205, seed, 22050, channels=2), 22050, subtype="PCM_16")
        else:
          sf.write(path, tone(400, seed), 16000, subtype="PCM_16")
  return version_root, stereo_path


def make_separable_la(root, n_train=32, n_dev=16, n_eval=16, seed=0):
  """A learnable LA-layout corpus for end-to-end runs; returns the LA root.

  Bona fide = band-limited noise, spoof = harmonic tones (attack-specific f0): separable by any spectrum."""
  rng = np.random.default_rng(seed)
  sr = 16000
  la = os.path.join(root, "LA")
  prot_dir = os.path.join(la, "ASVspoof2019_LA_cm_protocols")
  os.makedirs(prot_dir, exist_ok=True)
  names = {"train": ("T", "train.trn", n_train, ("A01", "A02")), "dev": ("D", "dev.trl", n_dev, ("A01", "A02")),
           "eval": ("E", "eval.trl", n_eval, ("A07", "A08"))}
  for split, (letter, suffix, n, attacks) in names.items():
    flac = os.path.join(la, f"ASVspoof2019_LA_{split}", "flac")
    os.makedirs(flac, exist_ok=True)
    lines = []
    for i in range(n):
      utt = f"LA_{letter}_{1000000 + i:07d}"
      t = np.arange(int(sr * rng.uniform(0.3, 0.7))) / sr
      if i % 2 == 0:
        wav = np.convolve(rng.standard_normal(t.size), np.ones(4) / 4, mode="same") * 0.1
        lines.append(f"LA_{i % 5:04d} {utt} - - bonafide")
      else:
        attack = attacks[(i // 2) % 2]
        f0 = 150.0 if attack in ("A01", "A07") else 230.0
        wav = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6)) * 0.05
        lines.append(f"LA_{i % 5:04d} {utt} - {attack} spoof")
      sf.write(os.path.join(flac, utt + ".flac"), wav.astype(np.float32), sr, subtype="PCM_16")
    with open(os.path.join(prot_dir, f"ASVspoof2019.LA.cm.{suffix}.txt"), "w") as f:
      f.write("\n".join(lines) + "\n")
  return la


def assert_same_export(workdir_a: str, workdir_b: str) -> None:
  """The exported models of two runs hold bit-identical tensors."""
  from jaxplastic import checkpoints, surgery  # pylint: disable=g-import-not-at-top
  _, a = checkpoints.load_export(os.path.join(workdir_a, "model"))
  _, b = checkpoints.load_export(os.path.join(workdir_b, "model"))
  fa, fb = surgery.flatten(a), surgery.flatten(b)
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
