"""Lexical diversity of a list of texts (a text column, or whole records serialised as JSON lines).

The measures follow the diversity section of "Surveying the Effects of Quality, Diversity, and
Complexity in Synthetic Data From Large Language Models" (Havrilla et al., arXiv 2412.02980):

* distinct-n: unique n-grams / total n-grams over the whole corpus (Li et al., 2016);
* n-gram entropy: Shannon entropy, in bits, of the corpus's n-gram distribution;
* compression ratio: raw bytes / gzip bytes of the newline-joined corpus (higher = more repetitive);
* self-BLEU: each text of a seeded sample scored by BLEU-4 against the rest of the sample
  (Zhu et al., 2018, Texygen); higher = the texts resemble each other more;
* exact and near duplicates: rows equal to an earlier row, and rows whose character 5-gram
  sets have an estimated Jaccard similarity of at least 0.8 with an earlier row, by MinHash + LSH
  (datasketch), as in the deduplication of LLM training sets. Texts are compared lower-cased with
  whitespace collapsed, and a JSON object (a whole record) by its values only: the keys every
  record repeats would otherwise make any two rows of a table look alike.
  :class:`NearDuplicateIndex` is the same rule as a reusable index, for curation.

Tokens are ``\\w+|[^\\w\\s]`` matches (:data:`TOKEN_PATTERN`): runs of letters / digits / underscores,
and every other non-space character on its own, so ``{"age": 39}`` is ``{ " age " : 39 }``. Case
is kept. N-grams never cross the boundary between two texts.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .data import EvaluationError

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
#: Smoothing of BLEU's zero n-gram precisions: Chen & Cherry (2014) method 1, as nltk's
#: ``SmoothingFunction().method1`` (a zero count becomes ``epsilon / total``).
BLEU_EPSILON = 0.1
_SHINGLE_MULTIPLIER = np.uint64(0x100000001B3)  # the 64-bit FNV prime: odd, so the polynomial mixes every code point


def tokenize(text: str) -> list[str]:
    """The tokens every diversity and complexity measure counts (see :data:`TOKEN_PATTERN`)."""
    return TOKEN_PATTERN.findall(text)


def as_texts(texts: Sequence[Any]) -> list[str]:
    """Texts as strings: ``None`` is an empty text, other non-strings their ``str()`` (numbers in a
    text column)."""
    return ["" if t is None else t if isinstance(t, str) else str(t) for t in texts]


# ----------------------------------------------------------------------------- n-gram statistics
class _NGrams:
    """The corpus as one array of token ids, so that n-grams are counted by numpy, not per row."""

    def __init__(self, texts: list[str]):
        tokens = [tokenize(t) for t in texts]
        self.lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        flat = [tok for row in tokens for tok in row]
        self.ids = pd.factorize(pd.Series(flat, dtype=object), sort=False)[0].astype(np.int64) if flat else np.zeros(0, np.int64)
        self.vocab = int(self.ids.max()) + 1 if self.ids.size else 0
        # position of each token inside its text, to know which n-gram windows stay in one text
        starts = np.repeat(np.cumsum(self.lengths) - self.lengths, self.lengths)
        self.offset = np.arange(self.ids.size, dtype=np.int64) - starts
        self.row_length = np.repeat(self.lengths, self.lengths)
        self._codes = {1: self.ids}

    def counts(self, n: int) -> np.ndarray:
        """How often each distinct n-gram occurs (the order is arbitrary)."""
        if n < 1:
            raise EvaluationError(f"n-gram order must be at least 1, got {n}")
        codes = self._code(n)
        valid = self.offset[: codes.size] <= self.row_length[: codes.size] - n
        counts = np.bincount(codes[valid])
        return counts[counts > 0]

    def _code(self, n: int) -> np.ndarray:
        # an n-gram's code is the dense id of (code of its (n-1)-gram prefix, last token id); dense
        # ids keep the pair's product below len(corpus) * vocab, so int64 never overflows
        if n not in self._codes:
            prefix = self._code(n - 1)
            size = max(self.ids.size - n + 1, 0)
            pairs = prefix[:size] * max(self.vocab, 1) + self.ids[n - 1:n - 1 + size]
            self._codes[n] = pd.factorize(pairs, sort=False)[0].astype(np.int64) if size else np.zeros(0, np.int64)
        return self._codes[n]


def _distinct(counts: np.ndarray) -> float | None:
    total = int(counts.sum())
    return counts.size / total if total else None


def _entropy(counts: np.ndarray) -> float | None:
    total = int(counts.sum())
    if not total:
        return None
    p = counts / total
    return float(max(-(p * np.log2(p)).sum(), 0.0))  # max: -0.0 for a single n-gram


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique n-grams / total n-grams over the corpus; ``None`` when no text has ``n`` tokens.

    Example:
        >>> distinct_n(["a a a a"], 1)  # one unigram seen 4 times
        0.25
    """
    return _distinct(_NGrams(as_texts(texts)).counts(n))


