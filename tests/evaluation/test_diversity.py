"""Diversity measures on constructed corpora whose answers are known by hand."""

import json
import math
import random
import string
from collections import Counter

import pytest

from hf_synth.evaluation.data import EvaluationError
from hf_synth.evaluation.diversity import (
    NearDuplicateIndex,
    compression_ratio,
    cross_near_duplicate_rate,
    distinct_n,
    exact_duplicate_rate,
    length_stats,
    near_duplicates,
    ngram_entropy,
    self_bleu,
    sentence_bleu,
    text_diversity,
    tokenize,
)

PARAGRAPH = (
    "The committee met on Tuesday to review the annual budget, and after a long discussion about "
    "maintenance costs, staffing levels and the new library wing, it approved the proposal with "
    "two amendments concerning the timeline of the renovation and the reporting duties of the board."
)
UNRELATED = (
    "Photosynthesis converts light energy into chemical energy stored in glucose; chlorophyll "
    "absorbs mostly blue and red wavelengths while reflecting green, which is why leaves look green "
    "to us, and the oxygen released is a by-product of splitting water molecules."
)


def _random_corpus(rng, rows=40, vocab=12):
    words = [f"w{i}" for i in range(vocab)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) for _ in range(rows)]


def _brute_counts(texts, n):
    counts = Counter()
    for text in texts:
        tokens = tokenize(text)
        counts.update(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return counts


# ----------------------------------------------------------------------------- tokens and n-grams
def test_tokenize_splits_words_and_punctuation():
    assert tokenize('{"age": 39, "x_y": "a-b"}') == ["{", '"', "age", '"', ":", "39", ",", '"', "x_y", '"', ":", '"', "a", "-", "b", '"', "}"]
    assert tokenize("  ") == []


def test_distinct_n_of_one_repeated_ngram_is_one_over_total():
    texts = ["a a a a"] * 10  # 40 unigrams, 30 bigrams, 20 trigrams, one distinct each
    assert distinct_n(texts, 1) == pytest.approx(1 / 40)
    assert distinct_n(texts, 2) == pytest.approx(1 / 30)
    assert distinct_n(texts, 3) == pytest.approx(1 / 20)


def test_distinct_n_of_all_distinct_tokens_is_one():
    assert distinct_n(["alpha beta gamma", "delta epsilon", "zeta"], 1) == 1.0
    assert distinct_n(["alpha beta gamma", "delta epsilon", "zeta"], 2) == 1.0


def test_ngrams_do_not_cross_text_boundaries():
    # "a b" twice: 2 bigrams, 1 distinct; a bigram "b a" across the boundary would give 2 / 3
    assert distinct_n(["a b", "a b"], 2) == 0.5


def test_distinct_and_entropy_match_a_direct_count():
    rng = random.Random(3)
    texts = _random_corpus(rng)
    for n in (1, 2, 3, 4):
        counts = _brute_counts(texts, n)
        total = sum(counts.values())
        assert distinct_n(texts, n) == pytest.approx(len(counts) / total)
        expected = -sum(c / total * math.log2(c / total) for c in counts.values())
        assert ngram_entropy(texts, n) == pytest.approx(expected)


def test_entropy_of_uniform_ngrams_is_log2_k():
    assert ngram_entropy(["a b c d e f g h"], 1) == pytest.approx(3.0)
    assert ngram_entropy(["a b c d e"], 2) == pytest.approx(2.0)  # 4 distinct bigrams, once each
    assert ngram_entropy(["x", "x x"], 1) == 0.0


def test_undefined_ngram_figures_are_none():
    assert distinct_n(["one two"], 3) is None
    assert ngram_entropy([], 1) is None
    with pytest.raises(EvaluationError):
        distinct_n(["a"], 0)


def test_compression_ratio_is_higher_for_repetitive_text():
    rng = random.Random(0)
    constant = ["the very same sentence again"] * 500
    varied = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(28)) for _ in range(500)]
    assert compression_ratio(constant) > 50
    assert compression_ratio(varied) < 2.5
    assert compression_ratio([]) is None


