"""Corpus readers and the batch pipeline; `load_split` maps a data config to a `Split`."""

from __future__ import annotations

import os

from jaxplastic.data.asvspoof import (CorpusLayoutError, ProtocolError, Split, Utterance,
                                      load_asvspoof2019, read_asv_scores, read_cm_protocol)
from jaxplastic.data.audio import AudioError, fix_length, load_audio, trim_silence
from jaxplastic.data.fakeorreal import load_fakeorreal
from jaxplastic.data.pipeline import AudioCache, SkipLog, batches, epoch_steps

CORPORA = ("asvspoof2019_la", "asvspoof2019_pa", "fakeorreal", "demo")

# What a user must download for each corpus, quoted in "root not found" errors.
_DOWNLOAD_HINTS = {
    "asvspoof2019_la": "ASVspoof 2019 LA (LA.zip, https://datashare.ed.ac.uk/handle/10283/3336); "
                       "root is the unzipped LA/ folder or its parent",
    "asvspoof2019_pa": "ASVspoof 2019 PA (PA.zip, https://datashare.ed.ac.uk/handle/10283/3336); "
                       "root is the unzipped PA/ folder or its parent",
    "fakeorreal": "a Fake-or-Real version (for-original/for-norm/for-2sec/for-rerec, "
                  "https://bil.eecs.yorku.ca/datasets/); root is that version's folder",
}


def load_split(data_config, split: str) -> Split:
  """Loads split 'train'|'dev'|'eval' of the corpus a data config names.

  Args:
    data_config: ConfigDict with `corpus` (one of CORPORA) and `root`; optional `check_files`
      (ASVspoof, default True), `demo_seed` (demo, default 0) and `demo_size` (demo, the
      generator's default if absent). For 'demo', `root` is the folder the generated LA-layout
      corpus is written to (created if missing) and read back from.
    split: 'train', 'dev' or 'eval'.

  Raises:
    ValueError: unknown corpus or split.
    CorpusLayoutError: root missing or not laid out as distributed; says what to download and
      which config field to set.
  """
  corpus = data_config.corpus
  if corpus not in CORPORA:
    raise ValueError(f"unknown corpus {corpus!r} in config.data.corpus; valid names: {CORPORA}")
  root = data_config.root
  check_files = data_config.get("check_files", True)
  if corpus == "demo":
    # Imported here so the readers do not depend on the generator (and its synthesis code).
    from jaxplastic.data import demo  # pylint: disable=g-import-not-at-top

    if not root:
      raise CorpusLayoutError("config.data.root is empty; set --config.data.root=<folder> to say "
                              "where the demo corpus is generated")
    os.makedirs(root, exist_ok=True)
    kwargs = {"seed": data_config.get("demo_seed", 0)}
    if data_config.get("demo_size") is not None:
      kwargs["size"] = data_config.demo_size
    la_root = demo.ensure_demo_corpus(root, **kwargs)
    return load_asvspoof2019(la_root, "LA", split, check_files=check_files)
  if not root or not os.path.isdir(root):
    raise CorpusLayoutError(
        f"corpus root {root!r} (config.data.root) does not exist. Download "
        f"{_DOWNLOAD_HINTS[corpus]}, then set --config.data.root=/path/to/it")
  try:
    if corpus == "fakeorreal":
      return load_fakeorreal(root, split)
    return load_asvspoof2019(root, corpus[-2:].upper(), split, check_files=check_files)
  except CorpusLayoutError as e:
    raise CorpusLayoutError(
        f"{e} [config.data.corpus={corpus!r}, --config.data.root={root!r}; expected "
        f"{_DOWNLOAD_HINTS[corpus]}]") from e


__all__ = [
    "AudioCache", "AudioError", "CORPORA", "CorpusLayoutError", "ProtocolError", "SkipLog", "Split",
    "Utterance", "batches", "epoch_steps", "fix_length", "load_asvspoof2019", "load_audio",
    "load_fakeorreal", "load_split", "read_asv_scores", "read_cm_protocol", "trim_silence",
]
