"""Records as token ids.

A record becomes a stream of *pieces* that mirror its JSON text (:mod:`hf_synth.codec`)::

    open("")  key("age") 3 9  key("workclass") cat("workclass", 4)  key("note") null  close("")

========================  ===============================  ====================================
piece                     JSON text                        default tokenizer
========================  ===============================  ====================================
``("open", path)``        ``{``                            one token (``<bos>`` at the root)
``("close", path)``       ``}``                            one token (``<eos>`` at the root)
``("key", path, first)``  ``"name": `` (``, "name": ``)    one token per field
``("cat", path, i)``      the category's JSON              one token per (field, category)
``("null",)``             ``null``                         one token
``("str_open",)``         ``"``                            one token, then text, then
``("str_close",)``        ``"``                            one token
``("list_open",)`` ...    ``[`` ``, `` ``]``               one token each
number characters         ``-0123456789.e+``               one token per character, or per two
                                                           digits (``digit_pairs``)
========================  ===============================  ====================================

Two vocabularies implement the pieces:

* :class:`RecordTokenizer` (the default) is built from the training data: every structural piece,
  column name and category is a single token, numbers are written with a token per two digits
  (:func:`number_chunks`), and free text uses a byte-level BPE trained on the data's text fields
  with the `tokenizers` library.
* :class:`PretrainedVocab` wraps any Hugging Face tokenizer: each piece is its JSON text tokenized
  by that tokenizer (several tokens, matched with a trie by :mod:`hf_synth.constraints`), digits
  are single-character tokens and free text is the tokenizer's own tokens.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from typing import Any, Iterable, Iterator

from .codec import category_text, format_number
from .errors import GeneratorLoadError, HFSynthError
from .schema import FieldSchema, RecordSchema, child_path, item_path, iter_paths, path_name

NUMBER_CHARS = "0123456789-.e+"
NUMBER_START_CHARS = "-0123456789"
DIGIT_PAIRS = [a + b for a in "0123456789" for b in "0123456789"]
_STRUCTURAL = ["<pad>", "<bos>", "<eos>", "<null>", "<str>", "</str>", "<list>", "<sep>", "</list>", "<obj>", "</obj>"]
RECORD_TOKENIZER_FILE = "record_tokenizer.json"


def piece_text(schema: RecordSchema, piece: tuple) -> str:
    """The JSON text a piece stands for."""
    kind = piece[0]
    if kind == "open":
        return "{"
    if kind == "close":
        return "}"
    if kind == "key":
        text = json.dumps(path_name(piece[1]), ensure_ascii=False) + ": "
        return text if piece[2] else ", " + text
    if kind == "cat":
        fs = field_at(schema, piece[1])
        return category_text(fs, fs.categories[piece[2]])
    if kind == "numkey":
        return piece_text(schema, ("key", piece[1], True)) + piece[2]
    return {"null": "null", "str_open": '"', "str_close": '"', "list_open": "[", "list_sep": ", ", "list_close": "]"}[kind]


def field_at(schema: RecordSchema, path: str) -> FieldSchema:
    """The field at a path (see :func:`hf_synth.schema.child_path`)."""
    cache = schema.__dict__.get("_paths")
    if cache is None:
        cache = schema.__dict__["_paths"] = dict(iter_paths(schema.fields))
    return cache[path]


class PieceVocab(ABC):
    """Maps pieces, number characters and free text to token ids (see the module docstring)."""

    pad_id: int
    eos_id: int
    vocab_size: int
    text_token_ids: list[int]
    #: True when each piece is one token, so a record's pieces need no trie.
    single_token_pieces: bool = False
    #: True when category tokens and the first character of a number also say which field they
    #: belong to (``("numkey", path, char)`` pieces), so the key piece before them is left out: a
    #: categorical field takes one token instead of two, a number one token less.
    keyed_categories: bool = False
    #: For vocabularies whose text tokens are JSON-escaped string content: per escape context
    #: (see :func:`escape_context_after`), ``{text token: context after it}``. ``None`` means every
    #: text token may follow any other and a string may end after any of them.
    text_moves: list[dict[int, int]] | None = None
    #: True when two digits in a row are one token (see :func:`number_chunks`): a record of
    #: amounts takes a quarter fewer tokens, and attention, the main cost of sampling a long
    #: record, grows with the square of its length.
    digit_pairs: bool = False

    @abstractmethod
    def piece_ids(self, piece: tuple) -> tuple[int, ...]:
        """See the module docstring."""

    @abstractmethod
    def char_id(self, char: str) -> int:
        """See the module docstring."""

    @abstractmethod
    def text_ids(self, text: str) -> list[int]:
        """See the module docstring."""

    @abstractmethod
    def decode_text(self, ids: list[int]) -> str:
        """See the module docstring."""

    @abstractmethod
    def token_repr(self, token_id: int) -> str:
        """See the module docstring."""


class RecordTokenizer(PieceVocab):
    """The default vocabulary, built from the training data.

    Column names and categories are single tokens, numbers are digit tokens (a token per two
    digits with ``digit_pairs``, see :func:`number_chunks`) and free text goes through a
    byte-level BPE trained on the data's text fields.
    """

    single_token_pieces = True
    keyed_categories = True

    def __init__(self, schema: RecordSchema, tokens: list[str], text_tokenizer_json: str | None):
        self.schema = schema
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}
        self.text_offset = len(tokens)
        self._text = None
        if text_tokenizer_json is not None:
            from tokenizers import Tokenizer

            self._text = Tokenizer.from_str(text_tokenizer_json)
            self._text_json = text_tokenizer_json
        text_size = self._text.get_vocab_size() if self._text is not None else 0
        self.vocab_size = len(tokens) + text_size
        self.text_token_ids = list(range(self.text_offset, self.vocab_size))
        self.pad_id = self.index["<pad>"]
        self.bos_id = self.index["<bos>"]
        self.eos_id = self.index["<eos>"]
        self.digit_pairs = f"<num:{DIGIT_PAIRS[0]}>" in self.index

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, schema: RecordSchema, texts: list[str], text_vocab_size: int = 2000,
              digit_pairs: bool = True) -> "RecordTokenizer":
        """Build the vocabulary for ``schema``; ``texts`` are the free-text values to train BPE on;
        ``digit_pairs`` adds a token for each two digits."""
        chunks = list(NUMBER_CHARS) + (DIGIT_PAIRS if digit_pairs else [])
        tokens = list(_STRUCTURAL) + [f"<num:{c}>" for c in chunks]
        for path, fs in iter_paths(schema.fields):
            if path_name(path) != "[]":
                tokens.append(f"<key:{path}>")
                if fs.kind == "numeric":
                    tokens.extend(f"<numkey:{path}={c}>" for c in NUMBER_START_CHARS)
            if fs.kind in ("categorical", "bool"):
                tokens.extend(f"<cat:{path}={i}>" for i in range(len(fs.categories)))
        text_json = None
        if any(fs.kind == "text" for _, fs in iter_paths(schema.fields)):
            text_json = _train_text_bpe(texts, text_vocab_size)
        return cls(schema, tokens, text_json)

    # ------------------------------------------------------------------ pieces
    def piece_ids(self, piece: tuple) -> tuple[int, ...]:
        return (self.index[self._piece_token(piece)],)

    def _piece_token(self, piece: tuple) -> str:
        kind = piece[0]
        if kind == "open":
            return "<bos>" if piece[1] == "" else "<obj>"
        if kind == "close":
            return "<eos>" if piece[1] == "" else "</obj>"
        if kind == "key":
            return f"<key:{piece[1]}>"
        if kind == "cat":
            return f"<cat:{piece[1]}={piece[2]}>"
        if kind == "numkey":
            return f"<numkey:{piece[1]}={piece[2]}>"
        return {"null": "<null>", "str_open": "<str>", "str_close": "</str>", "list_open": "<list>",
                "list_sep": "<sep>", "list_close": "</list>"}[kind]

    def char_id(self, char: str) -> int:
        return self.index[f"<num:{char}>"]  # a character, or two digits with digit_pairs

    def text_ids(self, text: str) -> list[int]:
        if self._text is None:
            raise HFSynthError("this tokenizer was built for data without free text")
        return [self.text_offset + i for i in self._text.encode(text).ids]

    def decode_text(self, ids: list[int]) -> str:
        return self._text.decode([i - self.text_offset for i in ids], skip_special_tokens=False)

    def token_repr(self, token_id: int) -> str:
        if token_id < self.text_offset:
            return self.tokens[token_id]
        return self._text.id_to_token(token_id - self.text_offset)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        data = {"type": "RecordTokenizer", "tokens": self.tokens,
                "text_tokenizer": json.loads(self._text_json) if self._text is not None else None}
        with open(os.path.join(directory, RECORD_TOKENIZER_FILE), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)

    @classmethod
    def load(cls, directory: str, schema: RecordSchema) -> "RecordTokenizer":
        path = os.path.join(directory, RECORD_TOKENIZER_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            text = data["text_tokenizer"]
            return cls(schema, data["tokens"], json.dumps(text) if text is not None else None)
        except FileNotFoundError:
            raise GeneratorLoadError(f"missing tokenizer file {path}") from None
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise GeneratorLoadError(f"corrupted tokenizer file {path}: {err}") from None


def _train_text_bpe(texts: list[str], vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts or [""], trainer=trainer)
    return tokenizer.to_str()


class PretrainedVocab(PieceVocab):
    """Pieces written with a pretrained Hugging Face tokenizer (for ``model="<id or path>"``).

    Each piece is its JSON text, tokenized on its own; free text is the JSON-escaped string content
    tokenized by the tokenizer. A token may end half way through an escape sequence (``\\`` then
    ``n``: byte-level pre-tokenizers split a backslash from the letter after it), so
    :attr:`text_moves` says which tokens may follow in each escape context; the automaton tracks the
    context and closes a string only outside an escape, so every sampled string parses.
    """

    def __init__(self, schema: RecordSchema, tokenizer: Any):
        self.schema = schema
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        eos = tokenizer.eos_token_id
        if eos is None:
            raise HFSynthError("the tokenizer has no eos_token; set one before fitting")
        self.eos_id = eos
        self.bos_id = tokenizer.bos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        self._pieces: dict[tuple, tuple[int, ...]] = {}
        self._chars = {c: self._single_token(c) for c in NUMBER_CHARS}
        special = set(tokenizer.all_special_ids)
        self.text_moves = [{} for _ in range(ESCAPE_CONTEXTS)]
        for token_id in range(self.vocab_size):
            if token_id in special:
                continue
            text = tokenizer.decode([token_id])
            if not text:
                continue
            for context, moves in enumerate(self.text_moves):
                after = escape_context_after(context, text)
                if after is not None:
                    moves[token_id] = after
        self.text_token_ids = sorted(set().union(*self.text_moves))
        quote = self._single_token('"')
        self._quote = quote

    def _single_token(self, char: str) -> int:
        ids = self.tokenizer(char, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            ids = [i for i in ids if self.tokenizer.decode([i]) == char]
        if len(ids) != 1:
            raise HFSynthError(f"the tokenizer has no single token for {char!r}; it cannot write numbers digit by digit")
        return ids[0]

    def piece_ids(self, piece: tuple) -> tuple[int, ...]:
        ids = self._pieces.get(piece)
        if ids is None:
            if piece[0] in ("str_open", "str_close"):
                ids = (self._quote,)
            else:
                ids = tuple(self.tokenizer(piece_text(self.schema, piece), add_special_tokens=False)["input_ids"])
                if piece == ("open", "") and self.bos_id is not None and self.bos_id != self.eos_id:
                    ids = (self.bos_id,) + ids
                if piece == ("close", ""):
                    ids = ids + (self.eos_id,)
            self._pieces[piece] = ids
        return ids

    def char_id(self, char: str) -> int:
        return self._chars[char]

    def text_ids(self, text: str) -> list[int]:
        escaped = json.dumps(text, ensure_ascii=False)[1:-1]
        return list(self.tokenizer(escaped, add_special_tokens=False)["input_ids"])

    def decode_text(self, ids: list[int]) -> str:
        return json.loads('"' + self.tokenizer.decode(ids) + '"')

    def token_repr(self, token_id: int) -> str:
        return self.tokenizer.convert_ids_to_tokens(token_id)


#: Escape contexts inside a JSON string: 0 outside an escape, 1 after a backslash, 2-5 after
#: ``\\u`` and 0-3 of its hex digits (only ``\\u00XX``, as ``json.dumps`` writes control characters).
ESCAPE_CONTEXTS = 6
_HEX = "0123456789abcdefABCDEF"


def escape_context_after(context: int, text: str) -> int | None:
    """The escape context after ``text`` (JSON string content) starting in ``context``, or
    ``None`` when ``text`` cannot continue a JSON string there (a raw quote or control character,
    an invalid escape)."""
    for char in text:
        if context == 0:
            if char == '"' or char < " ":
                return None
            if char == "\\":
                context = 1
        elif context == 1:
            if char == "u":
                context = 2
            elif char in '"\\/bfnrt':
                context = 0
            else:
                return None
        elif context in (2, 3):
            if char != "0":
                return None
            context += 1
        else:
            if char not in _HEX:
                return None
            context = 0 if context == 5 else context + 1
    return context


# ---------------------------------------------------------------------------- encoding


def record_to_pieces(schema: RecordSchema, record: dict, order: list[str] | None = None) -> Iterator[tuple[str, Any]]:
    """Yield ``(column, item)`` for a record, where ``item`` is a piece tuple, a number character
    (``("char", c)``) or free text (``("text", s, path)``); ``column`` is the top-level column it belongs to."""
    order = list(schema.fields) if order is None else order
    yield "", ("open", "")
    for i, name in enumerate(order):
        yield name, ("key", name, i == 0)
        for item in _value_pieces(schema.fields[name], name, record.get(name)):
            yield name, item
    yield "", ("close", "")


def _value_pieces(fs: FieldSchema, path: str, value: Any) -> Iterator[tuple]:
    if value is None:
        yield ("null",)
        return
    kind = fs.kind
    if kind == "numeric":
        for char in format_number(fs, value):
            yield ("char", char)
    elif kind in ("categorical", "bool"):
        if fs.dtype == "class_label":
            value = fs.label_names[value]
        try:
            yield ("cat", path, fs.categories.index(value))
        except ValueError:
            raise HFSynthError(f"{path}: {value!r} is not one of the known categories") from None
    elif kind == "text":
        yield ("str_open",)
        yield ("text", value, path)
        yield ("str_close",)
    elif kind == "struct":
        yield ("open", path)
        for i, (key, sub) in enumerate(fs.fields.items()):
            yield ("key", child_path(path, key), i == 0)
            yield from _value_pieces(sub, child_path(path, key), value.get(key))
        yield ("close", path)
    elif kind == "list":
        yield ("list_open",)
        for i, item in enumerate(value):
            if i:
                yield ("list_sep",)
            yield from _value_pieces(fs.item, item_path(path), item)
        yield ("list_close",)
    elif kind == "null":
        raise HFSynthError(f"{path}: expected a missing value, got {value!r}")


def encode_record(vocab: PieceVocab, schema: RecordSchema, record: dict, order: list[str] | None = None) -> list[int]:
    """Token ids of ``record`` with top-level columns in ``order``."""
    return encode_record_with_columns(vocab, schema, record, order)[0]


def encode_record_with_columns(vocab: PieceVocab, schema: RecordSchema, record: dict,
                               order: list[str] | None = None) -> tuple[list[int], list[str]]:
    """:func:`encode_record`, and the top-level column each token writes (its key or its value;
    ``""`` for the record's braces)."""
    ids: list[int] = []
    columns: list[str] = []
    for column, item in _digits_paired(vocab, _implied_keys_dropped(vocab, record_to_pieces(schema, record, order))):
        item_ids = _item_ids(vocab, item)
        ids.extend(item_ids)
        columns.extend([column] * len(item_ids))
    return ids, columns


def _implied_keys_dropped(vocab: PieceVocab, items: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Merge a key piece into the category or first number character after it (see
    ``keyed_categories``)."""
    if not vocab.keyed_categories:
        yield from items
        return
    pending = None
    for column, item in items:
        if pending is not None:
            key = pending[1]
            if item[0] == "cat" and item[1] == key[1]:
                pending = None
            elif item[0] == "char":
                item, pending = ("numkey", key[1], item[1]), None
            else:
                yield pending
                pending = None
        if item[0] == "key":
            pending = (column, item)
        else:
            yield column, item
    if pending is not None:
        yield pending


def number_chunks(text: str) -> list[str]:
    """The tokens of a number's text under ``digit_pairs``: the first character alone (it names
    the column when merged with its key), then each run of digits two at a time from the left, a
    last odd digit alone; signs, points and exponents alone.

    So a single digit after the first character always ends its run of digits, which is how the
    automaton keeps sampled numbers in this one tokenization:

        >>> number_chunks("140000"), number_chunks("-1234.5")
        (['1', '40', '00', '0'], ['-', '12', '34', '.', '5'])
    """
    chunks = list(text[:1])
    for char in text[1:]:
        last = chunks[-1]
        if char.isdigit() and len(chunks) > 1 and len(last) == 1 and last.isdigit():
            chunks[-1] = last + char
        else:
            chunks.append(char)
    return chunks


def _digits_paired(vocab: PieceVocab, items: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Merge the number characters of the item stream into :func:`number_chunks` (with
    ``digit_pairs``); the number's first item (a character, or a ``numkey``) stays as it is."""
    if not vocab.digit_pairs:
        yield from items
        return
    number: list[tuple[str, Any]] = []  # the items of the number being read

    def chunked() -> list[tuple[str, Any]]:
        column = number[0][0]
        _, *rest = number_chunks("".join(item[-1] for _, item in number))
        return [number[0]] + [(column, ("char", chunk)) for chunk in rest]

    for column, item in items:
        if item[0] == "char" and number:
            number.append((column, item))
            continue
        if number:
            yield from chunked()
            number = []
        if item[0] in ("char", "numkey"):
            number.append((column, item))
        else:
            yield column, item
    if number:
        yield from chunked()


def column_token_counts(vocab: PieceVocab, schema: RecordSchema, record: dict) -> dict[str, int]:
    """How many tokens each column takes in ``record`` (to explain records that are too long)."""
    counts: dict[str, int] = {}
    for column in encode_record_with_columns(vocab, schema, record)[1]:
        counts[column] = counts.get(column, 0) + 1
    return counts


def _item_ids(vocab: PieceVocab, item: tuple) -> list[int] | tuple[int, ...]:
    if item[0] == "char":
        return [vocab.char_id(item[1])]
    if item[0] == "text":
        return vocab.text_ids(item[1])
    return vocab.piece_ids(item)


def encode_prompt(vocab: PieceVocab, schema: RecordSchema, values: dict) -> list[int]:
    """Token ids that open a record and write the given columns (in the dict's order): the prompt
    of a conditioned sample."""

    def items() -> Iterator[tuple[str, Any]]:
        yield "", ("open", "")
        for i, (name, value) in enumerate(values.items()):
            yield name, ("key", name, i == 0)
            for item in _value_pieces(schema.fields[name], name, value):
                yield name, item

    ids: list[int] = []
    for _, item in _digits_paired(vocab, _implied_keys_dropped(vocab, items())):
        ids.extend(_item_ids(vocab, item))
    return ids
