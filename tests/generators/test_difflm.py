"""DiffLMGenerator end to end on tiny models: fit, sample, the soft prompt's effect, persistence, bad input."""

from __future__ import annotations

import contextlib
import copy
import json
import os

import datasets
import pytest
import torch

from hf_synth import AutoGenerator, DiffLMGenerator, DiffLMGeneratorConfig, load_demo_dataset
from hf_synth.configuration import ConfigError
from hf_synth.errors import HFSynthError, SchemaError
from hf_synth.generators.difflm.config import DECODER_PREFIX_HINTS
from hf_synth.tokenizer import encode_record

from generator_checks import reloaded_writes_and_samples_the_same

COLUMNS = ["age", "sex", "income", "education", "hours-per-week"]
TINY = dict(
    decoder_options=dict(n_layer=1, n_embd=32, n_head=2, epochs=2, batch_size=32, dropout=0.0),
    encoder_layers=1, encoder_hidden=32, encoder_heads=2, latent_dim=8, num_virtual_tokens=2,
    vae_epochs=3, batch_size=32, learning_rate=3e-3, diffusion_steps=150, diffusion_hidden=64,
    diffusion_batch_size=64, sampling_steps=10, sample_batch_size=64, calibration_samples=192,
)


@pytest.fixture(scope="module")
def adult() -> datasets.Dataset:
    return load_demo_dataset().select(range(160)).select_columns(COLUMNS)


@pytest.fixture(scope="module")
def fitted(adult) -> DiffLMGenerator:
    return DiffLMGenerator(**TINY).fit(adult, progress=False)


def valid(generator, rows: datasets.Dataset) -> bool:
    return all(not generator.schema.validate(row) for row in rows.to_list())


@contextlib.contextmanager
def offsets_restored(vae):
    """The VAE's output bias and offsets by context, as they were when the block ends."""
    bias = vae.output_bias.detach().clone()
    context = [getattr(vae, name).clone() for name in ("context_keys", "context_tokens", "context_table")]
    try:
        yield
    finally:
        with torch.no_grad():
            vae.output_bias.copy_(bias)
        vae.set_context_bias(*context)


def test_fit_trains_three_stages(fitted):
    info = fitted.training_info
    assert info["decoder"]["trained"] and info["decoder"]["history"]
    vae = info["vae"]
    assert vae["history"] and all("val_cross_entropy" in h and "beta" in h for h in vae["history"])
    assert vae["history"][0]["beta"] == TINY.get("beta_max", fitted.config.beta_max)
    assert info["diffusion"]["steps"] == TINY["diffusion_steps"]
    assert info["calibration"]["kind"] == "context" and info["calibration"]["contexts"] > 0
    assert info["calibration"]["cross_entropy_after"] < info["calibration"]["cross_entropy_before"]
    assert len(info["calibration"]["sampled_gaps"]) == fitted.config.calibration_rounds > 0
    assert "rounds on 192 sampled rows each" in fitted.model_card()
    assert not any(p.requires_grad for p in fitted.lm.model.parameters())  # the decoder stays frozen
    # the decoder trained with hints where the soft prompt goes, unless the options say otherwise
    assert fitted.lm.config.prefix_hints == DECODER_PREFIX_HINTS > 0 and fitted.lm.config.prefix_slots == fitted.config.slots
    assert "of its records holding some of their own tokens where the soft prompt goes" in fitted.model_card()
    no_hints = DiffLMGenerator(decoder_options={"prefix_hints": 0.0}).config.lm_options()
    assert no_hints["prefix_hints"] == 0.0


def test_samples_are_valid_seeded_and_conditioned(fitted, adult):
    rows = fitted.sample(60, seed=0, progress=False)
    assert rows.features == adult.features and rows.num_rows == 60 and valid(fitted, rows)
    assert fitted.sample(60, seed=0, progress=False).to_list() == rows.to_list()
    assert fitted.sample(60, seed=1, progress=False).to_list() != rows.to_list()
    women = fitted.sample(20, seed=0, conditions={"sex": "Female", "age": 40}, progress=False)
    assert set(women["sex"]) == {"Female"} and set(women["age"]) == {40} and valid(fitted, women)


