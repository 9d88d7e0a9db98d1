"""User errors on the command line: which exceptions are the user's to fix, and how `run.py` reports them.

A user error (bad protocol line, missing audio or corpus root, missing or corrupt checkpoint, bad config field or
value, impossible surgery, NaN loss) ends the run with `error: <message>` as the last line of stderr, on one line,
and exit status 2; Ctrl-C ends it with a one-line resume hint and status 130. `--verbose` (or absl's `-v 1`) shows
the full traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

EXIT_USER_ERROR = 2  # as `jaxplastic-score` and argparse use for usage errors
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
VERBOSE_HINT = "run with --verbose for the traceback"


class ConfigError(ValueError):
  """A config field or value the run cannot use (unknown field, wrong type, unknown model)."""


def user_errors() -> tuple[type[BaseException], ...]:
  """The exception classes whose message alone tells the user what to fix.

  Each one's message names the file (and line), config field or checkpoint at fault, so a traceback adds nothing
  for the user. Imported here, not at module level, so parsing flags does not import JAX.
  """
  # pylint: disable=g-import-not-at-top
  from jaxplastic import checkpoints
  from jaxplastic import experiment
  from jaxplastic import hf_checkpoint
  from jaxplastic import surgery
  from jaxplastic.data import asvspoof
  from jaxplastic.data import audio
  from jaxplastic.data import demo
  return (ConfigError,
          asvspoof.ProtocolError,  # `<file>:<line>: <what>: <line>`
          asvspoof.CorpusLayoutError,  # missing corpus root, protocol or listed audio; says what to download
          audio.AudioError,  # an undecodable audio file, named
          demo.DemoCorpusError,  # the demo corpus cannot be generated (no speech source installed)
          checkpoints.CheckpointError,  # missing, corrupt or mismatched checkpoint / exported model
          hf_checkpoint.CheckpointError,  # a pretrained wav2vec2 checkpoint that does not fit the config
          surgery.SurgeryError,  # a grow/prune the widths of the stages make impossible
          experiment.NonFiniteLossError)  # says where the last good checkpoint is and how to resume


def one_line(message: str) -> str:
  """Collapses a multi-line message into one line; an embedded traceback is reduced to its final exception line."""
  text = str(message)
  if "Traceback (most recent call last):" in text:
    head, _, tail = text.partition("Traceback (most recent call last):")
    last = [l.strip() for l in tail.splitlines() if l.strip()]
    text = head + "\n" + (last[-1] if last else "")
  out = ""
  for line in (l.strip() for l in text.splitlines()):
    if not line:
      continue
    if out:
      out += " " if out[-1] in ":;,.([" else "; "
    out += line
  return out


def report(message: str, *, hint: str = "") -> None:
  """Writes `error: <message>` as one line on stderr, after any pending log output."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.flush()
  sys.stdout.flush()
  text = one_line(message)
  if hint:
    text += f" ({hint})"
  print(f"error: {text}", file=sys.stderr, flush=True)


def wants_traceback(argv: Sequence[str]) -> bool:
  """Whether the command line asks for tracebacks (`--verbose`, or absl's `-v 1` / `--verbosity=1`).

  Reads argv itself, so it also answers when parsing the flags failed.
  """
  for i, arg in enumerate(argv):
    name, eq, value = arg.partition("=")
    if name == "--verbose" and (not eq or value.lower() in ("true", "t", "1", "yes", "y")):
      return True
    if name in ("-v", "--v", "--verbosity"):
      value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
      if value.lstrip("-").isdigit() and int(value) >= 1:
        return True
  return False


def _bad_config_override(argv: Sequence[str], config_flag: str) -> str:
  """Names the first `--<config_flag>.<path>` override whose path the loaded config does not have."""
  # pylint: disable=g-import-not-at-top
  from absl import flags
  from ml_collections.config_flags import config_path
  prefix = f"--{config_flag}."
  overrides = [a[len(prefix):].split("=", 1)[0] for a in argv if a.startswith(prefix)]
  files = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{config_flag}=")]
  try:
    config = flags.FLAGS[config_flag].parser.parse(files[-1])
  except Exception:  # pylint: disable=broad-except  (then the generic message below)
    config = None
  for path in overrides if config is not None else ():
    try:
      config_path.get_type(path, config)
    except (AttributeError, KeyError, IndexError) as e:
      inner = e.args[0] if e.args else e
      detail = inner.args[0] if isinstance(inner, KeyError) and inner.args else str(inner)
      parent = f"config.{path.rsplit('.', 1)[0]}" if "." in path else "the config"
      if isinstance(e, IndexError):
        return f"{prefix}{path}: {parent} has no such index ({detail})"
      return f"{prefix}{path}: {parent} has no field {detail}"
  return f"a {prefix}<field> override names a field the config does not have: {overrides}"


