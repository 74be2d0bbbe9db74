"""Evaluation of synthetic data: :func:`evaluate` builds a :class:`Report`.

Sections (each its own module): validity (:mod:`.data`), column shapes and pair trends
(:mod:`.fidelity`), detection / C2ST (:mod:`.detection`), train-on-synthetic utility
(:mod:`.utility`), privacy (:mod:`.privacy`), alpha-precision / beta-recall (:mod:`.highorder`),
quality / diversity / complexity of text and records (:mod:`.diversity`, :mod:`.complexity`) and
sentence-embedding metrics (:mod:`.embeddings`).
"""

from .data import EvaluationData, EvaluationError, column_roles, prepare
from .encoding import RowEncoder
from .report import SECTIONS, Report, evaluate

__all__ = ["SECTIONS", "EvaluationData", "EvaluationError", "Report", "RowEncoder", "column_roles", "evaluate", "prepare"]