def test_the_soft_prompt_steers_the_decoder(fitted, adult):
    vae = fitted.vae
    batch = {**fitted._encoder_inputs(adult.to_list()[:8])}
    from hf_synth.generators.difflm.vae import padded
    from hf_synth.tokenizer import encode_record

    ids, mask = padded([encode_record(fitted.lm.vocab, fitted.schema, r) for r in adult.to_list()[:8]], fitted.lm.vocab.pad_id)
    vae.train()
    vae.zero_grad()
    vae.loss(fitted.lm.model, {**batch, "decoder_ids": ids, "decoder_mask": mask}, beta=0.01)["loss"].backward()
    vae.eval()
    assert vae.injection.projection.weight.grad.abs().sum() > 0  # the loss reaches the projection...
    assert vae.encoder.head.weight.grad.abs().sum() > 0  # ...and through it the encoder
    assert all(p.grad is None for p in fitted.lm.model.parameters())

    # with a projection that carries z, different latents decode to different rows (the calibrated
    # offsets are cleared: fitted on a few rows, they can dominate a tiny decoder's logits)
    saved = vae.injection.projection.weight.detach().clone(), vae.output_bias.detach().clone()
    context = vae.context_keys, vae.context_tokens, vae.context_table
    try:
        with torch.no_grad():
            vae.injection.projection.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
            vae.output_bias.zero_()
        vae.clear_context_bias()
        # a tiny decoder trained for a few steps reads its prompt weakly: a few rows in a hundred differ
        z = torch.randn((200, fitted.config.latent_dim), generator=torch.Generator().manual_seed(1)) * 3
        rows = [{} for _ in range(200)]
        first, _ = fitted._sample_rows(rows, seed=0, latents=z, progress=False)
        same, _ = fitted._sample_rows(rows, seed=0, latents=z.clone(), progress=False)
        other, _ = fitted._sample_rows(rows, seed=0, latents=-z, progress=False)
    finally:
        with torch.no_grad():
            vae.injection.projection.weight.copy_(saved[0])
            vae.output_bias.copy_(saved[1])
        vae.set_context_bias(*context)
    assert first == same and first != other  # same seed for the decoder: only z differs


def _calibrated(fitted, batch, kind):
    """Mean predicted probabilities after calibrating from a perturbed bias, and the fit's result."""
    from hf_synth.generators.difflm.calibration import fit_output_bias

    vae = fitted.vae
    with offsets_restored(vae):
        with torch.no_grad():  # start far from calibrated: the fit must bring it back
            vae.output_bias.add_(torch.randn(vae.output_bias.shape, generator=torch.Generator().manual_seed(0)))
        result = fit_output_bias(vae, fitted.lm.model, [batch], torch.device("cpu"), kind=kind)
        with torch.no_grad():
            mu, _ = vae.encoder(batch["encoder_ids"], batch["encoder_mask"])
            probabilities = vae.record_logits(fitted.lm.model, mu, batch)[batch["decoder_mask"].bool()].softmax(-1)
    return probabilities, result


def test_latent_information_is_what_the_latent_saves_the_decoder(fitted, adult):
    from hf_synth.generators.difflm.steering import latent_collapsed, latent_information

    measured = fitted.training_info["latent_information"]
    assert list(measured) == list(fitted.schema.fields)
    assert all(m["saved"] == pytest.approx(m["other_latent"] - m["latent"], abs=2e-4) for m in measured.values())
    assert "What the latent tells the decoder, in nats per validation row" in fitted.model_card()

    # an untrained VAE (zero projection, no offsets) is exactly the decoder alone, whatever the latent
    rows = adult.select(range(40)).to_list()
    blank = copy.deepcopy(fitted.vae)
    with torch.no_grad():
        blank.injection.projection.weight.zero_()
        blank.injection.projection.bias.zero_()
        blank.output_bias.zero_()
    blank.clear_context_bias()
    inputs = fitted._encoder_inputs(rows)

    def measure(vae, records=rows, encoded=inputs):
        vae.eval()
        with torch.no_grad():
            means = vae.encoder(encoded["encoder_ids"], encoded["encoder_mask"])[0]
        return latent_information(vae, fitted.lm.model, fitted.lm.vocab, fitted.schema, records, means)

    nothing = measure(blank)
    assert all(abs(m["saved"]) < 1e-3 and abs(m["latent"] - m["decoder"]) < 1e-3 for m in nothing.values())
    assert latent_collapsed(nothing)
    collapsed = copy.copy(fitted)
    collapsed.training_info = {**fitted.training_info, "latent_information": nothing}
    assert "The latent steers almost nothing" in collapsed.model_card()
    assert ("The latent steers almost nothing" in fitted.model_card()) == latent_collapsed(measured)

    # a VAE trained further to remember these rows saves more than the fitted one
    from hf_synth.generators.difflm.vae import padded

    torch.manual_seed(0)
    remembering = copy.deepcopy(fitted.vae)
    ids, mask = padded([encode_record(fitted.lm.vocab, fitted.schema, r) for r in rows], fitted.lm.vocab.pad_id)
    batch = {**fitted._encoder_inputs(rows), "decoder_ids": ids, "decoder_mask": mask}
    optimizer = torch.optim.Adam([p for p in remembering.parameters() if p.requires_grad], lr=1e-2)
    remembering.train()
    for _ in range(300):
        optimizer.zero_grad()
        remembering.loss(fitted.lm.model, batch, beta=0.0, sample=False)["loss"].backward()
        optimizer.step()
    remembered = measure(remembering)
    assert [m["decoder"] for m in remembered.values()] == [m["decoder"] for m in nothing.values()]
    assert sum(m["saved"] for m in remembered.values()) > 0.02 + sum(m["saved"] for m in measure(fitted.vae).values())
    assert not latent_collapsed(remembered)
    # the same row six times: no row's latent knows more than another's
    same = measure(remembering, rows[:1] * 6, fitted._encoder_inputs(rows[:1] * 6))
    assert all(abs(m["saved"]) < 1e-4 for m in same.values())


