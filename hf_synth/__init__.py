"""hf_synth: synthetic-data generators for the Hugging Face datasets ecosystem.

Train a generator on a dataset, publish it to the Hub like any model, and sample synthetic
splits on the fly::

    from hf_synth import LMGenerator
    generator = LMGenerator().fit("adult.csv")
    synthetic = generator.sample(1000, conditions={"sex": "Female"}, seed=0)
    generator.push_to_hub("user/adult-generator")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Heavy modules (torch, transformers) load on first use so that `import hf_synth` stays fast.
_LAZY = {
    "AutoGenerator": "hf_synth.generators.base",
    "BaseGenerator": "hf_synth.generators.base",
    "LMGenerator": "hf_synth.generators.lm",
    "DiffLMGenerator": "hf_synth.generators.difflm",
    "DiffLMGeneratorConfig": "hf_synth.generators.difflm",
    "LMGeneratorConfig": "hf_synth.generators.lm",
    "RecordSchema": "hf_synth.schema",
    "RecordCodec": "hf_synth.codec",
    "SamplingReport": "hf_synth.sampling",
    "load_input": "hf_synth.io",
    "load_demo_dataset": "hf_synth.data",
    "HFSynthError": "hf_synth.errors",
    "SchemaError": "hf_synth.errors",
    "ConditionError": "hf_synth.errors",
    "GeneratorLoadError": "hf_synth.errors",
    "evaluate": "hf_synth.evaluation.report",
    "Report": "hf_synth.evaluation.report",
    "EvaluationError": "hf_synth.evaluation.data",
    "curate": "hf_synth.curation",
    "load_dataset": "hf_synth.builder",
    "SyntheticBuilder": "hf_synth.builder",
    "SyntheticConfig": "hf_synth.builder",
    "augment": "hf_synth.augmentation",
    "balance": "hf_synth.augmentation",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from .codec import RecordCodec
    from .data import load_demo_dataset
    from .errors import ConditionError, GeneratorLoadError, HFSynthError, SchemaError
    from .generators.base import AutoGenerator, BaseGenerator
    from .generators.difflm import DiffLMGenerator, DiffLMGeneratorConfig
    from .generators.lm import LMGenerator, LMGeneratorConfig
    from .io import load_input
    from .sampling import SamplingReport
    from .schema import RecordSchema
    from .augmentation import augment, balance
    from .builder import SyntheticBuilder, SyntheticConfig, load_dataset
    from .curation import curate
    from .evaluation.data import EvaluationError
    from .evaluation.report import Report, evaluate


# datasets.load_dataset("hf_synth", "synthetic", generator=...) works once hf_synth is imported
from .datasets_route import install_when_imported  # noqa: E402

install_when_imported()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'hf_synth' has no attribute {name!r}")
