"""The latest token that names a field and the steps since it, read from the tokens alone
(hf_synth.naming_tokens)."""

import torch

from hf_synth.naming_tokens import MAX_STEPS, naming_context, naming_tokens, next_naming_context
from hf_synth.tokenizer import encode_record_with_columns
from record_strategies import all_kinds_dataset, all_kinds_schema
from test_tokenizer import pretrained_vocab, record_tokenizer


def test_every_field_starts_with_a_token_that_names_it():
    vocab, schema = record_tokenizer(), all_kinds_schema()
    naming = naming_tokens(vocab, schema)
    names = list(schema.fields)
    owners: dict[int, set[str]] = {}
    checked = 0
    for row in all_kinds_dataset():
        for order in (None, names[::-1]):  # in any column order
            ids, written = encode_record_with_columns(vocab, schema, row, order)
            starts = [p for p, name in enumerate(written) if name and (p == 0 or written[p - 1] != name)]
            assert len(starts) == len(names)
            for p in starts:
                assert naming[ids[p]], vocab.token_repr(ids[p])
            for p, token in enumerate(ids):
                if naming[token]:
                    owners.setdefault(token, set()).add(written[p])
            read, steps = (t[0].tolist() for t in naming_context(torch.tensor([ids]), naming))
            for p in range(len(ids)):
                named = [q for q in range(p + 1) if naming[ids[q]]]
                assert read[p] == (ids[named[-1]] if named else -1)
                assert steps[p] == (min(p - named[-1], MAX_STEPS) if named else 0)
                if written[p]:  # a token of a field is read as that field's, however many fields share it
                    assert written[p] in owners[read[p]]
                    checked += 1
            # one token at a time, as while sampling
            current, step = torch.tensor([-1]), torch.tensor([0])
            for p, token in enumerate(ids):
                current, step = next_naming_context(torch.tensor([token]), current, step, naming)
                assert (int(current), int(step)) == (read[p], steps[p])
    assert checked > 100
    assert all(len(columns) == 1 for columns in owners.values())  # a naming token names one field


def test_shared_tokens_name_no_field():
    vocab = record_tokenizer()
    naming = naming_tokens(vocab, all_kinds_schema())
    assert not naming[vocab.char_id("7")] and not naming[vocab.eos_id] and not naming[vocab.bos_id]
    assert not naming[vocab.text_token_ids].any()


def test_a_pretrained_vocabulary_names_no_field():
    # its keys and categories are text whose tokens many fields share
    vocab = pretrained_vocab()
    naming = naming_tokens(vocab, all_kinds_schema())
    assert naming.shape == (vocab.vocab_size,) and not naming.any()