def test_calibration_matches_average_predictions_to_the_data(fitted, adult):
    from hf_synth.generators.difflm.vae import padded
    from hf_synth.tokenizer import encode_record

    rows = adult.to_list()
    ids, mask = padded([encode_record(fitted.lm.vocab, fitted.schema, r) for r in rows], fitted.lm.vocab.pad_id)
    batch = {**fitted._encoder_inputs(rows), "decoder_ids": ids, "decoder_mask": mask}
    previous, named, steps = (t[mask.bool()] for t in fitted.vae.contexts(ids))
    targets = ids[mask.bool()]
    contexts = torch.unique(torch.stack([named, steps, previous], 1)[previous >= 0], dim=0)
    frequency = torch.bincount(targets, minlength=fitted.vae.output_bias.shape[0]).float() / len(targets)
    used = frequency > 0

    def context_error(probabilities):  # |predicted - observed| next-token counts, summed over contexts
        errors = []
        for name, step, token in contexts:
            here = (named == name) & (steps == step) & (previous == token)
            errors.append((probabilities[here].sum(0) - torch.bincount(targets[here], minlength=len(frequency))).abs().sum())
        return float(torch.stack(errors).sum()) / len(targets)

    by_token, token_result = _calibrated(fitted, batch, "token")
    by_context, context_result = _calibrated(fitted, batch, "context")
    for probabilities, result in ((by_token, token_result), (by_context, context_result)):
        assert result.positions == len(targets) and result.tokens == int(used.sum())
        assert result.cross_entropy_after < result.cross_entropy_before
        # no prior on the per-token offsets: at the optimum each one's gradient, mean prediction
        # minus frequency, is zero
        assert torch.allclose(probabilities.mean(0)[used], frequency[used], atol=2e-3)
    assert token_result.contexts == 0 and context_result.contexts == len(contexts)
    # a shared number token is a context in each column, after each first digit, at each place
    assert len(contexts) > len(torch.unique(previous[previous >= 0]))
    assert context_result.cross_entropy_after < token_result.cross_entropy_after
    assert context_error(by_context) < 0.5 * context_error(by_token)


def test_offsets_go_to_the_contexts_all_the_rows_visit_most(fitted, adult, monkeypatch):
    from hf_synth.generators.difflm import calibration

    vae, rows = fitted.vae, adult.to_list()
    seen, visits = calibration.visited_contexts(vae, fitted._record_tokens(rows))
    batch = fitted._vae_batches(rows[:4], None)[0]  # the fit reads a few rows, the choice sees all
    in_batch = calibration.visited_contexts(vae, [(batch["decoder_ids"], batch["decoder_mask"])])[0]
    tokens = len(torch.unique(batch["decoder_ids"][batch["decoder_mask"].bool()]))
    with offsets_restored(vae):
        monkeypatch.setattr(calibration, "MAX_CONTEXT_OFFSETS", 10 * tokens)
        result = calibration.fit_output_bias(vae, fitted.lm.model, [batch], torch.device("cpu"),
                                             visits=(seen, visits))
        kept = torch.isin(seen, vae.context_keys)
        assert result.contexts == 10 and int(kept.sum()) == 10
        assert visits[kept].min() >= visits[~kept].max()

        monkeypatch.setattr(calibration, "MAX_CONTEXT_OFFSETS", len(seen) * tokens)
        calibration.fit_output_bias(vae, fitted.lm.model, [batch], torch.device("cpu"), visits=(seen, visits))
        assert torch.equal(vae.context_keys, seen)
        unread = ~torch.isin(vae.context_keys, in_batch)  # no position of the fit is in these contexts
        assert unread.any() and not vae.context_table[unread].any()
        assert vae.context_table[~unread].abs().sum() > 0


