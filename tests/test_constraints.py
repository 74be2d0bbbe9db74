"""RecordGrammar: every path through the automaton is a valid record; NumberFormat; parsing; the
logits processor."""

import functools
import math
import random
import re

import datasets
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_synth.codec import RecordCodec, format_number, parse_number
from hf_synth.constraints import NumberFormat, RecordGrammar, SchemaLogitsProcessor
from hf_synth.errors import HFSynthError
from hf_synth.schema import FieldSchema, RecordSchema
from hf_synth.tokenizer import PretrainedVocab, RecordTokenizer, encode_prompt, encode_record
from record_strategies import (
    all_kinds_dataset,
    all_kinds_schema,
    text_paths,
    tiny_gpt2_tokenizer,
    tool_dataset,
    training_texts,
)

TEXT_LIMIT = 6  # tokens per free-text field in random walks (keeps walks short)


# ---------------------------------------------------------------------------- fixtures


@functools.lru_cache(maxsize=None)
def table_dataset() -> datasets.Dataset:
    n = 24
    return datasets.Dataset.from_dict(
        {
            "age": [17 + (i * 7) % 60 for i in range(n)],
            "balance": [round((i - 10) * 12.34, 2) for i in range(n)],  # crosses zero
            "debt": [-round(500 + i * 3.5, 1) for i in range(n)],  # all negative
            "sex": [["Male", "Female"][i % 2] for i in range(n)],
            "workclass": [["Private", "State-gov", "Self-emp", None][i % 4] for i in range(n)],
            "zip": [str(10000 + i * 37) for i in range(n)],
            "label": [i % 2 for i in range(n)],
            "flag": [[True, False, None][i % 3] for i in range(n)],
            "note": [None if i % 6 == 0 else f"note {i}: " + "blah " * (i * 3) for i in range(n)],
            "empty": [None] * n,
        },
        features=datasets.Features(
            {
                "age": datasets.Value("int64"), "balance": datasets.Value("float64"),
                "debt": datasets.Value("float32"), "sex": datasets.Value("string"),
                "workclass": datasets.Value("string"), "zip": datasets.Value("string"),
                "label": datasets.ClassLabel(names=["<=50K", ">50K"]), "flag": datasets.Value("bool"),
                "note": datasets.Value("string"), "empty": datasets.Value("string"),
            }
        ),
    )


SCHEMAS = {
    "table": lambda: RecordSchema.from_dataset(table_dataset()),
    "all_kinds": all_kinds_schema,
    "tools": lambda: RecordSchema.from_dataset(tool_dataset()),
}
DATASETS = {"table": table_dataset, "all_kinds": all_kinds_dataset, "tools": tool_dataset}


@functools.lru_cache(maxsize=None)
def schema_of(name: str) -> RecordSchema:
    return SCHEMAS[name]()


@functools.lru_cache(maxsize=None)
def vocab_of(name: str, kind: str):
    schema = schema_of(name)
    if kind in ("record", "digits"):  # RecordTokenizer with a token per two digits (the default) / per digit
        return RecordTokenizer.build(schema, training_texts(schema, DATASETS[name]()), text_vocab_size=400,
                                     digit_pairs=kind == "record")
    return PretrainedVocab(schema, tiny_gpt2_tokenizer())


def make_grammar(name: str, kind: str, limit: int = TEXT_LIMIT, **kwargs) -> RecordGrammar:
    schema = schema_of(name)
    return RecordGrammar(schema, vocab_of(name, kind), text_limits={p: limit for p in text_paths(schema)}, **kwargs)


def allowed_tokens(g: RecordGrammar, state: int) -> list[int]:
    index = g.mask_index(state)  # before mask_table: it may add the row
    return torch.nonzero(g.mask_table()[index]).flatten().tolist()


def walk(g: RecordGrammar, rng: random.Random, state: int, check_disallowed: bool = True) -> list[int]:
    """Pick uniformly among the allowed tokens until the record is complete."""
    tokens = []
    vocab_size = g.vocab.vocab_size
    while not g.is_final(state):
        allowed = allowed_tokens(g, state)
        assert allowed, "dead end"
        if check_disallowed:  # the mask and the transitions agree
            other = rng.randrange(vocab_size)
            if other not in allowed:
                with pytest.raises(HFSynthError):
                    g.advance(state, other)
        token = rng.choice(allowed)
        state, _ = g.advance(state, token)
        tokens.append(token)
        assert len(tokens) < 20_000
    assert set(allowed_tokens(g, state)) == {g.vocab.eos_id, g.vocab.pad_id}
    return tokens