def ngram_entropy(texts: Sequence[str], n: int) -> float | None:
    """Shannon entropy in bits of the corpus's n-gram distribution (``log2(k)`` for k equally
    frequent n-grams); ``None`` when no text has ``n`` tokens."""
    return _entropy(_NGrams(as_texts(texts)).counts(n))


def compression_ratio(texts: Sequence[str]) -> float | None:
    """UTF-8 bytes / gzip bytes of the newline-joined corpus; higher = more repetitive.

    gzip runs at level 9 with a zero timestamp so the figure is reproducible; its ~20-byte header
    makes tiny corpora look less compressible. ``None`` for an empty corpus.
    """
    raw = "\n".join(as_texts(texts)).encode("utf-8")
    if not raw:
        return None
    return len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0))


def exact_duplicate_rate(texts: Sequence[str]) -> float | None:
    """Share of texts equal to an earlier text (``None`` for no text)."""
    texts = as_texts(texts)
    return (len(texts) - len(set(texts))) / len(texts) if texts else None


def _stats(values: np.ndarray) -> dict[str, float | None]:
    if not values.size:
        return dict.fromkeys(("mean", "std", "min", "p50", "p95", "max"))
    values = values.astype(float)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def length_stats(texts: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """``{"chars": stats, "tokens": stats}``, stats being mean, std (population), min, p50, p95, max."""
    texts = as_texts(texts)
    tokens = np.fromiter((len(tokenize(t)) for t in texts), dtype=np.int64, count=len(texts))
    return _length_stats(texts, tokens)


def _length_stats(texts: list[str], tokens: np.ndarray) -> dict[str, dict[str, float | None]]:
    chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return {"chars": _stats(chars), "tokens": _stats(tokens)}


# ----------------------------------------------------------------------------- BLEU
def _ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    return Counter(zip(*(tokens[i:] for i in range(n)))) if len(tokens) >= n else Counter()


def _bleu(matches: Sequence[int], totals: Sequence[int], hyp_len: int, ref_len: int) -> float:
    """Sentence BLEU from clipped n-gram matches and hypothesis n-gram totals, as nltk's
    ``sentence_bleu`` with uniform weights and ``SmoothingFunction().method1``."""
    if not matches or matches[0] == 0:
        return 0.0  # nltk: no unigram in common scores 0, whatever the smoothing
    log_p = 0.0
    for match, total in zip(matches, totals):
        total = max(total, 1)  # nltk's modified precision: a hypothesis shorter than n scores 0 / 1
        log_p += math.log((match if match else BLEU_EPSILON) / total)
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_p / len(matches))


def _closest_length(ref_lengths: Sequence[int], hyp_len: int) -> int:
    # nltk's closest_ref_length: the nearest reference length, the shorter one on a tie
    return min(ref_lengths, key=lambda r: (abs(r - hyp_len), r))


def sentence_bleu(references: Sequence[Sequence[str]], hypothesis: Sequence[str], *, max_n: int = 4) -> float:
    """BLEU of one tokenised hypothesis against tokenised references (Papineni et al., 2002).

    Uniform weights over 1..``max_n``-grams, counts clipped by the most a single reference holds,
    brevity penalty against the closest reference length, zero precisions smoothed by Chen & Cherry
    method 1 (:data:`BLEU_EPSILON` / total): the same number as nltk's
    ``sentence_bleu(references, hypothesis, smoothing_function=SmoothingFunction().method1)``.
    """
    if not references:
        raise EvaluationError("BLEU needs at least one reference")
    matches, totals = [], []
    for n in range(1, max_n + 1):
        hyp = _ngram_counts(hypothesis, n)
        most: Counter = Counter()
        for ref in references:
            most |= _ngram_counts(ref, n)  # | keeps the larger count per n-gram
        matches.append(sum(min(c, most[g]) for g, c in hyp.items()))
        totals.append(sum(hyp.values()))
    return _bleu(matches, totals, len(hypothesis), _closest_length([len(r) for r in references], len(hypothesis)))


