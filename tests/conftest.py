"""Shared test set-up: CPU only, fast compiles, and a few small fixtures."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests run tiny models; compile time dominates, so skip most XLA optimisation.
jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def rng():
  return jax.random.PRNGKey(0)