def test_rounds_on_sampled_rows_bring_their_tokens_to_the_data(fitted, adult):
    from hf_synth.generators.difflm.calibration import context_counts, refine_by_sampling

    vae = fitted.vae
    rows = adult.to_list()
    training = context_counts(vae, fitted._record_tokens(rows))
    busiest = int(training.sum(1).argmax())  # the context the rows visit most
    first, second = training[busiest].topk(2).indices.tolist()  # its two likeliest next tokens

    def distance():  # of the busiest context's next token in sampled rows from the training rows'
        sampled = context_counts(vae, fitted._record_tokens(fitted._calibration_rows(99, 192)))[busiest]
        return float(0.5 * (sampled / sampled.sum() - training[busiest] / training[busiest].sum()).abs().sum())

    with offsets_restored(vae):
        with torch.no_grad():  # the two swapped
            vae.context_table[busiest, first] -= 4.0
            vae.context_table[busiest, second] += 4.0
        perturbed, before = vae.context_table.clone(), distance()
        gaps = refine_by_sampling(vae, fitted._record_tokens(rows), lambda r: fitted._record_tokens(
            fitted._calibration_rows(r, 192)), rounds=3)
        moved, after = (vae.context_table - perturbed)[busiest], distance()
    assert len(gaps) == 3 and gaps[2] < gaps[0]
    assert moved[first] > 1.0 and moved[second] < -1.0
    assert before > 0.3 and after < 0.5 * before


def test_a_contexts_group_is_its_naming_token_and_steps():
    from hf_synth.generators.difflm.vae import context_group, context_key

    previous = torch.tensor([5, 9, 5, 5, 5, -1])
    named = torch.tensor([3, 3, 4, 3, -1, 3])
    steps = torch.tensor([2, 2, 2, 1, 0, 2])
    groups = context_group(context_key(previous, named, steps, 10), 10).tolist()
    assert groups[0] == groups[1] >= 0  # another previous token: the same group
    assert len({groups[0], groups[2], groups[3]}) == 3  # another naming token or step: another group
    assert groups[4] == groups[5] == -1  # no naming token, or no previous token (no context)


def test_a_round_moves_rare_contexts_by_their_groups_frequent_tokens():
    from hf_synth.generators.difflm.calibration import _frequency_step

    # contexts 0-2: one group, each followed 20 times (too few alone); context 3 alone, 100 times
    target = torch.tensor([[15.0, 5.0, 0.0], [14.0, 5.0, 1.0], [16.0, 4.0, 0.0], [50.0, 50.0, 0.0]])
    counts = torch.tensor([[5.0, 15.0, 0.0], [4.0, 15.0, 1.0], [6.0, 13.0, 1.0], [40.0, 60.0, 0.0]])
    step, gap = _frequency_step(target, counts, torch.tensor([7, 7, 7, 8]))
    assert torch.equal(step[0], step[1]) and torch.equal(step[0], step[2])  # one step for the group
    assert step[0, 0] > 0.5 and step[0, 1] < -0.5  # its tokens followed 60 times together move...
    assert step[0, 2] == 0  # ...one followed 3 times does not
    assert step[3, 0] > 0 and step[3, 1] < 0 and gap == pytest.approx(0.1)  # a context seen enough alone
    unnamed, _ = _frequency_step(target, counts, torch.tensor([-1, -1, -1, 8]))
    assert not unnamed[:3].any() and torch.equal(unnamed[3], step[3])  # no naming token: no group


def test_rounds_correct_rare_contexts_together_by_naming_token_and_steps(fitted, adult):
    from hf_synth.generators.difflm.calibration import MIN_CONTEXT_COUNT, context_counts, refine_by_sampling
    from hf_synth.generators.difflm.vae import context_group

    vae, rows = fitted.vae, adult.to_list()
    training = context_counts(vae, fitted._record_tokens(rows))
    groups, visits = context_group(vae.context_keys, len(vae.output_bias)), training.sum(1)
    # the busiest group whose contexts (one per previous token) are each too rare to correct alone
    rare = [g for g in torch.unique(groups[groups >= 0]).tolist()
            if (groups == g).sum() > 1 and (visits[groups == g] < MIN_CONTEXT_COUNT).all()]
    members = groups == max(rare, key=lambda g: visits[groups == g].sum())
    pooled = training[members].sum(0)
    first, second = pooled.topk(2).indices.tolist()
    assert pooled.sum() >= MIN_CONTEXT_COUNT and pooled[second] > 0

    def distance():  # of the group's next token in sampled rows from the training rows'
        sampled = context_counts(vae, fitted._record_tokens(fitted._calibration_rows(99, 192)))[members].sum(0)
        return float(0.5 * (sampled / sampled.sum() - pooled / pooled.sum()).abs().sum())

    with offsets_restored(vae):
        with torch.no_grad():  # the two pushed apart in every context of the group
            vae.context_table[members, first] -= 1.0
            vae.context_table[members, second] += 1.0
        before = distance()
        refine_by_sampling(vae, fitted._record_tokens(rows), lambda r: fitted._record_tokens(
            fitted._calibration_rows(r, 384)), rounds=3)
        after = distance()
    assert before > 0.2 and after < 0.5 * before


