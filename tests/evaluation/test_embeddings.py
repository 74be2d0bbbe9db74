"""Sentence encoder on a tiny BERT saved locally, and the embedding metrics on known geometries."""

import json

import numpy as np
import pytest

from hf_synth.evaluation.data import EvaluationError
from hf_synth.evaluation.embeddings import SentenceEncoder, dispersion, embedding_metrics, vendi_score

WORDS = "the a cat dog sat ran on under mat table quickly slowly red blue".split()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = tmp_path_factory.mktemp("tiny_bert")
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


# ----------------------------------------------------------------------------- encoder
def test_encoder_gives_unit_vectors_and_equal_texts_equal_vectors(tiny_model):
    encoder = SentenceEncoder(tiny_model, batch_size=2)
    texts = ["the cat sat on the mat", "a dog ran", "the cat sat on the mat", "red", "blue table under the red mat quickly"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (5, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1])
    assert encoder.dim == 32


def test_padding_and_batch_order_do_not_change_a_vector(tiny_model):
    encoder = SentenceEncoder(tiny_model, batch_size=8)
    alone = encoder.encode(["a dog ran"])[0]
    # batched with a longer text, "a dog ran" is padded: the attention mask must keep the pads out
    batched = encoder.encode(["blue table under the red mat quickly and slowly", "a dog ran"])
    np.testing.assert_allclose(batched[1], alone, atol=1e-5)
    assert encoder.encode([]).shape == (0, 32)


def test_truncation_to_max_length(tiny_model):
    encoder = SentenceEncoder(tiny_model, max_length=4)
    long = encoder.encode(["the cat sat on the mat", "the cat sat under a table"])
    np.testing.assert_allclose(long[0], long[1], atol=1e-6)  # both cut to [CLS] the cat [SEP]


def test_missing_model_raises_a_one_line_error(tmp_path):
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(EvaluationError) as info:
        SentenceEncoder(missing)
    message = str(info.value)
    assert message == f"cannot load the sentence encoder {missing!r}: no such directory"
    # a Hub id cannot be fetched offline (tests run with HF_HUB_OFFLINE=1): one line, naming it
    with pytest.raises(EvaluationError) as info:
        SentenceEncoder("hf-synth-tests/no-such-encoder")
    assert str(info.value).startswith("cannot load the sentence encoder 'hf-synth-tests/no-such-encoder': ")
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- metrics
def test_vendi_score_of_identical_and_orthogonal_rows():
    same = np.tile(np.array([[0.6, 0.8, 0.0]]), (10, 1))
    assert vendi_score(same) == pytest.approx(1.0)
    assert vendi_score(np.eye(7)) == pytest.approx(7.0)
    assert vendi_score(np.eye(40)[:, :40] * 3.0) == pytest.approx(40.0)  # scale does not matter: cosine kernel
    assert vendi_score(np.eye(50), max_rows=10) == pytest.approx(10.0)  # a sample of 10 orthogonal rows
    # two clusters of identical rows, 3 and 1: eigenvalues 3/4 and 1/4
    two = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]])
    assert vendi_score(two) == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))


def test_vendi_score_is_the_same_through_the_smaller_gram_matrix():
    rng = np.random.default_rng(0)
    wide, tall = rng.normal(size=(20, 50)), rng.normal(size=(60, 5))
    for x in (wide, tall):
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        eigenvalues = np.clip(np.linalg.eigvalsh(unit @ unit.T / len(x)), 1e-15, None)
        assert vendi_score(x) == pytest.approx(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()), rel=1e-6)


def test_dispersion_of_known_geometries_and_against_all_pairs():
    assert dispersion(np.tile([[1.0, 2.0]], (5, 1))) == pytest.approx(0.0, abs=1e-12)
    assert dispersion(np.eye(4)) == pytest.approx(1.0)
    assert dispersion(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(2.0)
    assert dispersion(np.eye(3)[:1]) is None
    x = np.random.default_rng(1).normal(size=(30, 8))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit.T
    pairs = similarity[~np.eye(30, dtype=bool)]
    assert dispersion(x) == pytest.approx(float(np.mean(1 - pairs)))


def test_embedding_metrics_keys_and_detection():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16))
    alike = rng.normal(size=(240, 16))
    shifted = rng.normal(size=(240, 16)) + 3.0 * np.eye(16)[0]
    same = embedding_metrics(real, alike, seed=0)
    json.dumps(same, allow_nan=False)
    assert set(same) >= {"rows", "dim", "dispersion", "vendi_score", "vendi_rows", "c2st"}
    assert same["rows"] == {"real": 300, "synthetic": 240} and same["dim"] == 16 and same["vendi_rows"] == 240
    assert set(same["vendi_score"]) == {"synthetic", "real"}
    assert 1.0 <= same["vendi_score"]["synthetic"] <= 16.0
    assert same["c2st"]["score"] > 0.8
    different = embedding_metrics(real, shifted, seed=0)
    assert different["c2st"]["score"] < 0.2
    assert different["dispersion"]["synthetic"] < same["dispersion"]["synthetic"]
    with pytest.raises(EvaluationError):
        embedding_metrics(real, alike[:, :8])


def test_embedding_metrics_on_too_few_rows_notes_why():
    result = embedding_metrics(np.eye(4)[:1], np.eye(4)[1:3])
    assert result["dispersion"]["real"] is None
    assert result["c2st"]["score"] is None
    assert result["notes"]
    json.dumps(result, allow_nan=False)


# ----------------------------------------------------------------------------- through evaluate()
def test_evaluate_reports_embeddings_with_a_local_encoder_and_skips_a_missing_one(tiny_model, tmp_path):
    from hf_synth import evaluate

    rng = np.random.default_rng(0)
    real = [{"text": " ".join(rng.choice(WORDS, 6))} for _ in range(60)]
    synthetic = [{"text": "the cat sat on the mat"} for _ in range(60)]  # collapsed onto one sentence
    report = evaluate(real, synthetic, metrics=["embeddings"], encoder=tiny_model, progress=False)
    section = report["embeddings"]
    assert section["encoder"] == tiny_model and section["column"] == "text"
    assert section["vendi_score"]["synthetic"] == pytest.approx(1.0, abs=1e-3)  # one distinct point
    assert section["vendi_score"]["real"] > 1.2  # varied sentences, even through an untrained encoder
    assert section["c2st"]["score"] < 0.2  # a classifier tells them apart
    missing = evaluate(real, synthetic, metrics=["embeddings"], encoder=str(tmp_path / "nope"), progress=False)
    assert "cannot load the sentence encoder" in missing["skipped"]["embeddings"]
