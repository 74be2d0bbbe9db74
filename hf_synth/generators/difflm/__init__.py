"""DiffLM (arXiv 2411.03250): a VAE latent injected as a soft prompt into a frozen causal LM, with a
latent diffusion prior."""

from .config import DiffLMGeneratorConfig
from .generator import DiffLMGenerator

__all__ = ["DiffLMGenerator", "DiffLMGeneratorConfig"]
