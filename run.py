"""Entry point: `python run.py --config=configs/<name>.py [--config.field=value ...] --workdir=DIR`.

This file only parses flags; everything else is `jaxplastic.experiment.run(config, workdir)`, which tests and
notebooks call directly. Re-running with the same workdir resumes.
"""

import logging as pylogging
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics, scores and the exported model go "
                    "(default: runs/<config name>).")
flags.mark_flags_as_required(["config"])


class _QuietLibraries:
  """Drops INFO chatter of orbax and absl-using libraries; our own INFO lines and every warning stay."""

  def filter(self, record):
    return record.levelno >= pylogging.WARNING or "orbax" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().python_handler.addFilter(_QuietLibraries())
  from jaxplastic import experiment  # after absl parsed flags, so JAX sees the environment
  workdir = FLAGS.workdir or os.path.join("runs", os.path.splitext(os.path.basename(
      flags.FLAGS["config"].config_filename))[0].replace(":", "_"))
  logging.info("workdir: %s", workdir)
  experiment.run(FLAGS.config, workdir)


if __name__ == "__main__":
  app.run(main)
