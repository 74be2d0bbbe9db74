"""Shared test data: a tiny dataset with every supported kind of field, and hypothesis strategies
that draw records consistent with a learned schema (values at the column's precision, categories
from the learned lists)."""

from __future__ import annotations

import functools

import datasets
import numpy as np
from hypothesis import strategies as st

from hf_synth.schema import FieldSchema, RecordSchema

F = datasets.Features
V = datasets.Value

N = 20

#: strings that are hard to escape; used for text columns in data and in drawn records
TRICKY_TEXTS = [
    'he said "hi"',
    "back\\slash \\n not a newline",
    "line one\nline two\r\n\ttabbed",
    "unicode: café naïve 日本語 😀 \u2028 \u00a0",
    "quote at end\"",
    "\\",
    "",
    "{\"json\": [1, 2]}, null",
    "\x00\x01 control",
]


@functools.lru_cache(maxsize=None)
def all_kinds_dataset() -> datasets.Dataset:
    """20 rows with one column per supported kind (and nested dicts and lists)."""
    i = range(N)
    long_note = "A long note, longer than any category may be. " * 4
    notes = [TRICKY_TEXTS[k % len(TRICKY_TEXTS)] + f" #{k}" for k in i]
    notes[3] = long_note
    notes[7] = None
    columns = {
        # ints: negative and very large
        "count": [-(10**18), 10**18] + [k * 37 - 200 for k in range(N - 2)],
        # floats with exactly two decimals
        "price": [round(k * 1.37 - 10, 2) for k in i],
        # float32 with one decimal
        "ratio32": [round(k * 0.3 - 2, 1) for k in i],
        # magnitudes beyond fixed notation
        "tiny_huge": [1e-30, 1e200, -2.5e-12, 3.0e17] + [k * 1.5 + 0.25 for k in range(N - 4)],
        "sci32": [1e30, -1e-20] + [k * 0.5 + 0.25 for k in range(N - 2)],
        # free text (long and high cardinality), sometimes missing
        "note": notes,
        # categories
        "city": [["Paris", "Zürich", None, "New \"York\""][k % 4] for k in i],
        "code": [[-3, 7, 12][k % 3] for k in i],
        "weight": [[0.5, 1.25, -3.0][k % 3] for k in i],
        "label": [[0, 2, 2, 1][k % 4] for k in i],
        "flag": [[True, False, None][k % 3] for k in i],
        # numbers stored as strings
        "sint": [str(k * 1001 - 5000) for k in i],
        "sdec": ["12345678901234567.125", "-0.500"] + [f"{k * 2.125 - 7:.3f}" for k in range(N - 2)],
        # nested dict
        "meta": [
            {"level": k % 3, "comment": f"comment {k}: " + "é\"\\\n" * (3 * k), "w": round(k * 0.7 - 3, 1)}
            for k in i
        ],
        # list of dicts and list of ints
        "calls": [
            [{"fn": ["get", "put"][(k + j) % 2], "arg": k * 10 + j} for j in range(k % 4)] for k in i
        ],
        "ids": [list(range(k, k + k % 5)) for k in i],
        # always missing
        "gone": [None] * N,
    }
    features = F(
        {
            "count": V("int64"),
            "price": V("float64"),
            "ratio32": V("float32"),
            "tiny_huge": V("float64"),
            "sci32": V("float32"),
            "note": V("string"),
            "city": V("string"),
            "code": V("int64"),
            "weight": V("float64"),
            "label": datasets.ClassLabel(names=["neg", "neu", "pos", "unused"]),
            "flag": V("bool"),
            "sint": V("string"),
            "sdec": V("string"),
            "meta": {"level": V("int32"), "comment": V("string"), "w": V("float64")},
            "calls": datasets.List({"fn": V("string"), "arg": V("int64")}),
            "ids": datasets.Sequence(V("int64")),
            "gone": V("string"),
        }
    )
    return datasets.Dataset.from_dict(columns, features=features)


@functools.lru_cache(maxsize=None)
def all_kinds_schema() -> RecordSchema:
    return RecordSchema.from_dataset(all_kinds_dataset())


EXPECTED_KINDS = {
    "count": "numeric", "price": "numeric", "ratio32": "numeric", "tiny_huge": "numeric",
    "sci32": "numeric", "note": "text", "city": "categorical", "code": "categorical",
    "weight": "categorical", "label": "categorical", "flag": "bool", "sint": "numeric",
    "sdec": "numeric", "meta": "struct", "calls": "list", "ids": "list", "gone": "null",
}


@functools.lru_cache(maxsize=None)
def tool_dataset() -> datasets.Dataset:
    """Nested JSON records shaped like tool (function) definitions."""
    types = ["string", "integer", "number", "boolean"]
    rows = []
    for k in range(12):
        props = [
            {"name": f"arg_{k}_{j}", "type": types[(k + j) % 4],
             "description": f"The {j}th argument of tool {k}: " + "déjà vu " * (k * j)}
            for j in range(k % 4)
        ]
        rows.append(
            {
                "name": f"tool_{k}",
                "description": f"Tool number {k} does \"thing\" {k}\nwith care. " + "More words. " * (k * 3),
                "parameters": {
                    "type": "object",
                    "properties": props,
                    "required": [p["name"] for p in props[: k % 3]],
                },
            }
        )
    return datasets.Dataset.from_list(rows)