def parse_flags(argv: Sequence[str], config_flag: str = "config") -> list[str]:
  """absl `flags_parser` for `app.run`: a bad flag, config file or config override is one `error:` line, exit 2.

  ml_collections raises AttributeError/KeyError/IndexError (not a flags error) for an override such as
  `--config.model.no_such_field=1`, and defers a config file's load error to the first access; both are reported
  here, naming the override or the file.
  """
  # pylint: disable=g-import-not-at-top
  from absl import flags
  try:
    rest = flags.FLAGS(list(argv))
    if len(rest) > 1:
      raise flags.Error(f"unexpected positional arguments {rest[1:]}; every setting is a --flag")
    getattr(flags.FLAGS[config_flag].value, "keys", None)  # raises a config file's deferred load error
  except flags.Error as e:
    if wants_traceback(argv):
      raise
    report(str(e), hint=VERBOSE_HINT if "Traceback" in str(e) else "")
  except (AttributeError, KeyError, IndexError):
    if wants_traceback(argv):
      raise
    report(_bad_config_override(argv, config_flag))
  except OSError as e:
    if wants_traceback(argv) or not _is_config_load_error(e):
      raise
    lines = [l.strip() for l in str(e.__cause__ or e).splitlines() if l.strip()]
    report(f"--{config_flag}: cannot load the config file: {lines[-1] if lines else e}")
  else:
    return rest
  sys.exit(EXIT_USER_ERROR)


def _is_config_load_error(e: OSError) -> bool:
  """ml_collections' deferred 'Failed loading config file' error (and not, say, a broken pipe while printing help)."""
  return any("Failed loading config file" in str(x) for x in (e, e.__cause__) if x is not None)


def check_models(config) -> None:
  """Builds every stage's model (no arrays), so an unknown model name or field is a ConfigError before any work."""
  # pylint: disable=g-import-not-at-top
  from jaxplastic import experiment
  for st in config.stages:
    try:
      experiment.build(experiment.model_fields(config.model, st.widths))
    except (TypeError, KeyError) as e:
      where = f"stage {st.name}: " if st.widths else ""
      raise ConfigError(f"{where}config.model: {e.args[0] if e.args else e}") from e


def run_reporting_errors(fn: Callable[[], Any], *, verbose: bool, workdir: str = "") -> Any:
  """Calls `fn()`; a user error or Ctrl-C exits with one line on stderr unless `verbose`; anything else propagates.

  Other ValueErrors (config values the library rejects, e.g. a stage kind or a batch size) are reported the same
  way, with the hint that `--verbose` shows where they came from.
  """
  try:
    return fn()
  except KeyboardInterrupt:
    if verbose:
      raise
    where = f"; checkpoints are in {workdir}" if workdir else ""
    report(f"interrupted; re-run the same command to resume{where}")
    sys.exit(EXIT_INTERRUPTED)
  except user_errors() as e:
    if verbose:
      raise
    report(str(e) or type(e).__name__)
  except ValueError as e:
    if verbose:
      raise
    report(f"{type(e).__name__}: {e}", hint=VERBOSE_HINT)
  sys.exit(EXIT_USER_ERROR)


def run_experiment(config, workdir: str, *, verbose: bool = False) -> dict:
  """What `run.py` does after parsing flags: check the models, run the experiment, report user errors in one line."""
  from jaxplastic import experiment  # pylint: disable=g-import-not-at-top

  def go():
    check_models(config)
    return experiment.run(config, workdir)

  return run_reporting_errors(go, verbose=verbose, workdir=workdir)


__all__ = ["ConfigError", "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "VERBOSE_HINT", "check_models", "one_line",
           "parse_flags", "report", "run_experiment", "run_reporting_errors", "user_errors", "wants_traceback"]