def self_bleu(texts: Sequence[str], *, sample: int = 200, max_n: int = 4, seed: int = 0) -> float | None:
    """Mean BLEU-``max_n`` of each text of a seeded sample against the other sampled texts.

    1.0 for identical texts, near 0 for texts that share no phrase. The sample keeps the cost at
    ``sample`` hypotheses whatever the corpus size (the figure depends on the sample size: compare
    corpora at the same ``sample``). ``None`` with fewer than two texts.
    """
    texts = as_texts(texts)
    if len(texts) < 2:
        return None
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(texts), size=min(sample, len(texts)), replace=False).tolist())
    tokens = [tokenize(texts[i]) for i in chosen]
    if len(tokens) < 2:
        return None
    lengths = [len(t) for t in tokens]
    per_order = []
    for n in range(1, max_n + 1):
        counts = [_ngram_counts(t, n) for t in tokens]
        # the two largest counts of each n-gram, with the text holding the largest, give the most
        # any *other* text holds in O(corpus) instead of O(sample^2)
        top: dict[tuple, list] = {}
        for j, row in enumerate(counts):
            for gram, c in row.items():
                best = top.setdefault(gram, [0, -1, 0])
                if c > best[0]:
                    best[2], best[0], best[1] = best[0], c, j
                elif c > best[2]:
                    best[2] = c
        per_order.append((counts, top))
    scores = []
    for i in range(len(tokens)):
        matches, totals = [], []
        for counts, top in per_order:
            match = 0
            for gram, c in counts[i].items():
                best, holder, second = top[gram]
                match += min(c, second if holder == i else best)
            matches.append(match)
            totals.append(sum(counts[i].values()))
        others = lengths[:i] + lengths[i + 1:]
        scores.append(_bleu(matches, totals, lengths[i], _closest_length(others, lengths[i])))
    return float(np.mean(scores))


# ----------------------------------------------------------------------------- near duplicates
def _normalise(text: str) -> str:
    """What near-duplicate detection compares: lower case, runs of whitespace as one space, and a
    JSON object (a record) by its values only, ordered by key name, nested values as JSON.

    Why the values only: every record of a table repeats the same keys, which make up about half
    of an Adult row's characters and put the Jaccard similarity of any two rows near 0.6-0.8, so
    that most rows of the real data would "near-duplicate" one another.
    """
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict):
            text = " ".join(json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
                            for _, v in sorted(value.items()))
    return " ".join(text.lower().split())


def _shingle_hashes(texts: list[str], shingle: int) -> list[np.ndarray]:
    """The distinct 64-bit hashes of each text's character ``shingle``-grams.

    Each shingle is hashed by a polynomial over its code points, computed for the whole corpus at
    once by numpy (hashing millions of shingles one Python call at a time costs seconds);
    datasketch's ``affine64`` scheme then mixes the values with the MurmurHash3 finaliser before
    permuting them. A text shorter than ``shingle`` is one shingle; an empty text has none.
    """
    if not texts:
        return []
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    ends = np.cumsum(lengths)
    windows = max(codes.size - shingle + 1, 0)
    rolling = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64 is the point
        for j in range(shingle):
            rolling = rolling * _SHINGLE_MULTIPLIER + codes[j:j + windows]
    out = []
    for length, end in zip(lengths.tolist(), ends.tolist()):
        start = end - length
        if length >= shingle:
            out.append(np.unique(rolling[start:end - shingle + 1]))
        elif length:
            value = np.uint64(0)
            with np.errstate(over="ignore"):
                for c in codes[start:end]:
                    value = value * _SHINGLE_MULTIPLIER + c
            out.append(np.array([value], dtype=np.uint64))
        else:
            out.append(np.zeros(0, dtype=np.uint64))
    return out


def _identity(value: Any) -> Any:
    return value  # the shingles arrive hashed already


