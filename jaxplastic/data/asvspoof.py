"""ASVspoof 2019 LA/PA readers: CM protocols, ASV score files and the corpus layout as distributed.

The protocol is the source of truth for what belongs to a split: the dev/eval flac folders also
hold ASV enrollment audio that is not part of the CM task, so readers never list the folder. Every
protocol line is validated and a bad one is reported as `<file>:<line>: <problem>: <line>`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import math
import os
import re

import numpy as np

TRACKS = ("LA", "PA")
SPLITS = ("train", "dev", "eval")
# Protocol file suffix and the utterance-id letter of each split (LA_T_..., LA_D_..., LA_E_...).
_PROTOCOL_KIND = {"train": "trn", "dev": "trl", "eval": "trl"}
_SPLIT_LETTER = {"train": "T", "dev": "D", "eval": "E"}
_CM_KEYS = {"bonafide": 1, "spoof": 0}
_ASV_KEYS = ("target", "nontarget", "spoof")
_LA_ATTACK = re.compile(r"A\d\d")
_PA_ENV = re.compile(r"[abc]{3}")
_PA_ATTACK = re.compile(r"[ABC]{2}")


class ProtocolError(ValueError):
  """A malformed protocol or score-file line: `<file>:<line>: <what is wrong>: <the line>`."""


class CorpusLayoutError(FileNotFoundError):
  """The corpus on disk is not laid out as expected, or files the protocol lists are missing."""


@dataclasses.dataclass(frozen=True)
class Utterance:
  """One protocol entry. label: 1 = bona fide, 0 = spoof; attack is '-' for bona fide."""
  utt_id: str
  path: str
  label: int
  attack: str
  speaker: str = "-"
  env: str = "-"


@dataclasses.dataclass
class Split:
  """The utterances of one corpus split, in protocol order, plus the ASV scores t-DCF needs."""
  name: str
  corpus: str
  items: list[Utterance]
  asv_scores: dict | None = None

  def __len__(self) -> int:
    return len(self.items)

  def labels(self) -> np.ndarray:
    """int32 [N] labels in item order."""
    return np.fromiter((u.label for u in self.items), dtype=np.int32, count=len(self.items))

  def counts(self) -> dict[str, int]:
    """{'bonafide': n, 'spoof': n, <attack>: n for every spoof attack, sorted}."""
    attacks = collections.Counter(u.attack for u in self.items if u.label == 0)
    bonafide = sum(u.label for u in self.items)
    out = {"bonafide": bonafide, "spoof": len(self.items) - bonafide}
    out.update(sorted(attacks.items()))
    return out


def _check_track(track: str) -> str:
  if track not in TRACKS:
    raise ValueError(f"track must be one of {TRACKS}, got {track!r}")
  return track


def _line_error(path: str, number: int, line: str, what: str) -> ProtocolError:
  return ProtocolError(f"{path}:{number}: {what}: {line!r}")


def _lines(path: str):
  """Yields (line_number, stripped_line) and rejects blank lines that are followed by content."""
  if not os.path.isfile(path):
    raise CorpusLayoutError(f"{path}: file does not exist")
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  for number, raw in enumerate(lines, start=1):
    line = raw.strip()
    if not line:
      raise ProtocolError(f"{path}:{number}: blank line inside the file: {raw!r}")
    yield number, line


def read_cm_protocol(path: str | os.PathLike, track: str,
                     split: str | None = None) -> list[tuple[str, str, str, str, str]]:
  """Reads and validates an ASVspoof 2019 CM protocol.

  Args:
    path: e.g. `ASVspoof2019.LA.cm.dev.trl.txt`.
    track: 'LA' or 'PA'.
    split: optional 'train'|'dev'|'eval'; when given, utterance ids must carry its letter
      (LA_D_... for dev).

  Returns:
    [(speaker, utt_id, env, attack, key)] in file order.

  Raises:
    ProtocolError: naming file and line, for a wrong field count, unknown key, utterance id of
      another track/split, an attack on a bona fide line (or none on a spoof line), a malformed LA
      attack or PA environment/attack, or a repeated utterance id.
  """
  path = os.fspath(path)
  _check_track(track)
  prefix = f"{track}_" + (f"{_SPLIT_LETTER[split]}_" if split is not None else "")
  entries, seen = [], {}
  for number, line in _lines(path):
    fail = functools.partial(_line_error, path, number, line)
    fields = line.split()
    if len(fields) != 5:
      raise fail(f"expected 5 fields 'SPEAKER UTT ENV ATTACK KEY', got {len(fields)}")
    speaker, utt, env, attack, key = fields
    if key not in _CM_KEYS:
      raise fail(f"KEY must be 'bonafide' or 'spoof', got {key!r}")
    if not utt.startswith(prefix) or len(utt) <= len(prefix):
      raise fail(f"utterance id must start with {prefix!r}")
    if (attack == "-") != (key == "bonafide"):
      raise fail("ATTACK must be '-' exactly for bonafide lines")
    if track == "LA":
      if env != "-":
        raise fail(f"ENV must be '-' for LA, got {env!r}")
      if key == "spoof" and not _LA_ATTACK.fullmatch(attack):
        raise fail(f"LA attack must look like 'A07', got {attack!r}")
    else:
      if not _PA_ENV.fullmatch(env):
        raise fail(f"PA ENV must be a triplet over {{a,b,c}}, got {env!r}")
      if key == "spoof" and not _PA_ATTACK.fullmatch(attack):
        raise fail(f"PA ATTACK must be a duple over {{A,B,C}}, got {attack!r}")
    if utt in seen:
      raise fail(f"utterance id repeats line {seen[utt]}")
    seen[utt] = number
    entries.append((speaker, utt, env, attack, key))
  return entries


def read_asv_scores(path: str | os.PathLike) -> dict:
  """Reads an ASVspoof 2019 ASV score file (`SOURCE KEY SCORE` lines) for t-DCF.

  Returns:
    {'target': f64[n], 'nontarget': f64[n], 'spoof': f64[n], 'spoof_by_attack': {attack: f64[n]}}.

  Raises:
    ProtocolError: naming file and line, for a wrong field count, unknown key, non-numeric or
      non-finite score, or a source inconsistent with the key ('bonafide' iff target/nontarget).
  """
  path = os.fspath(path)
  scores = {key: [] for key in _ASV_KEYS}
  by_attack = collections.defaultdict(list)
  for number, line in _lines(path):
    fail = functools.partial(_line_error, path, number, line)
    fields = line.split()
    if len(fields) != 3:
      raise fail(f"expected 3 fields 'SOURCE KEY SCORE', got {len(fields)}")
    source, key, value = fields
    if key not in scores:
      raise fail(f"KEY must be one of {_ASV_KEYS}, got {key!r}")
    try:
      score = float(value)
    except ValueError:
      raise fail(f"SCORE is not a number: {value!r}") from None
    if not math.isfinite(score):
      raise fail("SCORE is not finite")
    if (source == "bonafide") == (key == "spoof"):
      raise fail("SOURCE must be 'bonafide' for target/nontarget and an attack id for spoof")
    scores[key].append(score)
    if key == "spoof":
      by_attack[source].append(score)
  out = {key: np.asarray(values, dtype=np.float64) for key, values in scores.items()}
  out["spoof_by_attack"] = {
      attack: np.asarray(v, dtype=np.float64) for attack, v in sorted(by_attack.items())}
  return out


def resolve_asvspoof2019_root(root: str | os.PathLike, track: str) -> str:
  """The folder holding `ASVspoof2019_<track>_cm_protocols`: `root` itself or `root/<track>`."""
  _check_track(track)
  root = os.fspath(root)
  protocols = f"ASVspoof2019_{track}_cm_protocols"
  for candidate in (root, os.path.join(root, track)):
    if os.path.isdir(os.path.join(candidate, protocols)):
      return candidate
  raise CorpusLayoutError(
      f"no ASVspoof 2019 {track} corpus under {root!r}: expected {protocols}/ and "
      f"ASVspoof2019_{track}_{{train,dev,eval}}/flac/ in that folder or in {track}/ below it "
      f"(unzip {track}.zip from https://datashare.ed.ac.uk/handle/10283/3336)")


def asvspoof2019_paths(root: str, track: str, split: str) -> dict[str, str]:
  """Paths of a split's CM protocol, flac folder and ASV score file under a resolved `root`."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  return {
      "protocol": os.path.join(
          root, f"ASVspoof2019_{track}_cm_protocols",
          f"ASVspoof2019.{track}.cm.{split}.{_PROTOCOL_KIND[split]}.txt"),
      "flac_dir": os.path.join(root, f"ASVspoof2019_{track}_{split}", "flac"),
      "asv_scores": os.path.join(
          root, f"ASVspoof2019_{track}_asv_scores",
          f"ASVspoof2019.{track}.asv.{split}.gi.trl.scores.txt"),
  }


