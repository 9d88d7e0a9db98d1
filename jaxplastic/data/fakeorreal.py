"""Fake-or-Real (FoR) reader: for-original, for-norm, for-2sec and for-rerec as distributed.

Each version holds `training|validation|testing/real|fake/*.wav`, but the archives nest it under
one or more extra folders (`for-2sec/for-2seconds/...`), so the split folders are searched for, not
assumed.
Fake file names contain "mp3" (a label leak); they are kept only as utterance ids for score files.
"""

from __future__ import annotations

import logging
import os

from jaxplastic.data.asvspoof import CorpusLayoutError, Split, Utterance

SPLIT_FOLDERS = {"train": "training", "dev": "validation", "eval": "testing"}
CLASS_FOLDERS = {"real": 1, "fake": 0}
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
# How deep below `root` the split folders may sit (for-2sec/for-2seconds/training is depth 1).
MAX_DEPTH = 3


def _holds_splits(folder: str) -> bool:
  return all(
      os.path.isdir(os.path.join(folder, split_dir, class_dir))
      for split_dir in SPLIT_FOLDERS.values() for class_dir in CLASS_FOLDERS)


def find_for_root(root: str | os.PathLike) -> str:
  """The single folder at depth <= 3 below `root` holding {training,validation,testing}/{real,fake}.

  Raises:
    CorpusLayoutError: `root` is missing, no such folder exists, or more than one does (e.g. `root`
      is the parent of several FoR versions).
  """
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise CorpusLayoutError(f"Fake-or-Real root {root!r} is not a folder")
  found, frontier = [], [root]
  for _ in range(MAX_DEPTH + 1):
    next_frontier = []
    for folder in frontier:
      if _holds_splits(folder):
        found.append(folder)
        continue  # the split folders themselves cannot hold another copy
      with os.scandir(folder) as it:
        next_frontier.extend(sorted(
            e.path for e in it if e.is_dir() and not e.name.startswith((".", "__MACOSX"))))
    frontier = next_frontier
  if not found:
    raise CorpusLayoutError(
        f"no Fake-or-Real split folders under {root!r}: expected "
        f"training/, validation/ and testing/, each with real/ and fake/, at most {MAX_DEPTH} "
        "folders deep (e.g. for-2sec/for-2seconds/training/real/*.wav)")
  if len(found) > 1:
    raise CorpusLayoutError(
        f"ambiguous Fake-or-Real root {root!r}: {len(found)} folders hold split folders "
        f"({found}); point the root at one FoR version")
  return found[0]


def _audio_files(folder: str) -> list[str]:
  """Audio files below `folder` (recursive, sorted), without hidden ones such as macOS `._x.wav`."""
  out = []
  for dirpath, dirnames, filenames in os.walk(folder):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    out.extend(os.path.join(dirpath, name) for name in filenames
               if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS))
  return sorted(out)


def load_fakeorreal(root: str | os.PathLike, split: str = "train") -> Split:
  """Loads one split of a Fake-or-Real version.

  Args:
    root: a for-original / for-norm / for-2sec / for-rerec folder (any nesting below it, <= 3 deep).
    split: 'train', 'dev' or 'eval' (the folders training, validation, testing).

  Returns:
    A Split (corpus 'fakeorreal'), real files first then fake, each sorted by path. utt_id is the
    path relative to the split folder (e.g. 'fake/file1.mp3.wav'); attack is 'fake' or '-'.

  Raises:
    CorpusLayoutError: layout not found or ambiguous, or a split with no audio in a class folder.
  """
  if split not in SPLIT_FOLDERS:
    raise ValueError(f"split must be one of {tuple(SPLIT_FOLDERS)}, got {split!r}")
  split_dir = os.path.join(find_for_root(root), SPLIT_FOLDERS[split])
  items = []
  for class_dir, label in CLASS_FOLDERS.items():
    files = _audio_files(os.path.join(split_dir, class_dir))
    if not files:
      raise CorpusLayoutError(
          f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {os.path.join(split_dir, class_dir)}")
    items.extend(
        Utterance(utt_id=os.path.relpath(path, split_dir).replace(os.sep, "/"), path=path,
                  label=label, attack="-" if label == 1 else "fake")
        for path in files)
  out = Split(name=split, corpus="fakeorreal", items=items)
  counts = out.counts()
  logging.info("Fake-or-Real %s (%s): %d real, %d fake", split, split_dir, counts["bonafide"],
               counts["spoof"])
  return out