def check_valid(schema: RecordSchema, record: dict) -> None:
    assert schema.validate(record) == [], record
    codec = RecordCodec(schema)
    assert codec.decode(codec.encode(record)) == record


# ---------------------------------------------------------------------------- random walks


@pytest.mark.parametrize("kind", ["record", "digits", "pretrained"])
@pytest.mark.parametrize("name", ["table", "all_kinds", "tools"])
def test_random_walks_end_in_valid_records(name, kind):
    g = make_grammar(name, kind)
    schema = schema_of(name)
    rng = random.Random(f"{name}-{kind}")
    seen_nulls = 0
    for i in range(60):
        natural = i % 2 == 0
        tokens = walk(g, rng, g.initial_state(natural_order=natural))
        record = g.parse(tokens)
        check_valid(schema, record)
        assert set(record) == set(schema.columns)
        if g.vocab.single_token_pieces:  # the fast path for sampled ids agrees
            assert g.parse(tokens + [g.vocab.pad_id] * 3, trusted=True) == record
        if natural:
            assert list(record) == schema.columns
        seen_nulls += sum(v is None for v in record.values())
    if any(fs.nullable for fs in schema.fields.values()):
        assert seen_nulls > 0


def test_random_walks_respect_text_limits():
    g = make_grammar("table", "record", limit=3)
    schema = schema_of("table")
    text_ids = set(g.vocab.text_token_ids)
    rng = random.Random(1)
    lengths = set()
    for _ in range(30):
        tokens = walk(g, rng, g.initial_state(natural_order=True))
        lengths.add(sum(t in text_ids for t in tokens))  # "note" is the only text field
        check_valid(schema, g.parse(tokens))
    assert max(lengths) == 3
    # a text field without a limit only admits the empty string
    g0 = RecordGrammar(schema, vocab_of("table", "record"))
    for _ in range(10):
        record = g0.parse(walk(g0, rng, g0.initial_state(natural_order=True)))
        assert record["note"] in (None, "")


def test_pretrained_walks_with_escapes_parse_within_the_limit():
    """With a JSON-escaping vocab, strings may pass through escape sequences but always close."""
    g = make_grammar("table", "pretrained", limit=3)
    vocab = g.vocab
    escapes = {t for t in vocab.text_token_ids if "\\" in vocab.tokenizer.decode([t])}
    assert escapes
    rng = random.Random(2)
    escaped_notes = 0
    for _ in range(60):
        state, tokens = g.initial_state(natural_order=True), []
        while not g.is_final(state):  # like walk(), but prefer tokens with a backslash
            allowed = allowed_tokens(g, state)
            preferred = [t for t in allowed if t in escapes]
            token = rng.choice(preferred if preferred and rng.random() < 0.7 else allowed)
            state, _ = g.advance(state, token)
            tokens.append(token)
        record = g.parse(tokens)
        check_valid(schema_of("table"), record)
        note = record["note"]
        # characters that only an escape sequence can write
        escaped_notes += note is not None and any(c in '"\\' or c < " " for c in note)
    assert escaped_notes > 10


def test_walks_keep_numbers_in_range_and_at_precision():
    g = make_grammar("table", "record")
    schema = schema_of("table")
    rng = random.Random(3)
    for _ in range(60):
        record = g.parse(walk(g, rng, g.initial_state()))
        for name in ("age", "balance", "debt"):
            fs, value = schema.fields[name], record[name]
            assert fs.minimum <= value <= fs.maximum
            assert parse_number(fs, format_number(fs, value)) == value  # at the column's precision
        assert re.fullmatch(r"[1-9][0-9]*", record["zip"])
        assert schema.fields["zip"].minimum <= int(record["zip"]) <= schema.fields["zip"].maximum


def test_numeric_bounds_override_the_observed_range():
    g = make_grammar("table", "record", numeric_bounds={"age": (-5, 1234), "balance": (0, 0.5)})
    rng = random.Random(4)
    ages, balances = [], []
    for _ in range(80):
        record = g.parse(walk(g, rng, g.initial_state()))
        ages.append(record["age"])
        balances.append(record["balance"])
    assert all(-5 <= a <= 1234 for a in ages)
    assert all(0 <= b <= 0.5 for b in balances)
    assert max(ages) > schema_of("table").fields["age"].maximum or min(ages) < 0


