"""jaxplastic: neuron-level dropin and neuroplasticity for audio anti-spoofing in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="jaxplastic",
    version="0.1.0",
    description="Neuron-level dropin and neuroplasticity for audio deepfake detection in JAX/Flax",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["jaxplastic", "jaxplastic.*"]),
    install_requires=[
        "jax>=0.7",
        "flax>=0.10",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        # The input pipeline: deterministic random-access datasets, worker processes (mp_prefetch).
        "grain>=0.2.18",
        "ml_collections>=1.0",
        "absl-py",
        "numpy",
        "scipy",
        "librosa>=0.10",
        "soundfile>=0.12",
        "safetensors",
        "transformers>=4.40",  # configs only; no torch needed at run time
        "tqdm",
        "tensorboardX",
        # Plots (DET curves, the dropin sweep, GradCAM); drawn on the Agg canvas.
        "matplotlib>=3.5",
        # The demo corpus: real CMU ARCTIC speech ships in pysptk's wheel; WORLD and MLSA vocoders make the spoofs.
        "pysptk>=1.0",
        "pyworld>=0.3",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3", "torch==2.13.0", "G722>=1.2"],
        # Wideband demo speech: decodes Debian's G.722 Asterisk prompts (make demo installs it).
        "demo": ["G722>=1.2"],
    },
    entry_points={"console_scripts": ["jaxplastic-score=jaxplastic.score_cli:main"]},
)
