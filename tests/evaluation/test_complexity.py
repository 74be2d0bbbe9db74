"""Complexity proxies of known records, code and texts."""

import ast
import json

import numpy as np
import pytest

from hf_synth.code import extract_code, parse_python
from hf_synth.evaluation.complexity import (
    ast_size,
    code_complexity,
    json_structure,
    looks_like_code,
    record_complexity,
    row_scores,
    text_complexity,
)
from hf_synth.evaluation.data import EvaluationError

SNIPPET = '''
def mean(values):
    """Average."""
    total = 0
    for v in values:
        if v is not None:
            total += v
    return total / len(values)
'''


# ----------------------------------------------------------------------------- records
def test_json_structure_of_a_known_nested_record():
    record = {"id": 1, "user": {"name": "a", "tags": ["x", {"k": 1, "v": [1, 2]}]}, "ok": True}
    # depth: record 1 > user 2 > tags 3 > {k, v} 4 > [1, 2] 5; keys: id user ok name tags k v
    assert json_structure(record) == (5, 7)
    assert json_structure({"a": 1, "b": 2}) == (1, 2)
    assert json_structure(3) == (0, 0)
    assert json_structure({}) == (1, 0)
    assert json_structure([[], []]) == (2, 0)


def test_json_strings_count_as_the_values_they_hold():
    record = {"messages": "hi", "tools": json.dumps([{"name": "f", "parameters": {"x": {"type": "int"}}}])}
    # record 1 > list 2 > tool 3 > parameters 4 > x 5; keys: messages tools name parameters x type
    assert json_structure(record) == (5, 6)
    assert json_structure(record, parse_strings=False) == (1, 2)
    assert json_structure({"note": "[not json"}) == (1, 1)
    assert json_structure({"s": json.dumps(json.dumps({"a": 1}))}) == (1, 1)  # a JSON string of a string is a string


def test_deep_values_do_not_exhaust_the_stack():
    value: dict = {}
    for _ in range(5000):
        value = {"a": value}
    assert json_structure(value) == (5001, 5000)


def test_record_complexity_summaries():
    records = [{"a": 1}, {"a": {"b": 1}}, {"a": {"b": {"c": 1}}}, {"a": [1, 2]}]
    result = record_complexity(records)
    json.dumps(result, allow_nan=False)
    assert result["rows"] == 4
    assert result["depth"]["max"] == 3.0 and result["depth"]["p50"] == 2.0
    assert result["keys"]["mean"] == pytest.approx((1 + 2 + 3 + 1) / 4)
    assert set(result) == {"rows", "depth", "keys", "tokens"}
    assert set(result["tokens"]) == {"mean", "p50", "p95", "max"}


# ----------------------------------------------------------------------------- code
def test_ast_size_by_hand_and_against_ast_walk():
    # x = 1: Module > Assign > Name > Store, Assign > Constant: 5 nodes, depth 4
    assert ast_size(ast.parse("x = 1")) == (5, 4)
    tree = ast.parse(SNIPPET)
    assert ast_size(tree)[0] == sum(1 for _ in ast.walk(tree))


def test_code_complexity_counts_unparsable_rows_in_parse_rate():
    result = code_complexity(["x = 1", "def broken(:", SNIPPET, "return ("])
    json.dumps(result, allow_nan=False)
    assert result["rows"] == 4
    assert result["parse_rate"] == 0.5
    snippet_nodes = sum(1 for _ in ast.walk(ast.parse(SNIPPET)))
    assert result["nodes"]["max"] == snippet_nodes
    assert result["nodes"]["mean"] == pytest.approx((5 + snippet_nodes) / 2)
    assert result["depth"]["p50"] == pytest.approx((4 + ast_size(ast.parse(SNIPPET))[1]) / 2)
    assert "note" not in result


def test_code_complexity_without_any_parsable_row():
    result = code_complexity(["def (:", "}}}"])
    assert result["parse_rate"] == 0.0
    assert result["nodes"]["mean"] is None and result["depth"]["max"] is None
    assert "note" in result
    json.dumps(result, allow_nan=False)


def test_code_is_parsed_never_run(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("still here")
    source = f"import os\nos.remove({str(target)!r})\nraise SystemExit(3)\n"
    assert code_complexity([source])["parse_rate"] == 1.0
    assert looks_like_code([source])
    assert target.read_text() == "still here"


def test_markdown_fences_and_indentation():
    fenced = "Here is the code:\n```python\ndef f():\n    return 1\n```\nand more:\n```\ny = f()\n```"
    assert extract_code(fenced) == "def f():\n    return 1\n\n\ny = f()\n"
    assert parse_python(fenced) is not None
    assert parse_python("    x = 1\n    y = 2\n") is not None  # indented as in a prompt
    assert parse_python("x = 1\x00") is None  # null byte: ValueError, caught


def test_looks_like_code():
    assert looks_like_code(["def f(x):\n    return x", "import math", "print(1)", "not code ("])
    assert not looks_like_code(["hello", "not bad", "A sentence, with words.", "42"])
    assert not looks_like_code([])


# ----------------------------------------------------------------------------- text and per row
def test_text_complexity_and_row_scores():
    texts = ["one two three", "four", ""]
    result = text_complexity(texts)
    assert result["rows"] == 3
    assert result["tokens"] == {"mean": pytest.approx(4 / 3), "p50": 1.0, "p95": pytest.approx(2.8), "max": 3.0}
    assert result["chars"]["max"] == 13.0
    scores = row_scores(texts, kind="text")
    assert scores["tokens"].tolist() == [3.0, 1.0, 0.0]
    code = row_scores(["x = 1", "def (:"], kind="code")
    assert code["parsed"].tolist() == [True, False]
    assert code["nodes"][0] == 5 and np.isnan(code["nodes"][1])
    assert row_scores([{"a": {"b": 1}}], kind="record")["depth"].tolist() == [2.0]
    with pytest.raises(EvaluationError):
        row_scores(texts, kind="image")