# ---------------------------------------------------------------------------- strategies

_STRING = ("string", "large_string")
_FLOAT32 = ("float32", "float")


def text_strategy() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(TRICKY_TEXTS), st.text(max_size=30))


def _scaled_range(fs: FieldSchema) -> tuple[int, int]:
    scale = 10**fs.decimals
    return round(float(fs.minimum) * scale), round(float(fs.maximum) * scale)


def value_strategy(fs: FieldSchema, text: st.SearchStrategy[str] | None = None) -> st.SearchStrategy:
    """Values consistent with ``fs`` (missing values only where the field is nullable)."""
    text = text if text is not None else text_strategy()
    kind = fs.kind
    if kind == "null":
        return st.none()
    if kind == "numeric":
        base = _numeric_strategy(fs)
    elif kind in ("categorical", "bool"):
        if fs.dtype == "class_label":
            base = st.sampled_from([fs.label_names.index(c) for c in fs.categories])
        else:
            base = st.sampled_from(fs.categories)
    elif kind == "text":
        base = text
    elif kind == "struct":
        base = st.fixed_dictionaries({k: value_strategy(sub, text) for k, sub in fs.fields.items()})
    elif kind == "list":
        base = st.lists(value_strategy(fs.item, text), max_size=fs.max_items)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return st.one_of(st.none(), base) if fs.nullable else base


def _numeric_strategy(fs: FieldSchema) -> st.SearchStrategy:
    if fs.dtype in _STRING:
        if fs.decimals == 0:
            return st.integers(int(fs.minimum), int(fs.maximum)).map(str)
        d = fs.decimals
        lo, hi = _scaled_range(fs)

        def as_text(k: int) -> str:
            sign = "-" if k < 0 else ""
            digits = str(abs(k)).rjust(d + 1, "0")
            return f"{sign}{digits[:-d]}.{digits[-d:]}"

        return st.integers(lo, hi).map(as_text).filter(lambda t: fs.minimum <= float(t) <= fs.maximum)
    if fs.dtype.startswith(("int", "uint")):
        return st.integers(int(fs.minimum), int(fs.maximum))
    if fs.scientific:
        if fs.dtype in _FLOAT32:
            floats = st.floats(width=32, allow_nan=False, allow_infinity=False)
            special = [float(np.float32(x)) for x in (1e-30, 1e30, -3.4e38, 1e-45)]
        else:
            floats = st.floats(allow_nan=False, allow_infinity=False)
            special = [1e-30, 1e200, -1e-300, 5e-324, 1.7976931348623157e308, -0.0]
        return st.one_of(st.sampled_from(special), floats)
    d = fs.decimals
    lo, hi = _scaled_range(fs)
    cast = (lambda x: float(np.float32(x))) if fs.dtype in _FLOAT32 else float
    return st.integers(lo, hi).map(lambda k: cast(f"{k}e-{d}")).filter(lambda v: fs.minimum <= v <= fs.maximum)


def record_strategy(schema: RecordSchema, text: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({name: value_strategy(fs, text) for name, fs in schema.fields.items()})


# ---------------------------------------------------------------------------- a tiny "pretrained" tokenizer

EOS = "<|endoftext|>"


@functools.lru_cache(maxsize=None)
def tiny_gpt2_tokenizer(distinct_bos: bool = False):
    """A GPT-2-like tokenizer (byte-level BPE, bos == eos unless ``distinct_bos``) trained offline on
    a few hundred JSON-ish strings with digits, quotes, braces, escapes and unicode."""
    import json
    import random

    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "name", "type", "description", "string", "integer", "required",
             "properties", "parameters", "Paris", "Zürich", "café", "naïve", "日本", "😀", "null", "true"]
    corpus = []
    for _ in range(300):
        w = rng.sample(words, 3)
        corpus.append(json.dumps(
            {"name": w[0], "n": rng.randint(-1000, 10**6), "x": round(rng.uniform(-50, 50), 2),
             "t": " ".join(w) + ' "quoted" \\ back\nnewline\t', "ok": rng.random() < 0.5, "v": None,
             "l": [rng.randint(0, 99) for _ in range(rng.randint(0, 3))]},
            ensure_ascii=False,
        ))
    specials = [EOS, "<s>"] if distinct_bos else [EOS]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token="<s>" if distinct_bos else EOS, unk_token=EOS,
    )


def text_paths(schema: RecordSchema) -> list[str]:
    from hf_synth.schema import iter_paths

    return [p for p, fs in iter_paths(schema.fields) if fs.kind == "text"]


def training_texts(schema: RecordSchema, rows) -> list[str]:
    """Every free-text value of ``rows`` (to train the default tokenizer's BPE on)."""
    out: list[str] = []

    def walk(fs: FieldSchema, value) -> None:
        if value is None:
            return
        if fs.kind == "text":
            out.append(value)
        elif fs.kind == "struct":
            for k, sub in fs.fields.items():
                walk(sub, value.get(k))
        elif fs.kind == "list":
            for item in value:
                walk(fs.item, item)

    for row in rows:
        for name, fs in schema.fields.items():
            walk(fs, row.get(name))
    return out
