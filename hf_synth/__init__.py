"""hf_synth: synthetic-data generators for the Hugging Face datasets ecosystem."""

__version__ = "0.1.0"