def test_exact_duplicate_rate_and_length_stats():
    assert exact_duplicate_rate(["a", "b", "a", "a"]) == 0.5
    assert exact_duplicate_rate([]) is None
    stats = length_stats(["a b", "abc"])  # chars 3 and 3, tokens 2 and 1
    assert stats["chars"] == {"mean": 3.0, "std": 0.0, "min": 3.0, "p50": 3.0, "p95": 3.0, "max": 3.0}
    assert stats["tokens"]["mean"] == 1.5 and stats["tokens"]["std"] == 0.5
    assert (stats["tokens"]["min"], stats["tokens"]["p50"], stats["tokens"]["max"]) == (1.0, 1.5, 2.0)


# ----------------------------------------------------------------------------- BLEU
def test_sentence_bleu_by_hand():
    hypothesis = "the cat sat on the mat".split()
    reference = "the cat is on the mat".split()
    # p1 = 5/6, p2 = 3/5 (the cat, on the, the mat), p3 = 1/4 (on the mat), p4 = 0/3 -> 0.1/3; BP = 1
    expected = (5 / 6 * 3 / 5 * 1 / 4 * (0.1 / 3)) ** 0.25
    assert sentence_bleu([reference], hypothesis) == pytest.approx(expected)


def test_sentence_bleu_brevity_penalty_by_hand():
    hypothesis = "the cat on the mat".split()  # 5 tokens against 6
    reference = "the cat is on the mat".split()
    # p1 = 5/5, p2 = 3/4, p3 = 1/3, p4 = 0/2 -> 0.1/2; BP = exp(1 - 6/5)
    expected = math.exp(1 - 6 / 5) * (1 * 3 / 4 * 1 / 3 * (0.1 / 2)) ** 0.25
    assert sentence_bleu([reference], hypothesis) == pytest.approx(expected)


def test_sentence_bleu_clips_by_the_best_single_reference():
    hypothesis = "the the the the".split()
    references = ["the cat".split(), "the the".split()]
    # p1 = 2/4, p2 = 1/3, p3 = 0/2 -> 0.1/2, p4 = 0/1 -> 0.1; closest reference length 2 < 4: BP = 1
    expected = (2 / 4 * 1 / 3 * (0.1 / 2) * 0.1) ** 0.25
    assert sentence_bleu(references, hypothesis) == pytest.approx(expected)


def test_sentence_bleu_edge_cases():
    tokens = "a b c d e".split()
    assert sentence_bleu([tokens], tokens) == pytest.approx(1.0)
    assert sentence_bleu([["x", "y"]], tokens) == 0.0  # no unigram in common
    assert sentence_bleu([["the", "cat"]], ["the", "cat"]) == pytest.approx(math.sqrt(0.1))  # as nltk: no 3-, 4-grams
    with pytest.raises(EvaluationError):
        sentence_bleu([], tokens)


def test_self_bleu_of_identical_texts_is_one():
    assert self_bleu(["the quick brown fox jumps over the lazy dog"] * 20) == pytest.approx(1.0)


def test_self_bleu_matches_sentence_bleu_against_the_others():
    rng = random.Random(1)
    texts = _random_corpus(rng, rows=25, vocab=6) + ["w1 w1 w1 w2 w3", "w1 w1 w4"]
    tokens = [tokenize(t) for t in texts]
    expected = [sentence_bleu(tokens[:i] + tokens[i + 1:], tokens[i]) for i in range(len(texts))]
    assert self_bleu(texts, sample=len(texts)) == pytest.approx(sum(expected) / len(expected))


def test_self_bleu_is_lower_for_varied_texts_and_seeded():
    rng = random.Random(2)
    varied = [" ".join(f"t{rng.randrange(10_000)}" for _ in range(12)) for _ in range(300)]
    assert self_bleu(varied, sample=50) < 0.05
    assert self_bleu(varied, sample=50, seed=4) == self_bleu(varied, sample=50, seed=4)
    assert self_bleu(["only one"]) is None


# ----------------------------------------------------------------------------- near duplicates
def _edited(text):
    return text.replace("Tuesday", "Thursday").replace("two amendments", "three amendments")


def test_near_duplicates_finds_an_edited_copy_not_an_unrelated_text():
    texts = [PARAGRAPH, UNRELATED, _edited(PARAGRAPH), PARAGRAPH, "short note"]
    found = near_duplicates(texts)
    assert found["rows"] == [2, 3]
    assert found["rate"] == pytest.approx(2 / 5)
    assert found["groups"] == [[0, 2, 3]]
    assert near_duplicates([PARAGRAPH, UNRELATED])["rate"] == 0.0
    assert near_duplicates([])["rate"] is None