def load_asvspoof2019(root: str | os.PathLike, track: str = "LA", split: str = "train",
                      check_files: bool = True) -> Split:
  """Loads one split of ASVspoof 2019 LA or PA, in protocol order.

  Args:
    root: the folder holding `ASVspoof2019_LA_train/` etc., or its parent holding `LA/` or `PA/`.
    track: 'LA' or 'PA'.
    split: 'train', 'dev' or 'eval'.
    check_files: verify that every listed flac exists (one listing of the folder, cheap).

  Returns:
    A Split named `split`, corpus 'asvspoof2019_<track>', with ASV scores attached for dev/eval
    when the score file is present.

  Raises:
    CorpusLayoutError: unexpected layout, or listed flacs missing (one error: their count and the
      first 5 paths).
    ProtocolError: a malformed protocol or ASV score line.
  """
  root = resolve_asvspoof2019_root(root, track)
  paths = asvspoof2019_paths(root, track, split)
  if not os.path.isfile(paths["protocol"]):
    raise CorpusLayoutError(f"CM protocol for {track} {split} not found: {paths['protocol']}")
  entries = read_cm_protocol(paths["protocol"], track, split)
  flac_dir = paths["flac_dir"]
  items = [
      Utterance(utt_id=utt, path=os.path.join(flac_dir, utt + ".flac"), label=_CM_KEYS[key],
                attack=attack, speaker=speaker, env=env)
      for speaker, utt, env, attack, key in entries]
  if check_files:
    if not os.path.isdir(flac_dir):
      raise CorpusLayoutError(
          f"flac folder for {track} {split} not found: {flac_dir} "
          f"(listed by {paths['protocol']}, {len(items)} utterances)")
    with os.scandir(flac_dir) as it:
      present = {entry.name for entry in it}
    missing = [u.path for u in items if os.path.basename(u.path) not in present]
    if missing:
      raise CorpusLayoutError(
          f"{len(missing)} of {len(items)} flac files listed in {paths['protocol']} are missing "
          f"from {flac_dir}; first {min(5, len(missing))}: {missing[:5]}")
  asv_scores = None
  if split != "train" and os.path.isfile(paths["asv_scores"]):
    asv_scores = read_asv_scores(paths["asv_scores"])
  out = Split(name=split, corpus=f"asvspoof2019_{track.lower()}", items=items,
              asv_scores=asv_scores)
  logging.info("ASVspoof2019 %s %s: %d utterances %s (ASV scores: %s)", track, split, len(items),
               out.counts(), "yes" if asv_scores is not None else "no")
  return out