def test_the_output_bias_applies_while_sampling(fitted):
    categories = fitted.schema.fields["sex"].categories
    token = fitted.lm.vocab.piece_ids(("cat", "sex", categories.index("Female")))[0]
    with offsets_restored(fitted.vae):
        with torch.no_grad():
            fitted.vae.output_bias[token] += 50.0
        rows = fitted.sample(40, seed=0, progress=False)
    assert set(rows["sex"]) == {"Female"}
    assert set(fitted.sample(40, seed=0, progress=False)["sex"]) == {"Female", "Male"}


def test_offsets_by_context_apply_while_sampling(fitted):
    from hf_synth.generators.difflm.vae import context_key

    vocab, vae = fitted.lm.vocab, fitted.vae
    female = vocab.piece_ids(("cat", "sex", fitted.schema.fields["sex"].categories.index("Female")))[0]
    twenties = vocab.piece_ids(("numkey", "age", "2"))[0]  # "age" with first digit 2
    thirties = vocab.piece_ids(("numkey", "age", "3"))[0]
    five = vocab.char_id("5")
    saved = vae.context_keys, vae.context_tokens, vae.context_table

    def sample_with(previous, named, steps, token, conditions):
        key = context_key(torch.tensor([previous]), torch.tensor([named]), torch.tensor([steps]), vocab.vocab_size)
        try:
            vae.set_context_bias(key, torch.tensor([token]), torch.tensor([[50.0]]))
            return fitted.sample(30, seed=0, conditions=conditions, progress=False)
        finally:
            vae.set_context_bias(*saved)

    # after the token "Female" (which names sex), the first digit of age is 2. Conditioned rows
    # start with their fixed columns: "Female" is the prompt's last token, and age the first
    # column generated
    assert all(20 <= age <= 29 for age in sample_with(female, female, 0, twenties, {"sex": "Female"})["age"])
    assert not all(20 <= age <= 29 for age in sample_with(female, female, 0, twenties, {"sex": "Male"})["age"])

    # after age 35 (its tokens: first digit 3, then 5, one step on), sex is Female. The same last
    # digit after another first digit, ending hours-per-week, or at another step is another context
    assert set(sample_with(five, thirties, 1, female, {"age": 35})["sex"]) == {"Female"}
    assert set(sample_with(five, thirties, 1, female, {"age": 25})["sex"]) == {"Female", "Male"}
    assert set(sample_with(five, thirties, 1, female, {"age": 40, "hours-per-week": 35})["sex"]) == {"Female", "Male"}
    assert set(sample_with(five, thirties, 2, female, {"age": 35})["sex"]) == {"Female", "Male"}


def test_encode_gives_one_latent_per_row(fitted, adult):
    mu = fitted.encode(adult.select(range(10)))
    assert mu.shape == (10, fitted.config.latent_dim) and torch.isfinite(mu).all()
    assert torch.equal(fitted.encode(adult.select(range(10)).to_list()), mu)


def test_save_load_round_trip(fitted, tmp_path):
    path = str(tmp_path / "difflm")
    fitted.save_pretrained(path)
    for component in ("decoder/model/model.safetensors", "decoder/tokenizer", "encoder/model.safetensors",
                      "latent/config.json", "latent/model.safetensors", "diffusion/config.json",
                      "diffusion/model.safetensors", "generator_config.json", "schema.json", "README.md"):
        assert os.path.exists(os.path.join(path, component)), component
    loaded = AutoGenerator.from_pretrained(path)
    assert type(loaded) is DiffLMGenerator
    assert loaded.sample(30, seed=4, progress=False).to_list() == fitted.sample(30, seed=4, progress=False).to_list()
    assert torch.allclose(loaded.encode(fitted.sample(5, seed=1, progress=False)),
                          fitted.encode(fitted.sample(5, seed=1, progress=False)))


