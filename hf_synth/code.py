"""Python source in data: find it, parse it (never run it).

Shared by the record schema (a text column whose training values are all Python code must hold
code that parses) and by the evaluation's complexity and validity sections.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    """The code of a generation: the contents of its markdown fences (```...```) when it has any,
    joined by blank lines, else the text itself; common indentation is removed."""
    blocks = _FENCE.findall(text)
    return textwrap.dedent("\n\n".join(blocks) if blocks else text)


def parse_python(text: str) -> ast.AST | None:
    """The syntax tree of :func:`extract_code` ``(text)``, or ``None`` when it does not parse.

    Only ``ast.parse`` runs: nothing is compiled to bytecode or executed."""
    try:
        with warnings.catch_warnings():  # invalid escapes in generated code warn; they are not our problem
            warnings.simplefilter("ignore")
            return ast.parse(extract_code(text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: null bytes
        return None


def is_code(tree: ast.AST | None) -> bool:
    """Whether a parsed text is code rather than prose that happens to parse: one word, or "not
    bad", parse as Python expressions; code needs a statement that is not a bare expression, or a call."""
    if tree is None:
        return False
    for node in ast.walk(tree):
        if (isinstance(node, ast.stmt) and not isinstance(node, ast.Expr)) or isinstance(node, ast.Call):
            return True
    return False
