"""run.py on user errors: one `error:` line last on stderr, exit status 2, no traceback unless --verbose.

The subprocesses run the smoke config on a format-exact LA fixture and fail before anything is compiled; the
classification of exceptions is tested in-process.
"""

import os
import shutil
import subprocess
import sys

import pytest

from configs import smoke
from jaxplastic import errors
from jaxplastic import experiment
from jaxplastic.data import AudioError
from jaxplastic.data import asvspoof

try:
  from tests import fixtures_data as fx
except ImportError:
  import fixtures_data as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture(scope="module")
def la_root(tmp_path_factory):
  return fx.make_asvspoof2019(str(tmp_path_factory.mktemp("corpus")), "LA")


@pytest.fixture(scope="module")
def bad_protocol(la_root, tmp_path_factory):
  """A copy of the fixture whose train protocol line 3 has 4 fields; returns (root, protocol path)."""
  root = os.path.join(str(tmp_path_factory.mktemp("bad")), "LA")
  shutil.copytree(la_root, root)
  path = os.path.join(root, "ASVspoof2019_LA_cm_protocols", "ASVspoof2019.LA.cm.train.trn.txt")
  with open(path) as f:
    lines = f.read().splitlines()
  lines[2] = " ".join(lines[2].split()[:3] + lines[2].split()[4:])  # drop ATTACK
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return root, path


def _run(root, workdir, *flags, config="configs/smoke.py"):
  cmd = [sys.executable, "run.py", f"--config={config}", "--config.data.corpus=asvspoof2019_la",
         f"--config.data.root={root}", f"--workdir={workdir}", *flags]
  return subprocess.run(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
                        timeout=300)


def _error_line(proc) -> str:
  """The one-line error a user error must end with; fails if there is a traceback or anything after it."""
  assert proc.returncode == errors.EXIT_USER_ERROR, proc.stderr
  assert TRACEBACK not in proc.stderr, proc.stderr
  last = proc.stderr.rstrip("\n").split("\n")[-1]
  assert last.startswith("error: "), proc.stderr
  return last


def test_bad_protocol_line_is_one_line_naming_file_and_line(bad_protocol, tmp_path):
  root, path = bad_protocol
  line = _error_line(_run(root, tmp_path / "run"))
  assert f"{path}:3: expected 5 fields" in line


def test_verbose_shows_the_traceback(bad_protocol, tmp_path):
  proc = _run(bad_protocol[0], tmp_path / "run", "--verbose")
  assert proc.returncode != 0
  assert TRACEBACK in proc.stderr and "ProtocolError" in proc.stderr


def test_missing_corpus_root_and_checkpoint_are_one_line(la_root, tmp_path):
  missing = str(tmp_path / "no_such_corpus")
  assert f"corpus root {missing!r} (config.data.root) does not exist" in _error_line(_run(missing, tmp_path / "a"))
  checkpoint = str(tmp_path / "no_such_run")
  line = _error_line(_run(la_root, tmp_path / "b", f"--config.stages[0].checkpoint={checkpoint}"))
  assert f"{checkpoint}/model is not an exported jaxplastic model" in line


def test_bad_config_flags_are_one_line(la_root, tmp_path):
  # Flag errors answer before JAX is imported.
  line = _error_line(_run(la_root, tmp_path / "run", "--config.model.no_such_field=1"))
  assert line == "error: --config.model.no_such_field: config.model has no field 'no_such_field'"
  line = _error_line(_run(la_root, tmp_path / "run", "--config.stages[3].num_epochs=1"))
  assert line.startswith("error: --config.stages[3].num_epochs: config.stages[3] has no such index")
  line = _error_line(_run(la_root, tmp_path / "run", "--config.data.batch_size=four"))
  assert "--config.data.batch_size=four" in line
  line = _error_line(_run(la_root, tmp_path / "run", config="configs/no_such_config.py"))
  assert line == ("error: --config: cannot load the config file: [Errno 2] No such file or directory: "
                  "'configs/no_such_config.py'")
  assert not os.path.exists(tmp_path / "run")


# In-process: which exceptions are user errors, and how they are printed.


def _config(root):
  config = smoke.get_config("resnet18")
  config.data.corpus = "asvspoof2019_la"
  config.data.root = root
  return config


def _exit_line(capsys, fn, code=errors.EXIT_USER_ERROR):
  """Runs `fn`, which must exit with `code`, and returns the last stderr line."""
  with pytest.raises(SystemExit) as info:
    fn()
  assert info.value.code == code
  err = capsys.readouterr().err
  assert TRACEBACK not in err
  return err.rstrip("\n").split("\n")[-1]


def test_missing_audio_and_bad_model_fields_are_one_line(la_root, tmp_path, capsys):
  root = os.path.join(str(tmp_path), "LA")
  shutil.copytree(la_root, root)
  gone = os.path.join(root, "ASVspoof2019_LA_dev", "flac", "LA_D_1105538.flac")
  os.remove(gone)
  work = str(tmp_path / "run")
  line = _exit_line(capsys, lambda: errors.run_experiment(_config(root), work))
  assert line.startswith("error: 1 of 5 flac files listed in") and gone in line
  config = _config(la_root)
  config.model.name = "grnn"  # the ResNet fields are not GRNN fields: caught before any array is built
  line = _exit_line(capsys, lambda: errors.run_experiment(config, work))
  assert line.startswith("error: config.model: GRNN.__init__() got an unexpected keyword argument")


def test_classification_and_interrupt(capsys):
  def raiser(e):
    def fn():
      raise e
    return fn

  def reported(e, **kwargs):
    return lambda: errors.run_reporting_errors(raiser(e), verbose=False, **kwargs)

  nan = experiment.NonFiniteLossError("stage a: NaN loss; the last good checkpoint is in /w/latest.\nRe-run.")
  assert _exit_line(capsys, reported(nan)) == \
      "error: stage a: NaN loss; the last good checkpoint is in /w/latest. Re-run."
  bad = asvspoof.ProtocolError("/p.txt:7: expected 5 fields: 'a b'")
  assert _exit_line(capsys, reported(bad)) == "error: /p.txt:7: expected 5 fields: 'a b'"
  assert _exit_line(capsys, reported(AudioError("/a.flac: cannot decode audio"))) == \
      "error: /a.flac: cannot decode audio"
  # Other ValueErrors: one line too, with the way to the traceback.
  assert _exit_line(capsys, reported(ValueError("stage x: kind must be one of ..."))) == \
      f"error: ValueError: stage x: kind must be one of ... ({errors.VERBOSE_HINT})"
  assert _exit_line(capsys, reported(KeyboardInterrupt(), workdir="/w"), code=errors.EXIT_INTERRUPTED) == \
      "error: interrupted; re-run the same command to resume; checkpoints are in /w"
  with pytest.raises(RuntimeError, match="a bug"):  # not a user error: the traceback stays
    errors.run_reporting_errors(raiser(RuntimeError("a bug")), verbose=False)
  with pytest.raises(asvspoof.ProtocolError):
    errors.run_reporting_errors(raiser(bad), verbose=True)
  assert errors.one_line("flag --config: Error:\n\nTraceback (most recent call last):\n  File x\nValueError: bad") \
      == "flag --config: Error: ValueError: bad"