def test_nonnull_columns_are_never_sampled_missing():
    g = make_grammar("all_kinds", "record")
    schema = schema_of("all_kinds")
    nullable = [c for c, fs in schema.fields.items() if fs.nullable and fs.kind != "null"]
    assert {"note", "city", "flag"} <= set(nullable)
    rng = random.Random(5)
    with_nulls = {c: 0 for c in nullable}
    for _ in range(40):
        free = g.parse(walk(g, rng, g.initial_state()))
        for c in nullable:
            with_nulls[c] += free[c] is None
        kept = g.parse(walk(g, rng, g.initial_state(natural_order=True, nonnull=nullable)))
        check_valid(schema, kept)
        assert all(kept[c] is not None for c in nullable)
    assert all(n > 0 for n in with_nulls.values())  # without the constraint they do occur


# ---------------------------------------------------------------------------- conditioned prefixes


@pytest.mark.parametrize("kind", ["record", "digits", "pretrained"])
@pytest.mark.parametrize("name", ["table", "all_kinds", "tools"])
def test_conditioned_prefixes_keep_the_given_values(name, kind):
    g = make_grammar(name, kind, limit=10_000)
    schema = schema_of(name)
    rows = list(DATASETS[name]())
    rng = random.Random(f"cond-{name}-{kind}")
    for _ in range(25):
        row = rng.choice(rows)
        given = rng.sample(schema.columns, rng.randint(1, len(schema.columns)))
        ids = encode_prompt(g.vocab, schema, {c: row[c] for c in given})
        state = g.with_natural_order(g.feed(g.initial_state(), ids))
        tokens = walk(g, rng, state, check_disallowed=False)
        record = g.parse(ids + tokens)
        assert all(record[c] == row[c] for c in given)
        rest = [c for c in schema.columns if c not in given]
        assert list(record) == list(given) + rest
        assert schema.validate(record) == []


@pytest.mark.parametrize("kind", ["record", "digits"])
def test_a_number_ends_at_the_next_piece_but_a_prompt_closes_it(kind):
    """Inside a record a number ends with the next piece, so a complete number admits more digits;
    at the end of a prompt (with_natural_order) the given number is complete and stays as given."""
    g = make_grammar("all_kinds", kind)
    vocab, schema = vocab_of("all_kinds", kind), schema_of("all_kinds")
    ids = encode_prompt(vocab, schema, {"count": 1})
    state = g.feed(g.initial_state(), ids)
    allowed = set(allowed_tokens(g, state))
    assert vocab.char_id("2") in allowed  # 12 is in range too
    if vocab.digit_pairs:
        assert vocab.char_id("23") in allowed  # and 123
    # 1 is complete: the next column (price, whose first digit token names it) may start
    price_starts = {vocab.piece_ids(("numkey", "price", c))[0] for c in "-0123456789"}
    assert allowed & price_starts
    closed = g.with_natural_order(state)
    allowed = set(allowed_tokens(g, closed))
    assert not allowed & {vocab.char_id(c) for c in "0123456789.e"}
    assert allowed <= price_starts | {vocab.piece_ids(("key", "price", False))[0]}  # the next column in order
    rng = random.Random(8)
    for _ in range(10):
        assert g.parse(ids + walk(g, rng, closed))["count"] == 1
    # an incomplete number is left open
    partial = g.with_natural_order(g.feed(g.initial_state(), ids[:1] + list(vocab.piece_ids(("numkey", "count", "-")))))
    nonzero = {vocab.char_id(c) for c in "123456789"}
    if vocab.digit_pairs:
        nonzero |= {vocab.char_id(c + d) for c in "123456789" for d in "0123456789"}
    assert set(allowed_tokens(g, partial)) == nonzero


