"""jaxplastic: neuron-level dropin and neuroplasticity for audio anti-spoofing in JAX/Flax."""

__version__ = "0.1.0"
