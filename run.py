"""Entry point: `python run.py --config=configs/<name>.py [--config.field=value ...] --workdir=DIR`.

This file only parses flags; everything else is `jaxplastic.experiment.run(config, workdir)`, which tests and
notebooks call directly. Re-running with the same workdir resumes. A user error (bad protocol line, missing corpus
or checkpoint, bad config field...) ends with one `error: ...` line on stderr and exit status 2 (see
jaxplastic/errors.py); `--verbose` shows the traceback instead.
"""

import logging as pylogging
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxplastic import errors  # light: imports JAX only to run, or to classify an error

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics, scores and the exported model go "
                    "(default: runs/<config name>).")
flags.DEFINE_bool("verbose", False, "Show the full Python traceback of errors (also with -v 1).")
flags.mark_flags_as_required(["config"])


class _QuietLibraries:
  """Drops INFO chatter of orbax and absl-using libraries; our own INFO lines and every warning stay."""

  def filter(self, record):
    return record.levelno >= pylogging.WARNING or "orbax" not in record.pathname


def main(argv):
  del argv  # errors.parse_flags rejects positional arguments
  logging.get_absl_handler().python_handler.addFilter(_QuietLibraries())
  workdir = FLAGS.workdir or os.path.join("runs", os.path.splitext(os.path.basename(
      flags.FLAGS["config"].config_filename))[0].replace(":", "_"))
  logging.info("workdir: %s", workdir)
  errors.run_experiment(FLAGS.config, workdir, verbose=FLAGS.verbose or FLAGS.verbosity >= 1)


if __name__ == "__main__":
  app.run(main, flags_parser=errors.parse_flags)