def test_with_natural_order_restricts_the_next_key():
    for kind in ("record", "pretrained"):
        g = make_grammar("table", kind)
        vocab, schema = vocab_of("table", kind), schema_of("table")
        row = table_dataset()[0]
        start = vocab.piece_ids(("open", ""))
        state = g.feed(g.initial_state(), start)

        def first_tokens(column):
            """The first token after the opening of a record that starts with ``column``."""
            fs = schema.fields[column]
            values = [row[column]]
            if fs.kind in ("categorical", "bool"):
                values = [fs.label_names.index(c) for c in fs.categories] if fs.dtype == "class_label" else fs.categories
            if fs.nullable:
                values = values + [None]
            firsts = {encode_prompt(vocab, schema, {column: v})[len(start)] for v in values}
            if fs.kind == "numeric" and vocab.keyed_categories:
                # the first digit token names the column: every digit the range admits may start it
                starts = NumberFormat(fs).step("")[0]
                firsts |= {vocab.piece_ids(("numkey", column, c))[0] for c in starts}
            return firsts

        anywhere = set().union(*(first_tokens(c) for c in schema.columns))
        assert set(allowed_tokens(g, state)) == anywhere  # any column may come first
        natural = g.with_natural_order(state)
        assert set(allowed_tokens(g, natural)) == first_tokens(schema.columns[0])


# ---------------------------------------------------------------------------- parse errors