def test_a_generator_saved_with_offsets_by_previous_token_alone_loads(fitted, tmp_path):
    from safetensors.torch import load_file, save_file

    from hf_synth.hub import sha256_file

    path = str(tmp_path / "difflm")
    fitted.save_pretrained(path)
    weights = os.path.join(path, "latent", "model.safetensors")
    state = load_file(weights)
    # the earlier layout: a row of offsets per previous token, and no naming tokens
    vocab_size = fitted.lm.vocab.vocab_size
    offsets = torch.randn((3, len(state["context_tokens"])), generator=torch.Generator().manual_seed(0))
    rows = torch.full((vocab_size,), -1, dtype=torch.long)
    previous = torch.tensor([5, 2, 9])  # rows of the table, not in the order of their tokens
    rows[previous] = torch.arange(3)
    for name in ("naming_tokens", "context_keys"):
        del state[name]
    state.update(context_rows=rows, context_columns=state.pop("context_tokens"), context_table=offsets)
    save_file(state, weights)
    with open(os.path.join(path, "generator_config.json")) as f:
        meta = json.load(f)
    meta["files"]["latent/model.safetensors"] = sha256_file(weights)
    with open(os.path.join(path, "generator_config.json"), "w") as f:
        json.dump(meta, f)

    loaded = AutoGenerator.from_pretrained(path).vae
    assert not loaded.naming_tokens.any()
    logits = torch.zeros((4, vocab_size))
    # no token names a field, so every context is a previous token alone
    _, named, steps = (t[0] for t in loaded.contexts(torch.tensor([[9, 2, 5, 7]])))
    assert named.tolist() == [-1] * 4 and steps.tolist() == [0] * 4
    biased = loaded.add_bias(torch.tensor([9, 2, 5, 7]), named, steps, logits) - loaded.output_bias
    assert torch.allclose(biased[:3, loaded.context_tokens], offsets[[2, 1, 0]], atol=1e-5)
    assert torch.allclose(biased[3], torch.zeros(vocab_size), atol=1e-5)  # no offsets after token 7


def test_normal_prior_and_learned_prefix(adult):
    generator = DiffLMGenerator(**{**TINY, "prior": "normal", "prefix_length": 2}).fit(adult, progress=False)
    assert generator.diffusion is None and generator.training_info["diffusion"] is None
    assert generator.vae.injection(torch.zeros((3, generator.config.latent_dim))).shape[1] == 4
    assert valid(generator, generator.sample(20, seed=0, progress=False))


def test_bad_input_fails_before_training(adult):
    with pytest.raises(SchemaError, match="validation split"):
        DiffLMGenerator(**TINY).fit(adult.select(range(1)), progress=False)
    with pytest.raises(SchemaError, match="validation split"):
        DiffLMGenerator(**{**TINY, "validation_size": 0.0}).fit(adult, progress=False)
    with pytest.raises(ConfigError, match="latent_dim"):
        DiffLMGenerator(latent_dim=0)
    with pytest.raises(ConfigError, match="num_virtual_tokens"):
        DiffLMGenerator(num_virtual_tokens=500)
    with pytest.raises(ConfigError, match="beta_min"):
        DiffLMGenerator(beta_min=0.5, beta_max=0.1)
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="calibration_rounds"):
            DiffLMGenerator(calibration_rounds=bad)
    for bad in (0, 2.0, False):
        with pytest.raises(ConfigError, match="calibration_samples"):
            DiffLMGenerator(calibration_samples=bad)
    with pytest.raises(ConfigError, match="may not set"):
        DiffLMGenerator(decoder_options={"prefix_slots": 3})
    with pytest.raises(ConfigError, match="n_layer"):
        DiffLMGenerator(decoder_options={"n_layer": 0})
    with pytest.raises(HFSynthError, match="not fitted"):
        DiffLMGenerator().sample(3)


