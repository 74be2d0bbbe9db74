"""``datasets.load_dataset("hf_synth", "synthetic", generator=..., num_rows=...)`` after ``import hf_synth``.

datasets >= 4 loads no third-party code by name: ``load_dataset_builder`` asks its module-level
``dataset_module_factory`` which builder module a path names. This module wraps that function so
that the name ``hf_synth`` gives :class:`hf_synth.builder.SyntheticBuilder`; every other path goes
to datasets unchanged. Because that function is datasets-internal, the wrapper checks what it relies
on when it is installed and when it runs: if datasets changed, the user gets an error that points to
:func:`hf_synth.load_dataset` (public builder API only), never silently different data.

``import hf_synth`` stays fast: when datasets is not imported yet, the route is installed right
after ``datasets.load`` is first imported.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import sys
from types import ModuleType
from typing import Any

from .errors import HFSynthError

logger = logging.getLogger(__name__)
ROUTE_NAMES = ("hf_synth", "hf-synth")
BUILDER_MODULE = "hf_synth.builder"
UNSUPPORTED = (
    "datasets.load_dataset('hf_synth', ...) is not supported with this datasets version ({reason}); "
    "use hf_synth.load_dataset('<generator directory or Hub id>', 'synthetic', num_rows=..., seed=...), "
    "which takes the same arguments"
)


class RouteError(HFSynthError):
    """``datasets.load_dataset("hf_synth", ...)`` cannot work with the installed datasets."""


def route_problem(load_module: ModuleType) -> str | None:
    """Why the route cannot be installed into ``datasets.load``, or ``None`` if it can."""
    factory = getattr(load_module, "dataset_module_factory", None)
    builder = getattr(load_module, "load_dataset_builder", None)
    if factory is None or builder is None or not hasattr(load_module, "DatasetModule"):
        return "datasets.load has no dataset_module_factory, load_dataset_builder or DatasetModule"
    code = getattr(builder, "__code__", None)
    if code is None or "dataset_module_factory" not in code.co_names:
        return "load_dataset_builder no longer calls dataset_module_factory"
    return None


def install(load_module: ModuleType) -> bool:
    """Wrap ``datasets.load.dataset_module_factory``; ``False`` (with a warning) when datasets changed."""
    if getattr(getattr(load_module, "dataset_module_factory", None), "hf_synth_route", False):
        return True
    problem = route_problem(load_module)
    if problem is not None:
        logger.warning(UNSUPPORTED.format(reason=problem))
        return False
    original = load_module.dataset_module_factory

    @functools.wraps(original)
    def dataset_module_factory(path: str, *args: Any, **kwargs: Any) -> Any:
        if path not in ROUTE_NAMES:
            return original(path, *args, **kwargs)
        return synthetic_module(load_module, **kwargs)

    dataset_module_factory.hf_synth_route = True
    load_module.dataset_module_factory = dataset_module_factory
    return True


def synthetic_module(load_module: ModuleType, *, revision: Any = None, data_dir: Any = None,
                     data_files: Any = None, **_: Any) -> Any:
    """The DatasetModule that names :class:`~hf_synth.builder.SyntheticBuilder`."""
    from . import __version__

    if data_dir is not None or data_files is not None:
        raise HFSynthError("a synthetic dataset is sampled, not read: data_files and data_dir do not apply")
    # load_dataset's `revision` would name a revision of a dataset repo; here it is the generator's
    builder_kwargs = {"dataset_name": "hf_synth", **({"revision": str(revision)} if revision is not None else {})}
    try:
        return load_module.DatasetModule(module_path=BUILDER_MODULE, hash=__version__, builder_kwargs=builder_kwargs)
    except TypeError as err:
        raise RouteError(UNSUPPORTED.format(reason=f"DatasetModule changed: {err}")) from None


class _InstallAfterImport(importlib.abc.MetaPathFinder):
    """Installs the route as soon as ``datasets.load`` has been imported (one-shot import hook)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "datasets.load":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_install(module: ModuleType) -> None:
            exec_module(module)
            install(module)

        spec.loader.exec_module = exec_then_install
        return spec


def install_when_imported() -> None:
    """Install now if datasets is imported, else right after it is."""
    if "datasets.load" in sys.modules:
        install(sys.modules["datasets.load"])
    elif not any(isinstance(finder, _InstallAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _InstallAfterImport())