class _Sketcher:
    """The near-duplicate rule: thresholds, shingles and MinHash permutations shared by all texts."""

    def __init__(self, *, threshold: float, num_perm: int, shingle: int, seed: int):
        if not 0.0 < threshold <= 1.0:
            raise EvaluationError(f"threshold must be in (0, 1], got {threshold}")
        if shingle < 1:
            raise EvaluationError(f"shingle must be at least 1 character, got {shingle}")
        if num_perm < 2:
            raise EvaluationError(f"num_perm must be at least 2, got {num_perm}")
        self.threshold, self.num_perm, self.shingle, self.seed = threshold, num_perm, shingle, seed

    def lsh(self):
        from datasketch import MinHashLSH

        return MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)

    def similar(self, matrix: np.ndarray, candidates: np.ndarray, signature) -> np.ndarray:
        """The candidates whose estimated Jaccard similarity reaches the threshold (LSH only
        proposes: a pair shares a band of hash values, not necessarily enough of them)."""
        return candidates[(matrix[candidates] == signature.hashvalues).mean(axis=1) >= self.threshold]


class _Sketches:
    """A corpus normalised, with one MinHash (datasketch ``MinHash.generator``) per distinct text."""

    def __init__(self, texts: Sequence[str], sketcher: _Sketcher):
        from datasketch import MinHash

        self.normalised = [_normalise(t) for t in as_texts(texts)]
        self.first: dict[str, int] = {}
        for i, text in enumerate(self.normalised):
            self.first.setdefault(text, i)
        self.unique = list(self.first.values())  # equal texts are sketched once
        hashes = _shingle_hashes(list(self.first), sketcher.shingle)
        self.signatures = list(MinHash.generator(hashes, num_perm=sketcher.num_perm, seed=sketcher.seed,
                                                 hashfunc=_identity, scheme="affine64"))
        self.matrix = np.stack([s.hashvalues for s in self.signatures]) if self.signatures else None


