"""Schema-constrained decoding: a token automaton that only admits valid records.

:class:`RecordGrammar` is a deterministic automaton over token ids, built lazily from a
:class:`~hf_synth.schema.RecordSchema` and a :class:`~hf_synth.tokenizer.PieceVocab`. In every state
it knows which tokens may come next:

* a struct: the next key (the next column in natural order while sampling, any remaining key while
  parsing a conditioned prompt), each key exactly once, and the closing brace only when every key
  has been written;
* a categorical field: one of its categories (a trie when a category is several tokens);
* a numeric field: digits that keep the number well formed and inside its range, with exactly the
  column's number of decimals, ending only when the number is complete;
* a free-text field: text tokens up to the longest value seen in training, then the closing quote;
* a list: items up to the longest list seen in training;
* ``null`` only for fields that were missing in training (and not for fields being imputed).

Every path through the automaton ends in a valid record, so constrained sampling never needs to
reject a row. The same automaton parses token ids back into records (:meth:`RecordGrammar.parse`).
:class:`SchemaLogitsProcessor` plugs it into `transformers`' ``generate``.

States are interned as integers and every transition and mask is computed once. While sampling,
transitions already taken and masks already computed are read from dense tensors, so a step of a
whole batch costs a few gathers; only states and tokens never seen before run Python. Several
threads may sample with one automaton (see :mod:`hf_synth.sampling`): what numbers states and
masks is done under a lock, and every other cache only ever gains entries that are the same
whichever thread computes them.
"""

from __future__ import annotations

import sys
import threading
from functools import lru_cache
from typing import Any, Iterable

import torch
from transformers import LogitsProcessor

from .codec import parse_number
from .errors import HFSynthError
from .schema import FieldSchema, RecordSchema, child_path, item_path, iter_paths, path_name
from .tokenizer import DIGIT_PAIRS, NUMBER_CHARS, NUMBER_START_CHARS, PieceVocab, field_at

State = tuple
_DIGITS = "0123456789"