def test_latent_control(fitted, adult):
    examples = adult.select(range(3))
    like = fitted.sample_like(examples, num_rows=9, noise=0.2, seed=0)
    assert like.num_rows == 9 and valid(fitted, like) and like.features == adult.features
    assert fitted.sample_like(examples, num_rows=9, noise=0.2, seed=0).to_list() == like.to_list()
    exact = fitted.sample_like(examples, noise=0.0, seed=0)
    direct = fitted.sample(3, latents=fitted.encode(examples), seed=0, progress=False)
    assert exact.num_rows == 3 and exact.to_list() == direct.to_list()  # noise 0 decodes the examples' latents

    path = fitted.interpolate(adult[0], adult[1], steps=4, seed=0)
    assert path.num_rows == 4 and valid(fitted, path)
    # near-greedy decoding depends on z only: the path starts and ends at the two records' latents
    greedy = fitted.interpolate(adult[0], adult[1], steps=4, seed=0, temperature=1e-4).to_list()
    mu = fitted.encode([adult[0], adult[1]])
    assert greedy[0] == fitted.sample(1, latents=mu[:1], seed=3, temperature=1e-4, progress=False).to_list()[0]
    assert greedy[-1] == fitted.sample(1, latents=mu[1:], seed=5, temperature=1e-4, progress=False).to_list()[0]
    with pytest.raises(HFSynthError, match="noise"):
        fitted.sample_like(examples, noise=-1)
    with pytest.raises(HFSynthError, match="steps"):
        fitted.interpolate(adult[0], adult[1], steps=1)
    with pytest.raises(HFSynthError, match="latents must have shape"):
        fitted.sample(3, latents=torch.zeros((2, fitted.config.latent_dim)), progress=False)


def test_beta_decays_when_validation_stalls_and_training_stops(fitted, adult):
    """The validation loss really runs: with nothing learned (lr 0) it never improves after the first
    evaluation, so beta decays by beta_decay per stalled evaluation, floors at beta_min, and training stops."""
    import copy

    from hf_synth.generators.difflm.vae import padded
    from hf_synth.generators.difflm.vae_training import VAETrainingArguments, train_vae
    from hf_synth.tokenizer import encode_record

    rows = adult.to_list()[:32]
    ids, mask = padded([encode_record(fitted.lm.vocab, fitted.schema, r) for r in rows], fitted.lm.vocab.pad_id)
    batch = {**fitted._encoder_inputs(rows), "decoder_ids": ids, "decoder_mask": mask}
    args = VAETrainingArguments(epochs=20, learning_rate=0.0, weight_decay=0.0, beta_max=0.1, beta_min=0.04,
                                beta_decay=0.5, beta_patience=1, patience=3, eval_steps=0, seed=0, progress=False)
    result = train_vae(copy.deepcopy(fitted.vae), fitted.lm.model, lambda epoch: [batch], [batch], args,
                       torch.device("cpu"))
    assert [h["beta"] for h in result.history] == [0.1, 0.1, 0.05, 0.04]
    assert result.stopped_early and result.steps == 4 and result.final_beta == 0.04


def test_push_to_hub_and_load_by_id(fitted, hub):
    from huggingface_hub import HfApi, ModelCard

    fitted.push_to_hub("tester/adult-difflm", token=hub.token)
    files = set(HfApi().list_repo_files("tester/adult-difflm"))
    assert {"decoder/model/model.safetensors", "encoder/model.safetensors", "latent/model.safetensors",
            "diffusion/model.safetensors", "generator_config.json"} <= files
    loaded = AutoGenerator.from_pretrained("tester/adult-difflm")
    assert type(loaded) is DiffLMGenerator
    assert loaded.sample(10, seed=2, progress=False).to_list() == fitted.sample(10, seed=2, progress=False).to_list()
    card = ModelCard.load("tester/adult-difflm").text
    assert "DiffLMGenerator" in card and "soft prompt" in card and "Prior: EDM latent diffusion" in card


def test_decoder_and_vae_hold_out_the_same_rows(adult):
    config = DiffLMGeneratorConfig(**{**TINY, "validation_size": 0.2, "max_validation_rows": 25, "seed": 7})
    generator = DiffLMGenerator(config)
    lm = generator._decoder_generator().config  # the decoder's split uses the same seed and sizes
    assert (lm.seed, lm.validation_size, lm.max_validation_rows) == (7, 0.2, 25)
    with pytest.raises(ConfigError, match="may not set"):
        DiffLMGenerator(decoder_options={"validation_size": 0.3})


@pytest.fixture(scope="module")
def targeted(adult) -> DiffLMGenerator:
    return DiffLMGenerator(**TINY, target_columns=["income"]).fit(adult, progress=False)


def _with_config(generator, **changes):
    """``generator`` sharing its trained parts, with sampling-time config fields changed."""
    clone = copy.copy(generator)
    clone.config = generator.config.replace(**changes)
    return clone


def test_the_latent_never_sees_target_columns(targeted, adult):
    rows = adult.select(range(6)).to_list()
    flipped = [{**r, "income": ">50K" if r["income"] == "<=50K" else "<=50K"} for r in rows]
    assert torch.equal(targeted.encode(rows), targeted.encode(flipped))
    assert not torch.equal(targeted.encode(rows), targeted.encode([{**r, "sex": "Female"} for r in rows]))