class NearDuplicateIndex:
    """Reference texts indexed by MinHash LSH, to ask whether a text near-duplicates one of them.

    Two texts are near duplicates when the Jaccard similarity of their sets of character
    ``shingle``-grams, as estimated by ``num_perm`` MinHash permutations, is at least
    ``threshold``; texts are compared after the normalisation of :func:`_normalise` (case,
    whitespace, records by their values). LSH (datasketch ``MinHashLSH``) proposes candidates and
    the MinHash estimate confirms them; texts equal after normalisation always match. The index
    can grow (:meth:`add`), e.g. with the rows kept so far in a deduplication pass.

    Example (curation: drop synthetic rows that copy a training row):
        >>> index = NearDuplicateIndex(train_texts, threshold=0.8)
        >>> kept = [t for t, dup in zip(synthetic_texts, index.query_many(synthetic_texts)) if not dup]
    """

    def __init__(self, reference_texts: Sequence[str] = (), *, threshold: float = 0.8, num_perm: int = 128, shingle: int = 5, seed: int = 0):
        self._sketcher = _Sketcher(threshold=threshold, num_perm=num_perm, shingle=shingle, seed=seed)
        self._start()
        self._append(_Sketches(reference_texts, self._sketcher))

    @classmethod
    def _from_sketches(cls, sketches: _Sketches, sketcher: _Sketcher) -> "NearDuplicateIndex":
        index = cls.__new__(cls)
        index._sketcher = sketcher
        index._start()
        index._append(sketches)
        return index

    def _start(self) -> None:
        self.threshold = self._sketcher.threshold
        self.size = 0
        self._exact: dict[str, int] = {}  # normalised text -> index of its first reference row
        self._lsh = self._sketcher.lsh()
        # signatures and their reference rows, in arrays grown by doubling so that adding rows
        # one batch at a time stays linear
        self._count = 0
        self._matrix = np.zeros((0, self._sketcher.num_perm), dtype=np.uint64)
        self._rows = np.zeros(0, dtype=np.int64)

    def _append(self, sketches: _Sketches) -> None:
        offset = self.size
        new = [(text, offset + i, signature) for (text, i), signature in zip(sketches.first.items(), sketches.signatures)
               if text not in self._exact]
        for text, row, _ in new:
            self._exact[text] = row
        # an empty text has no shingle: only an exact match finds it
        new = [(row, signature) for text, row, signature in new if text]
        needed = self._count + len(new)
        if needed > len(self._rows):
            capacity = max(needed, 2 * len(self._rows), 16)
            self._matrix = np.concatenate([self._matrix[:self._count], np.zeros((capacity - self._count, self._matrix.shape[1]), np.uint64)])
            self._rows = np.concatenate([self._rows[:self._count], np.zeros(capacity - self._count, np.int64)])
        for row, signature in new:
            self._matrix[self._count] = signature.hashvalues
            self._rows[self._count] = row
            self._lsh.insert(self._count, signature, check_duplication=False)
            self._count += 1
        self.size += len(sketches.normalised)

    def __len__(self) -> int:
        return self.size

    def add(self, text: str) -> None:
        """Index one more reference text (its index is the current ``len(self)``)."""
        self.add_many([text])

    def add_many(self, texts: Sequence[str]) -> None:
        """Index more reference texts, numbered on from ``len(self)``."""
        self._append(_Sketches(texts, self._sketcher))

    def matches(self, text: str) -> list[int]:
        """Indices of the reference texts that ``text`` near-duplicates (the first of equal texts only)."""
        return self.matches_many([text])[0]

    def matches_many(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`matches` for many texts, sketched together (much faster than one at a time)."""
        return self._matches(_Sketches(texts, self._sketcher))

    def _matches(self, sketches: _Sketches) -> list[list[int]]:
        answers = {text: self._match(text, signature) for text, signature in zip(sketches.first, sketches.signatures)}
        return [list(answers[text]) for text in sketches.normalised]

    def _match(self, text: str, signature) -> list[int]:
        found = set()
        if text in self._exact:
            found.add(self._exact[text])
        if text and self._count:
            candidates = np.fromiter(self._lsh.query(signature), dtype=np.int64)
            if candidates.size:
                found.update(self._rows[self._sketcher.similar(self._matrix, candidates, signature)].tolist())
        return sorted(found)

    def query(self, text: str) -> bool:
        """Whether ``text`` near-duplicates a reference text."""
        return bool(self.matches(text))

    def query_many(self, texts: Sequence[str]) -> list[bool]:
        """:meth:`query` for many texts, sketched together."""
        return [bool(m) for m in self.matches_many(texts)]

    query_batch = query_many  # the same, by the name of the first drafts


def cross_near_duplicate_rate(synthetic_texts: Sequence[str], reference_texts: Sequence[str], threshold: float = 0.8, *,
                              num_perm: int = 128, shingle: int = 5, seed: int = 0) -> float | None:
    """Share of synthetic texts that near-duplicate a reference (e.g. training) text, in the
    sense of :class:`NearDuplicateIndex`; ``None`` for no synthetic text."""
    sketcher = _Sketcher(threshold=threshold, num_perm=num_perm, shingle=shingle, seed=seed)
    return _cross_rate(_Sketches(synthetic_texts, sketcher), _Sketches(reference_texts, sketcher), sketcher)


def _cross_rate(synthetic: _Sketches, reference: _Sketches, sketcher: _Sketcher) -> float | None:
    if not synthetic.normalised:
        return None
    matches = NearDuplicateIndex._from_sketches(reference, sketcher)._matches(synthetic)
    return sum(1 for m in matches if m) / len(matches)


def near_duplicates(texts: Sequence[str], *, threshold: float = 0.8, num_perm: int = 128, shingle: int = 5, seed: int = 0) -> dict[str, Any]:
    """Near-duplicate rows within one list of texts (see :class:`NearDuplicateIndex` for the rule).

    Rows are read in order, keeping a row unless it near-duplicates an already kept row (a
    greedy deduplication pass: each group is indexed by its first row only, so that a corpus made
    of one large group costs linear time, not quadratic).

    Returns:
        ``{"rate", "rows", "groups"}``: ``rate`` is the share of rows the pass drops (exact copies
        included; ``None`` for no text), ``rows`` their indices, ``groups`` each kept row with the
        rows dropped for it (lists of at least two indices, sorted, in order of their first row; a
        row matching several kept rows joins their groups).
    """
    sketcher = _Sketcher(threshold=threshold, num_perm=num_perm, shingle=shingle, seed=seed)
    return _near_duplicates(_Sketches(texts, sketcher), sketcher)


def _near_duplicates(sketches: _Sketches, sketcher: _Sketcher) -> dict[str, Any]:
    n = len(sketches.normalised)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    flagged = np.zeros(n, dtype=bool)
    for i, text in enumerate(sketches.normalised):
        first = sketches.first[text]
        if first != i:  # equal texts need no sketch
            flagged[i] = True
            union(first, i)
    lsh = sketcher.lsh()
    for k, (text, signature) in enumerate(zip(sketches.first, sketches.signatures)):
        if not text:
            continue
        candidates = np.fromiter(lsh.query(signature), dtype=np.int64)
        similar = sketcher.similar(sketches.matrix, candidates, signature) if candidates.size else candidates
        i = sketches.unique[k]
        if similar.size:
            flagged[i] = True
            for c in similar.tolist():
                union(sketches.unique[c], i)
        else:
            lsh.insert(k, signature, check_duplication=False)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return {
        "rate": float(flagged.mean()) if n else None,
        "rows": np.flatnonzero(flagged).tolist(),
        "groups": [g for _, g in sorted(groups.items()) if len(g) > 1],
    }


# ----------------------------------------------------------------------------- bundle
def _corpus_figures(texts: list[str], sketches: _Sketches, sketcher: _Sketcher, *, seed: int, self_bleu_sample: int) -> dict[str, Any]:
    ngrams = _NGrams(texts)
    figures: dict[str, Any] = {"rows": len(texts)}
    notes = []
    for n in (1, 2, 3):
        counts = ngrams.counts(n)
        figures[f"distinct_{n}"] = _distinct(counts)
        figures[f"entropy_{n}"] = _entropy(counts)
        if figures[f"distinct_{n}"] is None:
            notes.append(f"no text has {n} tokens: distinct-{n} and entropy-{n} are undefined")
    figures["compression_ratio"] = compression_ratio(texts)
    figures["self_bleu"] = self_bleu(texts, sample=self_bleu_sample, seed=seed)
    figures["self_bleu_rows"] = min(self_bleu_sample, len(texts))
    if figures["self_bleu"] is None:
        notes.append("self-BLEU needs at least two texts")
    figures["exact_duplicate_rate"] = exact_duplicate_rate(texts)
    near = _near_duplicates(sketches, sketcher)
    figures["near_duplicate_rate"] = near["rate"]
    figures["near_duplicate_groups"] = len(near["groups"])
    figures["near_duplicate_examples"] = near["groups"][:5]
    figures["lengths"] = _length_stats(texts, ngrams.lengths)
    if notes:
        figures["notes"] = notes
    return figures


def text_diversity(texts: Sequence[str], *, reference: Sequence[str] | None = None, seed: int = 0,
                   self_bleu_sample: int = 200, near_duplicate_threshold: float = 0.8) -> dict[str, Any]:
    """Every diversity figure of ``texts``, and of ``reference`` (the real texts) for comparison.

    Returns:
        A JSON-native dict: ``rows``, ``distinct_1`` .. ``distinct_3``, ``entropy_1`` ..
        ``entropy_3`` (bits), ``compression_ratio``, ``self_bleu`` (on ``self_bleu_rows`` sampled
        texts), ``exact_duplicate_rate``, ``near_duplicate_rate``, ``near_duplicate_groups`` (how
        many), ``near_duplicate_examples`` (up to five groups of row indices), ``lengths``
        (``chars`` / ``tokens``: mean, std, min, p50, p95, max) and ``notes`` when a figure is
        ``None``. With ``reference``: the same figures under ``"real"``, and
        ``cross_near_duplicate_rate``, the share of texts that near-duplicate a reference text.

    Example:
        >>> text_diversity(synthetic_texts, reference=real_texts)["distinct_2"]
    """
    texts = as_texts(texts)
    if not texts:
        raise EvaluationError("no text to measure the diversity of")
    options = {"seed": seed, "self_bleu_sample": self_bleu_sample}
    sketcher = _Sketcher(threshold=near_duplicate_threshold, num_perm=128, shingle=5, seed=seed)
    sketches = _Sketches(texts, sketcher)
    result = _corpus_figures(texts, sketches, sketcher, **options)
    if reference is not None:
        reference = as_texts(reference)
        if reference:
            reference_sketches = _Sketches(reference, sketcher)
            result["cross_near_duplicate_rate"] = _cross_rate(sketches, reference_sketches, sketcher)
            result["real"] = _corpus_figures(reference, reference_sketches, sketcher, **options)
        else:
            result.setdefault("notes", []).append("the reference is empty: no real figures")
    return result
