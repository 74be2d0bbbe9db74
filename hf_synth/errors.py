"""Exceptions raised for user errors.

Every error a user can cause (bad data, bad arguments, a broken generator directory) derives from
:class:`HFSynthError`, so the CLI can print it as one line and exit with status 2, and library users
can catch one type.
"""


class HFSynthError(ValueError):
    """Base class of every user-facing hf_synth error."""


class SchemaError(HFSynthError):
    """The data cannot be described by a record schema (unsupported feature, empty data, ...)."""


class ConditionError(HFSynthError):
    """A sampling condition names an unknown column or a value the schema does not allow."""


class GeneratorLoadError(HFSynthError):
    """A saved generator is missing a file, has a corrupted file or an unknown format."""


class OutputExistsError(HFSynthError):
    """An output path exists and overwriting was not requested."""