def test_target_columns_are_drawn_again_from_the_decoder_alone(targeted, adult):
    plain = _with_config(targeted, redraw_targets=False).sample(80, seed=3, progress=False).to_list()
    rows = targeted.sample(80, seed=3, progress=False)
    assert valid(targeted, rows) and rows.features == adult.features
    assert rows.to_list() == targeted.sample(80, seed=3, progress=False).to_list()
    # the latent drew the rest of each row exactly as without target columns
    rest = [{k: v for k, v in r.items() if k != "income"} for r in plain]
    assert [{k: v for k, v in r.items() if k != "income"} for r in rows.to_list()] == rest

    # near-greedy, the target is the decoder's most likely value given the rest of the row, read by
    # the decoder alone (its <bos> slots in front, no latent, no offsets) with the target last
    lm = targeted.lm
    greedy_model = _with_config(targeted, temperature=1e-4)
    greedy_model.lm = copy.copy(lm)
    greedy_model.lm.config = lm.config.replace(sample_dtype="float32")
    greedy = greedy_model.sample(80, seed=3, progress=False).to_list()
    income = targeted.schema.fields["income"]
    choices = [lm.vocab.piece_ids(("cat", "income", i))[0] for i in range(len(income.categories))]
    order = [c for c in COLUMNS if c != "income"] + ["income"]
    assert list(targeted.schema.fields) == order  # the decoder trained with the target last
    agree = 0
    with torch.no_grad():
        for row in greedy:
            sequence = [lm.vocab.bos_id] * targeted.config.slots + encode_record(lm.vocab, targeted.schema, row, order)
            at = next(i for i, t in enumerate(sequence) if t in choices)
            logits = lm.model(input_ids=torch.tensor([sequence[:at]])).logits[0, -1]
            agree += income.categories[int(logits[choices].argmax())] == row["income"]
    assert agree >= 0.95 * len(greedy)

    # a target fixed by a condition stays
    rich = targeted.sample(30, seed=0, conditions={"income": ">50K"}, progress=False)
    assert set(rich["income"]) == {">50K"} and valid(targeted, rich)
    assert "Target columns `income`: the encoder does not read them, and they are drawn again" in targeted.model_card()
    assert targeted.lm.config.target_columns == ["income"]  # the decoder weighed them in its loss


def test_two_decoding_streams_sample_the_rows_of_one(targeted):
    # the soft prompts and the target redraw are decoded in two threads; the rows stay the same
    one = targeted.sample(200, seed=5, batch_size=32, progress=False).to_list()
    torch.set_num_threads(2)
    try:
        two = targeted.sample(200, seed=5, batch_size=32, progress=False).to_list()
    finally:
        torch.set_num_threads(1)
    assert two == one


def test_column_order_reaches_the_decoder(adult, tmp_path):
    order = ["hours-per-week", "income", "education", "sex", "age"]
    generator = DiffLMGenerator(**TINY, column_order=order, target_columns="income").fit(adult, progress=False)
    assert generator.lm.config.column_order == order
    assert list(generator.schema.fields) == list(generator.lm.schema.fields) == \
        ["hours-per-week", "education", "sex", "age", "income"]  # the target still last
    rows = generator.sample(40, seed=0, progress=False)
    assert rows.features == adult.features and valid(generator, rows)
    loaded = reloaded_writes_and_samples_the_same(generator, str(tmp_path / "g"), rows)
    assert "Columns written in a given order: `hours-per-week`, `education`, `sex`, `age`, `income`." \
        in loaded.model_card()
    with pytest.raises(ConfigError, match="column_order"):
        DiffLMGenerator(column_order="shuffled")


def test_target_columns_bad_input(adult):
    with pytest.raises(SchemaError, match="not columns of the data"):
        DiffLMGenerator(**{**TINY, "target_columns": ["salary"]}).fit(adult, progress=False)
    with pytest.raises(SchemaError, match="every column"):
        DiffLMGenerator(**{**TINY, "target_columns": COLUMNS}).fit(adult, progress=False)
    with pytest.raises(ConfigError, match="target_columns"):
        DiffLMGenerator(target_columns=["income", "income"])
    with pytest.raises(ConfigError, match="target_columns"):
        DiffLMGenerator(target_columns=[3])
    with pytest.raises(ConfigError, match="redraw_targets"):
        DiffLMGenerator(target_columns="income", decoder="gpt2")
    assert DiffLMGenerator(target_columns="income", decoder="gpt2", redraw_targets=False).config.decoder == "gpt2"
    assert DiffLMGenerator(target_columns="income").config.target_columns == ["income"]