def test_parse_rejects_incomplete_and_disallowed_sequences():
    g = make_grammar("all_kinds", "record", limit=10_000)
    schema, vocab = schema_of("all_kinds"), g.vocab
    row = all_kinds_dataset()[5]
    ids = encode_record(vocab, schema, row)
    assert g.parse(ids) == row
    assert g.parse(ids + [vocab.pad_id, vocab.pad_id, vocab.eos_id]) == row  # padding is ignored
    for cut in (0, 1, len(ids) // 2, len(ids) - 1):
        with pytest.raises(HFSynthError, match="incomplete"):
            g.parse(ids[:cut])
    # a digit where a category is expected
    code_cat = vocab.piece_ids(("cat", "code", schema.fields["code"].categories.index(row["code"])))[0]
    bad = list(ids)
    bad[bad.index(code_cat)] = vocab.char_id("7")
    with pytest.raises(HFSynthError, match="not allowed"):
        g.parse(bad)
    # eos in the middle, a repeated key, a record that does not start with <bos>
    with pytest.raises(HFSynthError):
        g.parse(ids[:3] + [vocab.eos_id] + ids[3:])
    key = vocab.piece_ids(("key", "count", True))[0]
    with pytest.raises(HFSynthError):
        g.parse(ids[:-1] + [key] + ids[2:])
    with pytest.raises(HFSynthError):
        g.parse(ids[1:])


def test_feed_memoises_transitions_but_still_rejects_tokens_not_allowed():
    g = make_grammar("table", "record", limit=200)
    vocab, schema = g.vocab, schema_of("table")
    ids = encode_record(vocab, schema, table_dataset()[3])
    stepped = g.initial_state()
    for token in ids:
        stepped, _ = g.advance(stepped, token)
    assert g.feed(g.initial_state(), ids) == stepped and g.is_final(stepped)
    assert g.feed(g.initial_state(), ids) == stepped  # from the memoised transitions
    g.next_states([stepped], [vocab.eos_id])  # sampling keeps a finished row where it is...
    with pytest.raises(HFSynthError):
        g.feed(g.initial_state(), ids + [vocab.eos_id])  # ...but a prompt cannot go on after the end
    with pytest.raises(HFSynthError):
        g.feed(g.initial_state(), ids[:2] + [ids[0]])


def test_parse_rejects_out_of_range_numbers():
    g = make_grammar("table", "record")
    vocab, schema = g.vocab, schema_of("table")
    row = dict(table_dataset()[0])
    with pytest.raises(HFSynthError):
        g.parse(encode_record(vocab, schema, {**row, "age": schema.fields["age"].maximum + 1}))
    with pytest.raises(HFSynthError):
        g.parse(encode_record(vocab, schema, {**row, "balance": schema.fields["balance"].minimum - 0.01}))
    with pytest.raises(HFSynthError):
        g.parse(encode_record(vocab, schema, {**row, "empty": None, "sex": None}))  # never missing


# ---------------------------------------------------------------------------- NumberFormat


def reachable(nf: NumberFormat, cap: int = 50_000) -> set[str]:
    """Every complete number the format admits (depth first over step())."""
    out, stack = set(), [""]
    while stack:
        prefix = stack.pop()
        chars, complete = nf.step(prefix)
        assert chars or complete, f"dead end at {prefix!r}"
        if complete:
            out.add(prefix)
        stack.extend(prefix + c for c in chars)
        assert len(out) < cap
    return out


def written(k: int, decimals: int) -> str:
    """The canonical text of k / 10**decimals."""
    if decimals == 0:
        return str(k)
    sign = "-" if k < 0 else ""
    digits = str(abs(k)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def numeric(lo, hi, decimals=0, dtype="float64", scientific=False) -> FieldSchema:
    return FieldSchema(kind="numeric", dtype=dtype, minimum=lo, maximum=hi, decimals=decimals, scientific=scientific)


def expected_numbers(lo_k: int, hi_k: int, decimals: int) -> set[str]:
    return {written(k, decimals) for k in range(lo_k, hi_k + 1)}


def without_negative_zero(numbers: set[str], decimals: int) -> set[str]:
    # "-0.00" is an alias of zero that format_number writes for -0.0; nothing else may differ
    return numbers - {"-" + written(0, decimals)} if decimals else numbers


@pytest.mark.parametrize(
    "lo,hi",
    [(0, 100), (-12, 7), (-500, -20), (5, 5), (0, 0), (-1, 0), (9, 11), (95, 1003), (-1003, -995)],
)
def test_integer_ranges_are_exact(lo, hi):
    nf = NumberFormat(numeric(lo, hi, dtype="int64"))
    assert reachable(nf) == expected_numbers(lo, hi, 0)


@pytest.mark.parametrize(
    "lo,hi,decimals",
    [(1.5, 2.25, 2), (-1.5, 0.3, 1), (-3.25, -0.5, 2), (0, 0.05, 3), (-0.5, 0.5, 1), (12.5, 130.0, 1), (-2.0, 2.0, 2)],
)
def test_decimal_ranges_are_exact(lo, hi, decimals):
    nf = NumberFormat(numeric(lo, hi, decimals))
    scale = 10**decimals
    got = reachable(nf)
    assert without_negative_zero(got, decimals) == expected_numbers(round(lo * scale), round(hi * scale), decimals)
    if "-" + written(0, decimals) in got:
        assert lo < 0 <= hi


@settings(max_examples=40, deadline=None)
@given(lo=st.integers(-2000, 2000), width=st.integers(0, 300), decimals=st.integers(0, 2))
def test_random_ranges_are_exact(lo, width, decimals):
    hi = lo + width
    fs = numeric(lo / 10**decimals, hi / 10**decimals, decimals) if decimals else numeric(lo, hi, dtype="int64")
    got = reachable(NumberFormat(fs))
    assert without_negative_zero(got, decimals) == expected_numbers(lo, hi, decimals)
    for text in got:  # no leading zeros
        assert not re.match(r"-?0[0-9]", text)


def completions(nf: NumberFormat, prefix: str) -> set[str]:
    """Every suffix that turns prefix into a complete number."""
    out, stack = set(), [""]
    while stack:
        suffix = stack.pop()
        chars, complete = nf.step(prefix + suffix)
        if complete:
            out.add(suffix)
        stack.extend(suffix + c for c in chars)
    return out


@settings(max_examples=30, deadline=None)
@given(lo=st.integers(-3000, 3000), width=st.integers(0, 4000), decimals=st.integers(0, 2))
def test_prefixes_of_one_class_have_the_same_completions(lo, width, decimals):
    """A representative stands for its prefix in the automaton's state: it must be continued in
    exactly the same ways, and prefixes are merged into few classes."""
    hi = lo + width
    fs = numeric(lo / 10**decimals, hi / 10**decimals, decimals) if decimals else numeric(lo, hi, dtype="int64")
    nf = NumberFormat(fs)
    prefixes, stack = [], [""]
    while stack:
        prefix = stack.pop()
        prefixes.append(prefix)
        stack.extend(prefix + c for c in nf.step(prefix)[0])
    for prefix in prefixes:
        representative = nf.representative(prefix)
        if representative != prefix:
            assert completions(nf, representative) == completions(nf, prefix), (prefix, representative)
    # up to ~4,400 prefixes: a few cut by each bound at each length, the rest merged by length
    assert len({nf.representative(p) for p in prefixes}) <= 200


@pytest.mark.parametrize("lo,hi,decimals", [(-1003, 1003, 0), (95, 1003, 0), (-120, -3, 0), (-10.5, 20.25, 2), (0, 0.995, 3)])
def test_digit_pairs_write_each_number_one_way(lo, hi, decimals):
    """With a token per two digits, the automaton admits every number of the range, each in exactly
    the tokenization encode_record writes: a lone digit only ends a run of digits."""
    scale = 10**decimals
    values = [round(lo + (hi - lo) * i / 49, decimals) if decimals else lo + (hi - lo) * i // 49 for i in range(50)]
    schema = RecordSchema.from_dataset(datasets.Dataset.from_dict({"x": values}))
    fs = schema.fields["x"]
    assert (fs.kind, fs.decimals, fs.minimum, fs.maximum) == ("numeric", decimals, lo, hi)
    vocab = RecordTokenizer.build(schema, [], digit_pairs=True)
    g = RecordGrammar(schema, vocab)
    paths, stack = [], [(g.initial_state(), [])]
    while stack:  # every token sequence the automaton admits
        state, tokens = stack.pop()
        if g.is_final(state):
            paths.append(tokens)
            continue
        allowed = allowed_tokens(g, state)
        assert allowed, f"dead end after {tokens}"
        stack.extend((g.advance(state, t)[0], tokens + [t]) for t in allowed)
    numbers = [format_number(fs, g.parse(path)["x"]) for path in paths]
    assert len(set(numbers)) == len(numbers)  # no number in two ways
    assert without_negative_zero(set(numbers), decimals) == expected_numbers(round(lo * scale), round(hi * scale), decimals)
    for path in paths:
        assert path == encode_record(vocab, schema, g.parse(path))
    assert any(len(vocab.token_repr(t)) > len("<num:0>") for t in paths[0])  # pairs are used


def test_bounds_override_the_field_range():
    fs = numeric(0, 10, dtype="int64")
    assert reachable(NumberFormat(fs, bounds=(-3, 250))) == expected_numbers(-3, 250, 0)
    fs = numeric(0.0, 1.0, decimals=1)
    assert without_negative_zero(reachable(NumberFormat(fs, bounds=(-0.3, 0.2))), 1) == expected_numbers(-3, 2, 1)


def test_huge_integer_range():
    nf = NumberFormat(numeric(-(10**18), 10**18, dtype="int64"))
    top = str(10**18)
    assert nf.step(top) == ("", True)
    assert nf.step(top[:-1]) == ("0", True)  # 10**17, and 10**18 is the only 19-digit number
    assert nf.step("9" * 17) == ("0123456789", True)  # 18 digits are all below 10**18
    assert nf.step("9" * 18) == ("", True)
    assert nf.step("2" + "0" * 17) == ("", True)
    assert nf.step("-" + top) == ("", True)
    assert nf.step("")[0] == "-0123456789"
    assert nf.step("0") == ("", True)
    rng = random.Random(6)
    for _ in range(200):
        text = random_number(nf, rng)
        assert -(10**18) <= int(text) <= 10**18 and str(int(text)) == text


def random_number(nf: NumberFormat, rng: random.Random) -> str:
    prefix = ""
    while True:
        chars, complete = nf.step(prefix)
        options = list(chars) + ([None] if complete else [])
        choice = rng.choice(options)
        if choice is None:
            return prefix
        prefix += choice


SCIENTIFIC = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?(e[-+]?[0-9]+)?")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scientific_numbers_are_well_formed_and_finite(dtype):
    nf = NumberFormat(numeric(-2.5e-12, 1e200, dtype=dtype, scientific=True))
    rng = random.Random(dtype)
    for _ in range(500):
        text = random_number(nf, rng)
        assert SCIENTIFIC.fullmatch(text), text
        assert len(text) <= NumberFormat.MAX_SCIENTIFIC_CHARS
        value = float(text)
        assert math.isfinite(value)
        if dtype == "float32":
            assert abs(value) <= 3.4028234663852886e38


@pytest.mark.parametrize("value", [1e-30, 1e200, -2.5e-12, 1.7976931348623157e308, -1.2345678901234567e-300, 0.5, 0.0])
def test_scientific_accepts_python_reprs(value):
    nf = NumberFormat(numeric(-1.0, 1.0, scientific=True))
    text = repr(value)
    for i, char in enumerate(text):
        assert char in nf.step(text[:i])[0]
    assert nf.step(text)[1]


def test_scientific_refuses_overflow():
    nf = NumberFormat(numeric(-1.0, 1.0, scientific=True))
    assert "9" not in nf.step("1e30")[0]  # 1e309 is not a float
    assert nf.step("1e-30")[0] == "0123456789"  # tiny is fine
    f32 = NumberFormat(numeric(-1.0, 1.0, dtype="float32", scientific=True))
    assert "9" not in f32.step("1e3")[0]  # 1e39 is not a float32


# ---------------------------------------------------------------------------- logits processor


def test_logits_processor_masks_each_row_by_its_state():
    g = make_grammar("table", "record", limit=200)
    vocab, schema = g.vocab, schema_of("table")
    row = table_dataset()[3]
    ids = encode_record(vocab, schema, row)
    states = [
        g.initial_state(),
        g.feed(g.initial_state(), ids[:1]),
        g.feed(g.initial_state(), ids[:4]),
        g.feed(g.initial_state(), ids),  # complete: only eos / pad
    ]
    assert g.is_final(states[3])
    prompt_length = 5
    input_ids = torch.zeros((len(states), prompt_length), dtype=torch.long)
    proc = SchemaLogitsProcessor(g, states, prompt_length)
    rng = random.Random(7)
    torch.manual_seed(0)
    extra = 7  # models often have more logits than tokenizer entries
    for step in range(12):
        scores = torch.randn(len(states), vocab.vocab_size + extra)
        out = proc(input_ids, scores.clone())
        next_tokens = []
        for r, state in enumerate(proc.states):
            expected = allowed_by_transitions(g, state)
            finite = set(torch.isfinite(out[r]).nonzero().flatten().tolist())
            assert finite == expected
            keep = sorted(expected)
            assert torch.equal(out[r, keep], scores[r, keep])
            assert torch.all(out[r, vocab.vocab_size:] == float("-inf"))
            next_tokens.append(rng.choice(keep))
        input_ids = torch.cat([input_ids, torch.tensor(next_tokens)[:, None]], dim=1)
        # the processor advances its rows with the tokens appended to input_ids
        before = list(proc.states)
        proc(input_ids, torch.randn(len(states), vocab.vocab_size + extra))
        for r, token in enumerate(next_tokens):
            want = before[r] if g.is_final(before[r]) else g.advance(before[r], token)[0]
            assert proc.states[r] == want


def allowed_by_transitions(g: RecordGrammar, state: int) -> set[int]:
    """The tokens advance() accepts (or eos / pad after the end), found without the mask."""
    if g.is_final(state):
        return {g.vocab.eos_id, g.vocab.pad_id}
    ok = set()
    for token in range(g.vocab.vocab_size):
        try:
            g.advance(state, token)
        except HFSynthError:
            continue
        ok.add(token)
    return ok


@pytest.mark.parametrize("dense_rows", [None, 3])
@pytest.mark.parametrize("name", ["table", "tools"])
def test_batched_stepping_follows_the_automaton(name, dense_rows):
    """next_state_tensor / mask_index_tensor give what advance() and mask_index() give, row by row,
    also when the dense table holds only a few states and the rest are looked up one by one."""
    g = make_grammar(name, "record")
    if dense_rows is not None:
        g.DENSE_ENTRIES = dense_rows * g.vocab.vocab_size
    rng = random.Random(3)
    states = torch.tensor([g.initial_state(natural_order=True)] * 6 + [g.initial_state()] * 6)
    for _ in range(60):
        rows = g.mask_index_tensor(states)
        masks = g.mask_table()[rows]
        tokens = []
        for row, state in enumerate(states.tolist()):
            assert masks[row].nonzero().flatten().tolist() == allowed_tokens(g, state)
            tokens.append(rng.choice(allowed_tokens(g, state)))
        # twice: the second call reads what the first one wrote into the dense table
        for _ in range(2):
            stepped = g.next_state_tensor(states, torch.tensor(tokens))
            assert stepped.tolist() == g.next_states(states.tolist(), tokens)
        states = stepped
    assert any(g.is_final(s) for s in states.tolist())
    assert g._next_dense.shape[0] <= g.DENSE_ENTRIES // g.vocab.vocab_size