class NumberFormat:
    """Which characters may extend a number of one column.

    Fixed-notation numbers are handled as scaled integers (``value * 10**decimals``) with Python's
    unbounded ints, so the range check is exact for any magnitude. Scientific-notation columns
    (magnitudes beyond fixed notation) are checked for form, and for staying finite in the column's
    dtype (``1e999`` would parse as ``inf``, which JSON cannot hold).
    """

    MAX_SCIENTIFIC_CHARS = 24

    def __init__(self, fs: FieldSchema, bounds: tuple[float, float] | None = None):
        self.scientific = fs.scientific
        self.max_abs = _MAX_ABS.get(fs.dtype, sys.float_info.max)
        self.decimals = fs.decimals
        low, high = bounds if bounds is not None else (fs.minimum, fs.maximum)
        scale = 10**self.decimals
        self.low, self.high = _scaled(low, scale), _scaled(high, scale)
        self.max_int_digits = len(str(max(abs(self.low), abs(self.high)) // scale))
        self._representatives: dict[tuple, str] = {}

    def representative(self, prefix: str) -> str:
        """The first prefix seen that may be continued exactly as ``prefix`` may.

        Sampling keeps the representative in the automaton's state, so the states of a column are
        its classes of prefixes, not every prefix of every sampled number (a 7-digit amount has
        millions): transitions and masks stay few enough to be computed once and looked up.
        """
        key = self._continuation_class(prefix)
        if key is None:
            return prefix
        return self._representatives.setdefault(key, prefix)

    def _continuation_class(self, prefix: str) -> tuple | None:
        """A key shared by exactly the prefixes with the same continuations, or ``None`` for a
        prefix kept as itself (a range bound cuts through its completions, or it is a sign)."""
        if self.scientific:
            return None
        negative, integer, dot, fraction = self._split(prefix)
        if not integer:
            return None
        # every completion of one length is a range of values: wholly inside the column's range,
        # wholly outside it, or cut by a bound; the form of what may follow depends on the lengths
        inside = []
        for lo, hi in self._magnitudes(integer, dot, fraction):
            if negative:
                lo, hi = -hi, -lo
            if self.low <= lo and hi <= self.high:
                inside.append(True)
            elif hi < self.low or lo > self.high:
                inside.append(False)
            else:
                return None
        return negative, integer == "0", len(integer), dot, len(fraction), tuple(inside)

    @lru_cache(maxsize=None)
    def step(self, prefix: str) -> tuple[str, bool]:
        """``(characters that may follow prefix, whether prefix is a complete number)``."""
        if self.scientific:
            allowed, complete = _scientific_step(prefix, self.MAX_SCIENTIFIC_CHARS)
            allowed = "".join(c for c in allowed if self._finite(prefix + c))
            return allowed, complete and self._finite(prefix)
        candidates = self._candidates(prefix)
        negative, integer, dot, _ = self._split(prefix)
        if integer and integer != "0" and not dot:
            # a digit extends the integer part: the feasible digits follow from the range directly
            digits = self._integer_digits(negative, int(integer), len(integer))
            allowed = "".join(c for c in candidates if c in digits or (c == "." and self._feasible(prefix + c)))
        else:
            allowed = "".join(c for c in candidates if self._feasible(prefix + c))
        return allowed, self._complete(prefix)

    def _integer_digits(self, negative: bool, head: int, length: int) -> set[str]:
        """Digits d for which the integer part ``head * 10 + d`` (plus any further digits and the
        decimals) can still end inside the range; one range per count of further digits."""
        low, high = (-self.high, -self.low) if negative else (self.low, self.high)
        digits: set[str] = set()
        for extra in range(self.max_int_digits - length):
            unit = 10**extra * 10**self.decimals  # magnitudes covered by one value of the new head
            first = max(0, -(-(low + 1) // unit) - 1 - head * 10)  # (h + 1) * unit - 1 >= low
            last = min(9, high // unit - head * 10)  # h * unit <= high
            digits.update(str(d) for d in range(first, last + 1))
        return digits

    def _finite(self, prefix: str) -> bool:
        """Whether a scientific-notation prefix can still end in a finite number of the column's
        dtype: only a positive exponent can overflow (a mantissa has at most 24 characters)."""
        _, e, exponent = prefix.partition("e")
        if not e or exponent in ("", "+") or exponent.startswith("-"):
            return True
        return abs(float(prefix)) <= self.max_abs

    def _split(self, prefix: str) -> tuple[bool, str, bool, str]:
        negative = prefix.startswith("-")
        body = prefix[1:] if negative else prefix
        integer, dot, fraction = body.partition(".")
        return negative, integer, bool(dot), fraction

    def _candidates(self, prefix: str) -> str:
        negative, integer, dot, fraction = self._split(prefix)
        if dot:
            return _DIGITS if len(fraction) < self.decimals else ""
        point = "." if self.decimals and integer else ""
        if not integer:
            sign = "-" if not prefix and self.low < 0 else ""
            first = "123456789" if negative and not self.decimals else _DIGITS
            return sign + first
        if integer == "0":
            return point
        return (_DIGITS if len(integer) < self.max_int_digits else "") + point

    def _magnitudes(self, integer: str, dot: bool, fraction: str) -> Iterable[tuple[int, int]]:
        scale = 10**self.decimals
        if dot:
            rest = 10 ** (self.decimals - len(fraction))
            base = int(integer) * scale + int(fraction or "0") * rest
            yield base, base + rest - 1
        elif not integer:
            yield 0, 10 ** (self.max_int_digits) * scale - 1
        elif integer == "0":
            yield 0, scale - 1
        else:
            head = int(integer)
            for extra in range(self.max_int_digits - len(integer) + 1):
                yield head * 10**extra * scale, ((head + 1) * 10**extra - 1) * scale + scale - 1

    def _feasible(self, prefix: str) -> bool:
        negative, integer, dot, fraction = self._split(prefix)
        for lo, hi in self._magnitudes(integer, dot, fraction):
            if negative:
                lo, hi = -hi, -lo
            if lo <= self.high and hi >= self.low:
                return True
        return False

    def _complete(self, prefix: str) -> bool:
        negative, integer, dot, fraction = self._split(prefix)
        if not integer or (self.decimals and (not dot or len(fraction) != self.decimals)):
            return False
        value = int(integer) * 10**self.decimals + int(fraction or "0")
        value = -value if negative else value
        return self.low <= value <= self.high


_MAX_ABS = {"float32": 3.4028234663852886e38, "float": 3.4028234663852886e38, "float16": 65504.0, "halffloat": 65504.0}


def _scaled(value: float | int, scale: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value * scale
    return round(float(value) * scale)


# state of the scientific-notation DFA for a prefix: -?(0|[1-9]d*)(.d+)?(e[-+]?d+)?
_SCI_MOVES = {
    "start": {"-": "sign", "0": "zero", **{d: "int" for d in "123456789"}},
    "sign": {"0": "zero", **{d: "int" for d in "123456789"}},
    "zero": {".": "dot", "e": "e"},
    "int": {**{d: "int" for d in _DIGITS}, ".": "dot", "e": "e"},
    "dot": {d: "frac" for d in _DIGITS},
    "frac": {**{d: "frac" for d in _DIGITS}, "e": "e"},
    "e": {"-": "esign", "+": "esign", **{d: "exp" for d in _DIGITS}},
    "esign": {d: "exp" for d in _DIGITS},
    "exp": {d: "exp" for d in _DIGITS},
}
_SCI_FINAL = {"zero", "int", "frac", "exp"}


# fewest characters that complete a number from each DFA state
_SCI_TO_FINAL = {"start": 1, "sign": 1, "dot": 1, "e": 1, "esign": 1, "zero": 0, "int": 0, "frac": 0, "exp": 0}


def _scientific_step(prefix: str, max_chars: int) -> tuple[str, bool]:
    state = "start"
    for char in prefix:
        state = _SCI_MOVES[state][char]
    room = max_chars - len(prefix) - 1
    allowed = "".join(c for c, nxt in _SCI_MOVES[state].items() if _SCI_TO_FINAL[nxt] <= room)
    return allowed, state in _SCI_FINAL


class RecordGrammar:
    """A token automaton that accepts exactly the valid records of a schema (see module docstring).

    Args:
        schema: The record schema.
        vocab: How pieces map to token ids.
        text_limits: Maximum number of tokens of each free-text field, by path.
        numeric_bounds: Optional ``{column: (low, high)}`` replacing the observed range of numbers.
    """

    DENSE_ENTRIES = 1 << 24  # int32 next-state entries (64 MB) kept for batched stepping

    def __init__(
        self,
        schema: RecordSchema,
        vocab: PieceVocab,
        text_limits: dict[str, int] | None = None,
        numeric_bounds: dict[str, tuple[float, float]] | None = None,
    ):
        self.schema = schema
        self.vocab = vocab
        self.text_limits = text_limits or {}
        self.columns = list(schema.fields)
        self._column_bit = {name: 1 << i for i, name in enumerate(self.columns)}
        self._numbers = {}
        for path, fs in _numeric_paths(schema):
            self._numbers[path] = NumberFormat(fs, (numeric_bounds or {}).get(path))
        # text tokens per escape context (one context, 0, unless the vocab escapes its text)
        moves = vocab.text_moves
        self._text_moves = moves if moves is not None else [dict.fromkeys(vocab.text_token_ids, 0)]
        self._text_reach = _steps_to_plain(self._text_moves)
        self._text_worst = [max((self._text_reach[c] for c in set(m.values())), default=0) for m in self._text_moves]
        self._states: list[State] = []
        self._state_ids: dict[State, int] = {}
        self._tables: dict[int, dict[int, tuple[int, Any]]] = {}
        self._mask_of_state: list[int | None] = []
        self._mask_keys: dict[frozenset, int] = {}
        self._mask_rows: list[torch.Tensor] = []
        self._mask_tensor: torch.Tensor | None = None
        self._transitions: dict[tuple[int, int], int] = {}
        # the characters, or two digits, that a number token writes
        self._chunk_of = {vocab.char_id(c): c for c in list(NUMBER_CHARS) + (DIGIT_PAIRS if vocab.digit_pairs else [])}
        self._number_steps_of: dict[tuple, tuple[tuple[str, ...], bool]] = {}
        self._number_masks: dict[tuple, int] = {}
        self._token_events: dict[int, tuple] | None = None
        self._next_dense = torch.empty((0, vocab.vocab_size), dtype=torch.int32)
        self._mask_dense = torch.empty((0,), dtype=torch.int32)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ public API
    def initial_state(self, natural_order: bool = False, nonnull: Iterable[str] = ()) -> int:
        """The start state; ``nonnull`` columns may not be sampled as missing (for imputation)."""
        bits = 0
        for name in nonnull:
            bits |= self._column_bit[name]
        return self._intern(((("S", "", 0, natural_order, bits),), ("V0",)))

    def with_natural_order(self, state_id: int) -> int:
        """The same state, but from now on the remaining columns come in their natural order.

        Called at the end of a prompt, which writes whole values: a complete number there is
        closed (otherwise sampling could append digits to a given value).
        """
        frames, mode = self._states[state_id]
        if mode[0] == "N" and self._numbers[mode[1]].step(mode[2])[1]:
            mode = ("A",)
        kind, path, emitted, _, nonnull = frames[0]
        return self._intern(((("S", path, emitted, True, nonnull),) + frames[1:], mode))

    def is_final(self, state_id: int) -> bool:
        return self._states[state_id][1] == ("E",)

    def advance(self, state_id: int, token: int) -> tuple[int, Any]:
        """Next state and event after ``token``; raises ``HFSynthError`` if the token is not allowed."""
        state = self._states[state_id]
        mode = state[1]
        if mode[0] == "T":
            after = self._text_moves[mode[3]].get(token)
            if after is not None and mode[2] + 1 + self._text_reach[after] <= self.text_limits.get(mode[1], 0):
                return self._intern((state[0], ("T", mode[1], mode[2] + 1, after))), ("text", token)
        if mode[0] == "N":
            chunk = self._chunk_of.get(token)
            if chunk is not None and chunk in self._number_steps(mode)[0]:
                closes_run = self.vocab.digit_pairs and len(chunk) == 1 and chunk.isdigit()
                return self._intern((state[0], self._number_mode(mode[1], mode[2] + chunk, closes_run))), ("char", chunk)
        table = self._table(state_id)
        try:
            return table[token]
        except KeyError:
            raise HFSynthError(
                f"token {self.vocab.token_repr(token)!r} is not allowed here ({_describe_mode(mode)})"
            ) from None

    def next_states(self, states: list[int], tokens: list[int]) -> list[int]:
        """Advance a batch of rows by one token each (rows already final stay final)."""
        cache = self._transitions
        out = []
        for state, token in zip(states, tokens):
            key = (state, token)
            nxt = cache.get(key)
            if nxt is None:
                if self._states[state][1][0] == "E":
                    nxt = state  # a finished row stays finished; not a transition :meth:`feed` may take
                else:
                    nxt = cache[key] = self.advance(state, token)[0]
            out.append(nxt)
        return out

    def next_state_tensor(self, states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """:meth:`next_states` for a batch given as int64 tensors (CPU).

        Transitions already taken are read from a dense ``(state, token)`` table with one gather, so
        a sampling step costs no Python per row; only pairs never seen before go through
        :meth:`advance`. The table covers the first states interned, within ``DENSE_ENTRIES``.
        """
        table = self._dense_transitions()
        if int(states.max()) < table.shape[0]:
            nxt = table[states, tokens].long()
        else:  # states beyond the table: treat them as unseen
            nxt = torch.full_like(states, -1)
            inside = states < table.shape[0]
            nxt[inside] = table[states[inside], tokens[inside]].long()
        missing = (nxt < 0).nonzero().flatten()
        if len(missing):
            width = self.vocab.vocab_size
            pairs, inverse = (states[missing] * width + tokens[missing]).unique(return_inverse=True)
            rows, columns = pairs // width, pairs % width
            found = torch.tensor(self.next_states(rows.tolist(), columns.tolist()), dtype=torch.long)
            nxt[missing] = found[inverse]
            table = self._dense_transitions()  # new states may have been interned
            keep = rows < table.shape[0]
            table[rows[keep], columns[keep]] = found[keep].to(table.dtype)
        return nxt

    def mask_index_tensor(self, states: torch.Tensor) -> torch.Tensor:
        """:meth:`mask_index` for a batch given as an int64 tensor (rows of :meth:`mask_table`)."""
        index = self._mask_index_of_states()[states]
        if bool((index < 0).any()):
            unique = states[index < 0].unique()
            values = torch.tensor([self.mask_index(s) for s in unique.tolist()], dtype=torch.int32)
            known = self._mask_index_of_states()  # computing masks may intern states
            known[unique] = values
            index = known[states]
        return index.long()

    def mask_index(self, state_id: int) -> int:
        """Row of :meth:`mask_table` with the tokens allowed in this state."""
        index = self._mask_of_state[state_id]
        if index is None:
            index = self._mask_of_state[state_id] = self._compute_mask(state_id)
        return index

    def mask_table(self) -> torch.Tensor:
        """``(num_masks, vocab_size)`` bool tensor; rows are added as new states are visited."""
        with self._lock:
            table = self._mask_tensor
            if table is None or table.shape[0] != len(self._mask_rows):
                table = self._mask_tensor = torch.stack(self._mask_rows)
            return table

    def feed(self, state_id: int, tokens: Iterable[int]) -> int:
        """The state after ``tokens`` (a prompt); raises ``HFSynthError`` at a token not allowed.

        Transitions are memoised as in :meth:`next_states`: the prompts of a sampling run (DiffLM
        redraws its targets after whole rows) repeat the same few transitions.
        """
        cache = self._transitions
        for token in tokens:
            nxt = cache.get((state_id, token))
            if nxt is None:
                nxt = cache[(state_id, token)] = self.advance(state_id, token)[0]
            state_id = nxt
        return state_id

    def parse(self, tokens: Iterable[int], trusted: bool = False) -> dict:
        """Parse the token ids of one record (a prompt plus what was generated) into a record.

        Tokens after the end of the record (padding) are ignored. Raises ``HFSynthError`` if the
        ids are not a complete valid record. ``trusted=True`` says the ids were sampled under this
        automaton, so they need not be checked again (a faster path for one-token pieces).
        """
        builder = _RecordBuilder(self.schema, self.vocab)
        if self.vocab.single_token_pieces and trusted:
            # ids produced under this automaton's constraint: each token is its own event
            events = self._events_of_tokens()
            for token in tokens:
                event = events.get(token)
                if event is None:
                    event = ("text", token)
                builder.add(event)
                if event[0] == "piece" and event[1] == ("close", ""):
                    return builder.record
            raise HFSynthError("incomplete record (no end of record)")
        state = self.initial_state()
        for token in tokens:
            if self.is_final(state):
                break
            state, event = self.advance(state, token)
            builder.add(event)
        if not self.is_final(state):
            raise HFSynthError(f"incomplete record ({_describe_mode(self._states[state][1])})")
        return builder.record

    def _events_of_tokens(self) -> dict[int, tuple]:
        events = self._token_events
        if events is None:
            tokenizer = self.vocab
            events = {token: ("char", chunk) for token, chunk in self._chunk_of.items()}
            for piece in _all_pieces(self.schema, tokenizer.keyed_categories):
                events[tokenizer.piece_ids(piece)[0]] = ("piece", piece)
            self._token_events = events
        return events

    # ------------------------------------------------------------------ dense tables (batched stepping)
    def _dense_transitions(self) -> torch.Tensor:
        """``(rows, vocab_size)`` int32 next-state table, -1 where not yet known: a row for each
        state interned so far, up to ``DENSE_ENTRIES`` entries (a text vocabulary makes rows wide)."""
        limit = max(1, self.DENSE_ENTRIES // self.vocab.vocab_size)
        with self._lock:
            table = self._next_dense = _grown(self._next_dense, min(len(self._states), limit), limit)
            return table

    def _mask_index_of_states(self) -> torch.Tensor:
        """Mask row of every interned state, -1 where not yet computed."""
        with self._lock:
            table = self._mask_dense = _grown(self._mask_dense, len(self._states))
            return table

    # ------------------------------------------------------------------ states
    def _intern(self, state: State) -> int:
        sid = self._state_ids.get(state)
        if sid is None:
            with self._lock:
                sid = self._state_ids.get(state)
                if sid is None:
                    self._states.append(state)
                    self._mask_of_state.append(None)
                    sid = self._state_ids[state] = len(self._states) - 1
        return sid

    def _number_mode(self, path: str, prefix: str, run_closed: bool = False) -> tuple:
        """The mode of a number being written; the prefix stands for its class (see
        :meth:`NumberFormat.representative`), the characters themselves travel in the events.
        ``run_closed``: a lone digit token just ended a run of digits (``digit_pairs``)."""
        return ("N", path, self._numbers[path].representative(prefix), run_closed)

    def _number_steps(self, mode: tuple) -> tuple[tuple[str, ...], bool]:
        """``(the chunks that may extend the number of an "N" mode, whether it is complete)``.

        A chunk is a number character or, with ``digit_pairs``, two digits. Those numbers are
        written in one tokenization (:func:`hf_synth.tokenizer.number_chunks`): a lone digit ends
        its run of digits, so it is allowed only where the number may then end or go on with a
        point or an exponent, and no digit may follow it.
        """
        steps = self._number_steps_of.get(mode)
        if steps is None:
            _, path, prefix, run_closed = mode
            number = self._numbers[path]
            chars, complete = number.step(prefix)
            pairs = self.vocab.digit_pairs
            chunks = [c for c in chars if not (pairs and c.isdigit())]
            if pairs and not run_closed:
                for char in filter(str.isdigit, chars):
                    after, ends = number.step(prefix + char)
                    digits = [d for d in after if d.isdigit()]
                    if ends or len(digits) < len(after):  # the run of digits may end after this one
                        chunks.append(char)
                    chunks += [char + d for d in digits]
            steps = self._number_steps_of[mode] = (tuple(chunks), complete)
        return steps

    def _table(self, state_id: int) -> dict[int, tuple[int, Any]]:
        table = self._tables.get(state_id)
        if table is None:
            table = self._tables[state_id] = self._build_table(self._states[state_id])
        return table

    def _compute_mask(self, state_id: int) -> int:
        state = self._states[state_id]
        frames, mode = state
        if mode[0] == "N":
            # numbers visit many prefixes with few distinct masks: key them by what they allow
            chunks, complete = self._number_steps(mode)
            after = self._intern((frames, ("A",))) if complete else None
            key = (chunks, after)
            index = self._number_masks.get(key)
            if index is None:
                allowed = {self.vocab.char_id(c) for c in chunks}
                if after is not None:
                    allowed |= set(self._table(after))
                index = self._number_masks[key] = self._mask_row(allowed)
            return index
        allowed = set(self._table(state_id))
        if mode[0] == "T":
            room = self.text_limits.get(mode[1], 0) - mode[2] - 1  # text tokens left after this one
            moves = self._text_moves[mode[3]]
            if room >= self._text_worst[mode[3]]:
                allowed |= moves.keys()
            else:
                allowed |= {t for t, after in moves.items() if self._text_reach[after] <= room}
        if mode == ("E",):
            allowed = {self.vocab.eos_id, self.vocab.pad_id}
        return self._mask_row(allowed)

    def _mask_row(self, allowed: set[int]) -> int:
        key = frozenset(allowed)
        with self._lock:
            index = self._mask_keys.get(key)
            if index is None:
                row = torch.zeros(self.vocab.vocab_size, dtype=torch.bool)
                row[list(key)] = True
                self._mask_rows.append(row)
                index = self._mask_keys[key] = len(self._mask_rows) - 1
            return index

    def _build_table(self, state: State) -> dict[int, tuple[int, Any]]:
        frames, mode = state
        table: dict[int, tuple[int, Any]] = {}
        kind = mode[0]
        if kind == "P":
            return self._trie_table(mode[1], mode[2])
        if kind == "E":
            return table
        if kind == "N":
            _, complete = self._numbers[mode[1]].step(mode[2])
            return dict(self._table(self._intern((frames, ("A",))))) if complete else table
        if kind == "V":
            path = mode[1]
            if path in self._numbers:
                chars, _ = self._numbers[path].step("")
                for char in chars:
                    table[self.vocab.char_id(char)] = (self._intern((frames, self._number_mode(path, char))), ("char", char))
        if kind == "O":  # the first item of a list may be a number too
            list_path = frames[-1][1]
            path = item_path(list_path)
            if path in self._numbers and field_at(self.schema, list_path).max_items > 0:
                start = frames[:-1] + (("L", list_path, 1),)
                chars, _ = self._numbers[path].step("")
                for char in chars:
                    table[self.vocab.char_id(char)] = (self._intern((start, self._number_mode(path, char))), ("char", char))
        state_id = self._intern(state)
        table.update(self._trie_table(state_id, ()))
        return table

    def _trie_table(self, base_id: int, consumed: tuple[int, ...]) -> dict[int, tuple[int, Any]]:
        """Transitions for the multi-token pieces allowed in ``base``, after ``consumed`` tokens."""
        depth = len(consumed)
        by_token: dict[int, list] = {}
        for piece, next_state in self._options(self._states[base_id]):
            ids = self.vocab.piece_ids(piece)
            if ids[:depth] == consumed and len(ids) > depth:
                by_token.setdefault(ids[depth], []).append((piece, ids, next_state))
        table = {}
        for token, options in by_token.items():
            done = [o for o in options if len(o[1]) == depth + 1]
            if done and len(options) > 1:
                names = ", ".join(repr(o[0]) for o in options)
                raise HFSynthError(f"ambiguous tokenization: pieces {names} share a token prefix")
            if done:
                piece, _, next_state = done[0]
                table[token] = (self._intern(next_state), ("piece", piece))
            else:
                table[token] = (self._intern((self._states[base_id][0], ("P", base_id, consumed + (token,)))), None)
        return table

    def _options(self, state: State) -> list[tuple[tuple, State]]:
        """The pieces that may come next, each with the state it leads to."""
        frames, mode = state
        kind = mode[0]
        if kind == "V0":
            return [(("open", ""), (frames, ("A",)))]
        if kind in ("A", "N"):
            return self._after_value(frames)
        if kind == "O":
            frame = frames[-1]
            fs = field_at(self.schema, frame[1])
            options = [(("list_close",), self._pop(frames))]
            if fs.max_items > 0:
                start = frames[:-1] + (("L", frame[1], 1),)
                options += self._value_options(start, item_path(frame[1]))
            return options
        if kind == "V":
            return self._value_options(frames, mode[1])
        if kind == "VN":
            return [(("null",), (frames, ("A",)))]
        if kind == "T":
            return [(("str_close",), (frames, ("A",)))] if mode[3] == 0 else []
        return []

    def _after_value(self, frames: tuple) -> list[tuple[tuple, State]]:
        frame = frames[-1]
        if frame[0] == "L":
            fs = field_at(self.schema, frame[1])
            options = [(("list_close",), self._pop(frames))]
            if frame[2] < fs.max_items:
                more = frames[:-1] + (("L", frame[1], frame[2] + 1),)
                options.append((("list_sep",), (more, ("V", item_path(frame[1])))))
            return options
        _, path, emitted, natural, nonnull = frame
        fields = self.schema.fields if path == "" else field_at(self.schema, path).fields
        remaining = [(i, key) for i, key in enumerate(fields) if not emitted >> i & 1]
        if not remaining:
            return [(("close", path), self._pop(frames))]
        if natural:
            remaining = remaining[:1]
        options = []
        for i, key in remaining:
            child = key if path == "" else child_path(path, key)
            moved = frames[:-1] + (("S", path, emitted | 1 << i, natural, nonnull),)
            fs = fields[key]
            if self.vocab.keyed_categories and fs.kind in ("categorical", "bool", "numeric"):
                # the category / first digit token names its field: no key piece, except before a null
                if fs.kind == "numeric":
                    firsts = self._numbers[child].step("")[0]
                    options += [(("numkey", child, c), (moved, self._number_mode(child, c))) for c in firsts]
                else:
                    options += [(("cat", child, c), (moved, ("A",))) for c in range(len(fs.categories))]
                if self._null_allowed(moved, child, fs):
                    options.append((("key", child, emitted == 0), (moved, ("VN", child))))
            else:
                options.append((("key", child, emitted == 0), (moved, ("V", child))))
        return options

    def _null_allowed(self, frames: tuple, path: str, fs: FieldSchema) -> bool:
        forbidden = path in self._column_bit and frames[0][4] & self._column_bit[path]
        return (fs.nullable or fs.kind == "null") and not forbidden

    def _pop(self, frames: tuple) -> State:
        rest = frames[:-1]
        return (rest, ("E",)) if not rest else (rest, ("A",))

    def _value_options(self, frames: tuple, path: str) -> list[tuple[tuple, State]]:
        fs = field_at(self.schema, path)
        after = (frames, ("A",))
        options = []
        if self._null_allowed(frames, path, fs):
            options.append((("null",), after))
        if fs.kind in ("categorical", "bool"):
            options += [(("cat", path, i), after) for i in range(len(fs.categories))]
        elif fs.kind == "text":
            options.append((("str_open",), (frames, ("T", path, 0, 0))))
        elif fs.kind == "struct":
            options.append((("open", path), (frames + (("S", path, 0, True, 0),), ("A",))))
        elif fs.kind == "list":
            options.append((("list_open",), (frames + (("L", path, 0),), ("O",))))
        return options


def _all_pieces(schema: RecordSchema, vocab_keyed: bool) -> Iterable[tuple]:
    """Every structural, key and category piece of a schema."""
    yield ("open", "")
    yield ("close", "")
    for kind in ("null", "str_open", "str_close", "list_open", "list_sep", "list_close"):
        yield (kind,)
    for path, fs in iter_paths(schema.fields):
        if path_name(path) != "[]":
            yield ("key", path, True)
            if fs.kind == "numeric" and vocab_keyed:
                yield from (("numkey", path, c) for c in NUMBER_START_CHARS)
        if fs.kind == "struct":
            yield ("open", path)
            yield ("close", path)
        if fs.kind in ("categorical", "bool"):
            yield from (("cat", path, i) for i in range(len(fs.categories)))


def _steps_to_plain(moves: list[dict[int, int]]) -> list[float]:
    """Fewest text tokens from each escape context back to context 0 (outside an escape)."""
    nexts = [set(m.values()) for m in moves]
    reach = [0.0] + [float("inf")] * (len(moves) - 1)
    for _ in range(len(moves)):
        for context, targets in enumerate(nexts):
            for target in targets:
                reach[context] = min(reach[context], 1 + reach[target])
    return reach


def _numeric_paths(schema: RecordSchema) -> Iterable[tuple[str, FieldSchema]]:
    return [(p, fs) for p, fs in iter_paths(schema.fields) if fs.kind == "numeric"]


def _describe_mode(mode: tuple) -> str:
    kind = mode[0]
    return {
        "V0": "expected the start of a record",
        "A": "expected the next key or the end of a container",
        "O": "expected a list item or the end of the list",
        "VN": "expected null",
        "V": f"expected a value for {mode[1] if len(mode) > 1 else ''!s}",
        "N": "inside a number",
        "T": "inside a string",
        "P": "inside a multi-token piece",
        "E": "after the end of the record",
    }.get(kind, kind).replace("\x1f", ".")


class _RecordBuilder:
    """Turns the automaton's events back into a record of the original types."""

    def __init__(self, schema: RecordSchema, vocab: PieceVocab):
        self.schema = schema
        self.vocab = vocab
        self.record: dict | None = None
        self._stack: list[list] = []  # [container, path, pending_key]
        self._number: list[str] = []
        self._number_path = ""
        self._text: list[int] = []
        self._value_path = ""

    def add(self, event: Any) -> None:
        if event is None:
            return
        kind = event[0]
        if kind == "char":
            if not self._number:
                self._number_path = self._value_path
            self._number.append(event[1])
            return
        if kind == "text":
            self._text.append(event[1])
            return
        if self._number:
            fs = field_at(self.schema, self._number_path)
            number, self._number = "".join(self._number), []
            self._put(parse_number(fs, number))
        piece = event[1]
        name = piece[0]
        if name == "open":
            self._stack.append([{}, piece[1], None])
        elif name == "close":
            container = self._stack.pop()[0]
            if self._stack:
                self._put(container)
            else:
                self.record = container
        elif name == "key":
            self._stack[-1][2] = path_name(piece[1])
            self._value_path = piece[1]
        elif name == "numkey":
            self._stack[-1][2] = path_name(piece[1])
            self._value_path = self._number_path = piece[1]
            self._number = [piece[2]]
        elif name == "cat":
            if not isinstance(self._stack[-1][0], list):  # the key may be implied by the category
                self._stack[-1][2] = path_name(piece[1])
            fs = field_at(self.schema, piece[1])
            value = fs.categories[piece[2]]
            if fs.dtype == "class_label":
                value = fs.label_names.index(value)
            self._put(value)
        elif name == "null":
            self._put(None)
        elif name == "str_open":
            self._text = []
        elif name == "str_close":
            self._put(self.vocab.decode_text(self._text))
        elif name == "list_open":
            self._stack.append([[], self._value_path, None])
            self._value_path = item_path(self._value_path)
        elif name == "list_sep":
            self._value_path = item_path(self._stack[-1][1])
        elif name == "list_close":
            container = self._stack.pop()
            self._put(container[0])

    def _put(self, value: Any) -> None:
        top = self._stack[-1]
        if isinstance(top[0], list):
            top[0].append(value)
        else:
            top[0][top[2]] = value


def _grown(table: torch.Tensor, rows: int, limit: int | None = None) -> torch.Tensor:
    """``table`` with at least ``rows`` rows, the new ones -1; it grows by doubling, up to ``limit``."""
    if table.shape[0] >= rows:
        return table
    size = max(rows, 2 * table.shape[0]) if limit is None else min(max(rows, 2 * table.shape[0]), limit)
    grown = torch.full((size, *table.shape[1:]), -1, dtype=table.dtype)
    grown[: table.shape[0]] = table
    return grown


class SchemaLogitsProcessor(LogitsProcessor):
    """A `transformers` logits processor that masks every token the schema does not allow.

    Args:
        grammar: The automaton.
        states: The state of each batch row after its prompt.
        prompt_length: Length of the (left-padded) prompt given to ``generate``.
    """

    def __init__(self, grammar: RecordGrammar, states: list[int], prompt_length: int):
        self.grammar = grammar
        self.state_ids = torch.tensor(states, dtype=torch.long)
        self._seen = prompt_length

    @property
    def states(self) -> list[int]:
        return self.state_ids.tolist()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] > self._seen:
            self.state_ids = self.grammar.next_state_tensor(self.state_ids, input_ids[:, -1].cpu())
            self._seen = input_ids.shape[1]
        rows = self.grammar.mask_index_tensor(self.state_ids)  # before mask_table: it may add rows
        mask = self.grammar.mask_table()[rows].to(scores.device)
        if mask.shape[1] < scores.shape[1]:
            mask = torch.nn.functional.pad(mask, (0, scores.shape[1] - mask.shape[1]), value=False)
        return scores.masked_fill(~mask, float("-inf"))
