"""Config dataclasses (peft style): flat, JSON-native fields with defaults and help text.

Subclasses validate in ``validate()`` (called from ``__post_init__``) and raise a ``ValueError``
that names the field. Unknown keys found when loading a saved config are dropped with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, TypeVar

from .errors import HFSynthError

logger = logging.getLogger(__name__)
C = TypeVar("C", bound="GeneratorConfig")


class ConfigError(HFSynthError):
    """A config field has a wrong type or value."""


@dataclasses.dataclass
class GeneratorConfig:
    """Base class of generator configs."""

    def __post_init__(self) -> None:
        self._check_types()
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the field when a value is out of range."""

    def _check_types(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            if value is None:
                if "None" not in expected and "Optional" not in expected:
                    raise ConfigError(f"{type(self).__name__}.{f.name} may not be None")
                continue
            if expected.startswith("int") and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"{type(self).__name__}.{f.name} must be an int, got {value!r}")
            if expected.startswith("float"):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{type(self).__name__}.{f.name} must be a number, got {value!r}")
                setattr(self, f.name, float(value))
            if expected.startswith("bool") and not isinstance(value, bool):
                raise ConfigError(f"{type(self).__name__}.{f.name} must be true or false, got {value!r}")
            if expected.startswith("str") and not isinstance(value, str):
                raise ConfigError(f"{type(self).__name__}.{f.name} must be a string, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            logger.warning("ignoring unknown %s fields: %s", cls.__name__, ", ".join(unknown))
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated)."""
        known = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - known)
        if bad:
            raise ConfigError(f"unknown {type(self).__name__} fields: {', '.join(bad)}")
        return dataclasses.replace(self, **changes)


def positive(config: GeneratorConfig, *names: str) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{type(config).__name__}.{name} must be > 0, got {getattr(config, name)!r}")


def column_names(config: GeneratorConfig, name: str) -> list[str] | None:
    """The field as a list of distinct column names (a single name is accepted), or ``None``."""
    value = getattr(config, name)
    if value is None:
        return None
    columns = [value] if isinstance(value, str) else value
    if not isinstance(columns, (list, tuple)) or not columns or not all(isinstance(c, str) and c for c in columns) \
            or len(set(columns)) != len(columns):
        raise ConfigError(f"{type(config).__name__}.{name} must be a column name or a non-empty list of distinct "
                          f"column names, got {value!r}")
    return list(columns)


def check_column_order(config: GeneratorConfig) -> None:
    """``column_order``: ``"natural"``, ``"dependence"`` or a list of distinct column names."""
    order = config.column_order
    if isinstance(order, list):
        column_names(config, "column_order")
    elif order not in ("natural", "dependence"):
        raise ConfigError(f"{type(config).__name__}.column_order must be 'natural', 'dependence' or a list of every "
                          f"column, got {order!r}")


def in_range(config: GeneratorConfig, name: str, low: float, high: float) -> None:
    value = getattr(config, name)
    if not low <= value <= high:
        raise ConfigError(f"{type(config).__name__}.{name} must be in [{low}, {high}], got {value!r}")
