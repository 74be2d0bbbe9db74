"""Generators: one method per module, all registered for AutoGenerator."""

from .base import GENERATORS, AutoGenerator, BaseGenerator
from .difflm import DiffLMGenerator, DiffLMGeneratorConfig
from .lm import LMGenerator, LMGeneratorConfig

__all__ = ["GENERATORS", "AutoGenerator", "BaseGenerator", "DiffLMGenerator", "DiffLMGeneratorConfig", "LMGenerator",
           "LMGeneratorConfig"]