def test_near_duplicates_ignore_case_and_spacing():
    assert near_duplicates([PARAGRAPH, "  " + PARAGRAPH.upper().replace(" ", "   ")])["rows"] == [1]


def test_records_are_compared_on_their_values_not_their_shared_keys():
    rng = random.Random(0)
    # long keys, short values: as JSON text, 40 % of these rows near-duplicate an earlier one
    keys = ["".join(rng.choice(string.ascii_lowercase) for _ in range(40)) for _ in range(8)]
    records = [json.dumps({k: rng.randrange(100) for k in keys}) for _ in range(50)]
    assert near_duplicates(records)["rate"] == 0.0
    reordered = json.dumps(dict(reversed(list(json.loads(records[0]).items()))))
    assert near_duplicates(records + [reordered])["rows"] == [50]


def test_near_duplicate_index_for_curation():
    index = NearDuplicateIndex([PARAGRAPH, "", UNRELATED, PARAGRAPH])
    assert len(index) == 4
    assert index.query(_edited(PARAGRAPH)) is True
    assert index.query("A completely different sentence about sailing boats and the wind.") is False
    assert index.matches(_edited(UNRELATED.replace("blue", "violet"))) == [2]
    assert index.matches("") == [1]  # empty texts match exactly only
    assert index.query_many([UNRELATED, "nothing alike at all, really"]) == [True, False]
    assert index.query_batch([UNRELATED]) == [True]
    assert cross_near_duplicate_rate([_edited(PARAGRAPH), "nothing alike at all", "nor this one"], [PARAGRAPH]) == pytest.approx(1 / 3)
    with pytest.raises(EvaluationError):
        NearDuplicateIndex([PARAGRAPH], threshold=0.0)


def test_near_duplicate_index_grows():
    index = NearDuplicateIndex()
    assert len(index) == 0 and index.query(PARAGRAPH) is False
    index.add(PARAGRAPH)
    index.add_many([UNRELATED, PARAGRAPH.upper()] + [f"filler text number {i} of the series" for i in range(40)])
    assert len(index) == 43
    assert index.matches(_edited(PARAGRAPH)) == [0]  # the upper-case copy is the same text: indexed once
    assert index.matches(_edited(UNRELATED.replace("blue", "violet"))) == [1]
    assert index.matches("filler text number 37 of the series") == [40]
    # a greedy pass through add / query gives near_duplicates' answer
    texts = [PARAGRAPH, UNRELATED, _edited(PARAGRAPH), "short note", PARAGRAPH]
    kept = NearDuplicateIndex()
    dropped = []
    for i, text in enumerate(texts):
        if kept.query(text):
            dropped.append(i)
        else:
            kept.add(text)
    assert dropped == near_duplicates(texts)["rows"]


# ----------------------------------------------------------------------------- bundle
def test_text_diversity_bundle_is_json_native_with_real_side_by_side():
    rng = random.Random(5)
    synthetic = [PARAGRAPH] * 5 + _random_corpus(rng, rows=30)
    real = _random_corpus(rng, rows=30)
    result = text_diversity(synthetic, reference=real, seed=0)
    json.dumps(result, allow_nan=False)
    expected = {"rows", "distinct_1", "distinct_2", "distinct_3", "entropy_1", "entropy_2", "entropy_3", "compression_ratio",
                "self_bleu", "self_bleu_rows", "exact_duplicate_rate", "near_duplicate_rate", "near_duplicate_groups",
                "near_duplicate_examples", "lengths"}
    assert expected <= set(result)
    assert expected <= set(result["real"])
    assert result["rows"] == 35 and result["real"]["rows"] == 30
    assert result["exact_duplicate_rate"] >= 4 / 35
    assert result["near_duplicate_examples"][0][:5] == [0, 1, 2, 3, 4]
    assert result["distinct_1"] == pytest.approx(distinct_n(synthetic, 1))
    assert 0.0 <= result["cross_near_duplicate_rate"] <= 1.0
    assert text_diversity(synthetic, reference=real, seed=0) == result


def test_text_diversity_notes_undefined_figures():
    result = text_diversity(["one", "two"])
    assert result["distinct_2"] is None and result["entropy_3"] is None
    assert any("distinct-2" in note for note in result["notes"])
    with pytest.raises(EvaluationError):
        text_diversity([])
