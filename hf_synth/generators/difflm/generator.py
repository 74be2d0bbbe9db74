"""DiffLMGenerator: a VAE whose latent steers a frozen causal LM, with a latent diffusion prior.

Fitting runs three stages (DiffLM, arXiv 2411.03250), then calibrates:

1. **Decoder.** The LM generator's own small GPT-2 is trained on the records, with the soft prompt's
   positions reserved (``<bos>`` slots), and then frozen. A pretrained causal LM given by id or path
   is frozen as it is.
2. **VAE.** An encoder reads each record into ``(mu, logvar)``; ``z`` becomes ``k`` soft-prompt
   vectors before the record's tokens; only the encoder, the projection and an output bias train,
   on token cross-entropy + beta x KL with a validation-driven beta schedule (``vae_training.py``).
3. **Prior.** The VAE posterior does not match N(0, I), so an EDM diffusion model learns the
   distribution of the encoder means (``diffusion.py``).
4. **Calibration.** Logit offsets, per token and per (context, token) pair, are fitted exactly so
   that average predictions match the data, then moved in rounds on rows sampled through the prior
   (``calibration.py``).

Sampling: diffusion -> z -> soft prompt -> batched, KV-cached decoding with the schema constraint,
so every row is valid; conditions fix columns as for the LM generator. ``target_columns`` (a label a
downstream model will predict) are kept out of the latent and drawn again from the decoder alone,
given the rest of the row.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from typing import Any, Iterator

import datasets
import torch

from ...codec import RecordCodec
from ...column_order import order_card_line
from ...errors import GeneratorLoadError, HFSynthError, SchemaError
from ...io import load_input
from ...naming_tokens import naming_tokens
from ...sampling import SamplingReport, sample_records
from ...streams import derive_seed
from ...tokenizer import encode_record
from ..base import BaseGenerator, register
from ..lm import LMGenerator, LMGeneratorConfig, check_target_columns, dataset_name, split_records
from .calibration import CalibrationResult, fit_output_bias, refine_by_sampling, visited_contexts
from .config import MIN_CALIBRATION_SAMPLES, DiffLMGeneratorConfig
from .diffusion import DiffusionConfig, LatentDiffusion
from .steering import latent_collapsed, latent_information
from .vae import DiffLMVAE, LatentConfig, LatentInjection, RecordEncoder, padded, upgraded_latent_state
from .vae_training import VAETrainingArguments, train_vae

logger = logging.getLogger(__name__)
DECODER_DIR, ENCODER_DIR, LATENT_DIR, DIFFUSION_DIR = "decoder", "encoder", "latent", "diffusion"


@register
class DiffLMGenerator(BaseGenerator):
    """DiffLM: records -> latent (VAE) -> diffusion prior -> soft prompt -> frozen LM decoder.

    Besides ``sample``, the latent space can be used directly: :meth:`encode` gives the latent means
    of records, :meth:`sample_like` samples near given examples, :meth:`interpolate` walks between
    two records, and ``sample(n, latents=z)`` decodes given latents (one per row).

    Example:
        >>> from hf_synth import DiffLMGenerator
        >>> generator = DiffLMGenerator(latent_dim=32, num_virtual_tokens=4).fit("adult.csv")
        >>> rows = generator.sample(100, seed=0)
        >>> generator.save_pretrained("adult-difflm")
    """

    config_class = DiffLMGeneratorConfig
    method = "difflm"
    row_options = ("latents",)

    def __init__(self, config: DiffLMGeneratorConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.lm: LMGenerator | None = None  # the frozen decoder, with its vocabulary and grammar
        self.vae: DiffLMVAE | None = None
        self.diffusion: LatentDiffusion | None = None
        self.encoder_tokenizer: Any = None  # a pretrained encoder's own tokenizer

    # ------------------------------------------------------------------ fit
    def fit(self, dataset: Any, *, progress: bool = True, **load_kwargs: Any) -> "DiffLMGenerator":
        """Train the decoder (unless a pretrained one is given), the VAE and the latent diffusion prior."""
        config = self.config
        data = load_input(dataset, **load_kwargs)
        records = data.to_list()
        train_rows, val_rows = split_records(records, config.seed, config.validation_size, config.max_validation_rows)
        if config.validation_size <= 0 or not train_rows:
            raise SchemaError(f"DiffLM needs a validation split: {len(records)} rows with validation_size="
                              f"{config.validation_size} leave {len(train_rows)} for training")
        encoder_tokenizer = self._load_encoder_tokenizer()  # fail on a bad id before any training
        check_target_columns(config.target_columns, data.column_names)

        # 1. the decoder: trained here, then frozen; or a pretrained one, frozen as it is
        lm = self._decoder_generator()
        if config.decoder is None:
            lm.fit(data, progress=progress)
        else:
            lm.prepare(data)
            self._check_pretrained_decoder(lm)
        decoder = lm.model
        decoder.requires_grad_(False).eval()
        device = next(decoder.parameters()).device

        # 2. the VAE
        torch.manual_seed(config.seed)
        hidden = decoder.get_input_embeddings().embedding_dim
        slot = decoder.get_input_embeddings().weight[lm.vocab.bos_id if config.decoder is None else lm.vocab.pad_id]
        backbone = self._new_encoder_backbone(lm, encoder_tokenizer)
        latent = LatentConfig(encoder_hidden=backbone.config.hidden_size, latent_dim=config.latent_dim,
                              num_virtual_tokens=config.num_virtual_tokens, prefix_length=config.prefix_length,
                              decoder_hidden=hidden, vocab_size=decoder.get_output_embeddings().weight.shape[0])
        vae = DiffLMVAE(RecordEncoder(backbone, config.latent_dim), LatentInjection(latent, slot),
                        latent.vocab_size).to(device)
        self.lm, self.vae, self.encoder_tokenizer, self.schema = lm, vae, encoder_tokenizer, lm.schema
        vae_result = train_vae(vae, decoder, lambda epoch: self._vae_batches(train_rows, epoch),
                               self._vae_batches(val_rows, None),
                               VAETrainingArguments(
                                   epochs=config.vae_epochs, learning_rate=config.learning_rate,
                                   weight_decay=config.weight_decay, beta_max=config.beta_max,
                                   beta_min=config.beta_min, beta_decay=config.beta_decay,
                                   beta_patience=config.beta_patience, patience=config.patience,
                                   eval_steps=config.eval_steps, seed=config.seed, progress=progress,
                                   mixed_precision=lm._mixed_precision()),
                               device)
        train_mu, val_mu = self.encode(train_rows), self.encode(val_rows)

        # 3. the prior: EDM diffusion on the (normalised) encoder means of the training rows
        self.diffusion, diffusion_history = None, None
        if config.prior == "diffusion":
            self.diffusion = LatentDiffusion(DiffusionConfig(
                latent_dim=config.latent_dim, hidden_dim=config.diffusion_hidden, num_steps=config.sampling_steps,
                train_steps=config.diffusion_steps, batch_size=min(config.diffusion_batch_size, len(train_rows)),
                seed=config.seed))
            diffusion_history = self.diffusion.fit(train_mu, validation=val_mu if len(val_mu) >= 2 else None,
                                                   progress=progress)

        # 4. the decoder's output offsets; its rounds on sampled rows draw latents from the prior
        calibration = self._calibrate(train_rows) if config.calibration != "none" else None
        # what the latent tells the decoder, column by column (the model card reports it)
        information = latent_information(vae, decoder, lm.vocab, lm.schema, val_rows, val_mu)
        if latent_collapsed(information):
            logger.warning("the latent steers almost nothing (%.3f nats saved per validation row): the VAE collapsed "
                           "to one soft prompt for every row, so rows come from the decoder alone. A lower "
                           "learning_rate or beta_max keeps the latent informative.",
                           sum(m["saved"] for m in information.values()))
        self.source = None
        self.training_info = {
            **{k: v for k, v in lm.training_info.items() if k not in ("history", "dataset")},
            "dataset": dataset_name(dataset),
            "decoder": {"trained": config.decoder is None,
                        **{k: lm.training_info.get(k) for k in ("parameters", "epochs", "steps", "fit_seconds",
                                                                "best_validation_loss", "history")}},
            "vae": {"epochs": vae_result.epochs, "steps": vae_result.steps,
                    "best_validation_cross_entropy": round(vae_result.best_val_loss, 5),
                    "final_beta": vae_result.final_beta, "stopped_early": vae_result.stopped_early,
                    "fit_seconds": round(vae_result.seconds, 1), "history": vae_result.history},
            "calibration": None if calibration is None else dataclasses.asdict(calibration),
            "latent_information": information,
            "diffusion": _summary(diffusion_history),
            "latent_std": [round(float(v), 4) for v in train_mu.std(0)],
        }
        return self

    def _vae_batches(self, rows: list[dict], epoch: int | None) -> list[dict[str, torch.Tensor]]:
        """The VAE's batches of ``rows``: shuffled, and some in other column orders, for a training
        ``epoch``; as they are, in the natural order, for ``epoch=None``."""
        config, lm = self.config, self.lm
        codec = RecordCodec(lm.schema)
        rows = list(rows)
        rng = random.Random(config.seed * 7_919 + (epoch or 0))
        if epoch is not None:
            rng.shuffle(rows)
        out = []
        for first in range(0, len(rows), config.batch_size):
            chunk = rows[first : first + config.batch_size]
            # the decoder reads some records with other columns first, as it does for conditions
            orders = [codec.training_order(rng, lm.config.permute_probability) if epoch is not None else None
                      for _ in chunk]
            out.append({**self._encoder_inputs(chunk),
                        **dict(zip(("decoder_ids", "decoder_mask"), self._padded_records(chunk, orders)))})
        return out

    def _calibrate(self, rows: list[dict]) -> CalibrationResult:
        """Fit the decoder's output offsets on ``rows``: exactly on the rows read teacher-forced, then
        ``calibration_rounds`` rounds on sampled rows (see ``calibration.py``)."""
        config, decoder = self.config, self.lm.model
        self.vae.naming_tokens.copy_(naming_tokens(self.lm.vocab, self.schema))  # what the contexts read
        chunks = (self._vae_batches(rows[first : first + 1024], None) for first in range(0, len(rows), 1024))
        by_context = config.calibration == "context"
        tokens = list(self._record_tokens(rows)) if by_context else []  # read by the context choice and the rounds
        result = fit_output_bias(self.vae, decoder, (b for chunk in chunks for b in chunk),
                                 next(decoder.parameters()).device, kind=config.calibration,
                                 visits=visited_contexts(self.vae, tokens) if by_context else None)
        if by_context and config.calibration_rounds:
            samples = config.calibration_samples or max(MIN_CALIBRATION_SAMPLES, len(rows))
            result.sampled_gaps = refine_by_sampling(
                self.vae, tokens,
                lambda round_: self._record_tokens(self._calibration_rows(round_, samples)), config.calibration_rounds)
            result.samples = samples
        return result

    def _padded_records(self, records: list[dict], orders: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``(ids, mask)`` of ``records`` in the decoder's tokens, each in its order of
        ``orders`` (the natural order by default)."""
        orders = orders or [None] * len(records)
        return padded([encode_record(self.lm.vocab, self.schema, r, o) for r, o in zip(records, orders)],
                      self.lm.vocab.pad_id)

    def _record_tokens(self, records: list[dict]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(ids, mask)`` batches of ``records`` written in the decoder's (natural) column order."""
        for first in range(0, len(records), 1024):
            yield self._padded_records(records[first : first + 1024])

    def _calibration_rows(self, round_: int, count: int) -> list[dict]:
        """``count`` rows for a round of calibration: sampled as ``sample`` does, with every token
        from the offsets being fitted (the targets are not redrawn)."""
        config = self.config
        seed = derive_seed(config.seed, "calibration", round_)
        rows = [{} for _ in range(count)]
        records, _ = self._decode(rows, self.sample_latents(len(rows), seed), seed=seed, nonnull=None,
                                  batch_size=config.sample_batch_size, temperature=config.temperature,
                                  top_p=config.top_p, numeric_bounds=None, progress=False)
        return records

    def _decoder_generator(self) -> LMGenerator:
        config = self.config
        if config.decoder is None:
            return LMGenerator(LMGeneratorConfig(**config.lm_options()))
        return LMGenerator(model=config.decoder, revision=config.decoder_revision, seed=config.seed,
                           device=config.device, validation_size=config.validation_size,
                           max_validation_rows=config.max_validation_rows, column_order=config.column_order)

    def _check_pretrained_decoder(self, lm: LMGenerator) -> None:
        context = lm.training_info["context_length"]
        longest = lm.training_info["max_record_tokens"]
        if longest + self.config.slots > context:
            raise SchemaError(f"the longest record takes {longest} tokens and the latent {self.config.slots} "
                              f"positions, but the decoder's context is {context}")

    # ------------------------------------------------------------------ encoder
    def _load_encoder_tokenizer(self) -> Any:
        if self.config.encoder is None:
            return None
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.config.encoder, revision=self.config.encoder_revision,
                                                      trust_remote_code=False)
        except (OSError, ValueError) as err:
            raise HFSynthError(f"cannot load the tokenizer of the encoder {self.config.encoder!r}: {err}") from None
        if tokenizer.pad_token is None:  # batches of records need padding; the mask hides it from pooling
            stand_in = tokenizer.eos_token or tokenizer.unk_token or tokenizer.sep_token
            if stand_in is None:
                raise HFSynthError(f"the encoder tokenizer of {self.config.encoder!r} has no pad, eos, unk or sep "
                                   "token to pad batches with; set tokenizer.pad_token and save it")
            tokenizer.pad_token = stand_in
        return tokenizer

    def _new_encoder_backbone(self, lm: LMGenerator, tokenizer: Any) -> torch.nn.Module:
        config = self.config
        if config.encoder is not None:
            from transformers import AutoModel

            try:
                return AutoModel.from_pretrained(config.encoder, revision=config.encoder_revision,
                                                 trust_remote_code=False, use_safetensors=True)
            except (OSError, ValueError) as err:
                raise HFSynthError(f"cannot load the encoder {config.encoder!r} (safetensors weights required): {err}") from None
        from transformers import BertConfig, BertModel

        return BertModel(BertConfig(
            vocab_size=lm.vocab.vocab_size, hidden_size=config.encoder_hidden, num_hidden_layers=config.encoder_layers,
            num_attention_heads=config.encoder_heads, intermediate_size=4 * config.encoder_hidden,
            max_position_embeddings=lm.training_info["context_length"], pad_token_id=lm.vocab.pad_id,
            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        ), add_pooling_layer=False)

    def _encoder_inputs(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """What the encoder reads: the decoder's record tokens, or a pretrained encoder's tokens of the
        JSON text; without ``target_columns``, so that the latent never carries them."""
        targets = set(self.config.target_columns or ())
        columns = [c for c in self.schema.fields if c not in targets]
        if self.encoder_tokenizer is None:
            ids, mask = padded([encode_record(self.lm.vocab, self.schema, r, columns) for r in rows], self.lm.vocab.pad_id)
            return {"encoder_ids": ids, "encoder_mask": mask}
        codec = RecordCodec(self.schema)
        encoded = self.encoder_tokenizer([codec.encode(r, columns, partial=True) for r in rows], padding=True, truncation=True,
                                         return_tensors="pt")
        return {"encoder_ids": encoded["input_ids"], "encoder_mask": encoded["attention_mask"]}

    @torch.no_grad()
    def encode(self, rows: Any, batch_size: int = 256) -> torch.Tensor:
        """The latent means ``mu`` of records (a list of dicts, Dataset, DataFrame or file): ``(N, d)``."""
        self._check_fitted()
        if not isinstance(rows, list):
            rows = load_input(rows).to_list()
        self.vae.eval()
        device = next(self.vae.parameters()).device
        means = []
        for first in range(0, len(rows), batch_size):
            inputs = self._encoder_inputs(rows[first : first + batch_size])
            mu, _ = self.vae.encoder(inputs["encoder_ids"].to(device), inputs["encoder_mask"].to(device))
            means.append(mu.float().cpu())
        return torch.cat(means) if means else torch.zeros((0, self.config.latent_dim))

    # ------------------------------------------------------------------ sampling
    def _check_fitted(self) -> None:
        super()._check_fitted()
        if self.vae is None or self.lm is None:
            raise HFSynthError("this DiffLMGenerator is not fitted; call fit() or from_pretrained() first")

    def sample_latents(self, num_rows: int, seed: int) -> torch.Tensor:
        """``z`` from the prior: the diffusion model, or N(0, I) when ``prior="normal"``."""
        if self.diffusion is None:
            return torch.randn((num_rows, self.config.latent_dim), generator=torch.Generator().manual_seed(seed))
        return self.diffusion.sample(num_rows, seed=seed).float().cpu()

    def sample_like(self, examples: Any, num_rows: int | None = None, *, noise: float = 0.5, seed: int | None = None,
                    **options: Any) -> datasets.Dataset:
        """New rows near ``examples`` in latent space: each sampled latent is an example's mean plus
        Gaussian noise of ``noise`` training-latent standard deviations (0 decodes the examples' own
        latents). Examples are used in turn; ``num_rows`` defaults to one row per example.

        Example:
            >>> rare = real.filter(lambda r: r["income"] == ">50K" and r["age"] < 25)
            >>> more = generator.sample_like(rare, num_rows=500, noise=0.3, seed=0)
        """
        self._check_fitted()
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
            raise HFSynthError(f"noise must be a number >= 0, got {noise!r}")
        mu = self.encode(examples)
        if not len(mu):
            raise HFSynthError("sample_like needs at least one example")
        count = len(mu) if num_rows is None else num_rows
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise HFSynthError(f"num_rows must be a positive integer, got {num_rows!r}")
        seed = self.config.seed if seed is None else seed
        generator = torch.Generator().manual_seed(seed)
        scale = torch.tensor(self.training_info.get("latent_std") or [1.0] * self.config.latent_dim)
        z = mu[torch.arange(count) % len(mu)] + noise * scale * torch.randn((count, mu.shape[1]), generator=generator)
        return self._decode_latents(z, seed, options)

    def interpolate(self, first: dict, second: dict, steps: int = 5, *, seed: int | None = None,
                    **options: Any) -> datasets.Dataset:
        """``steps`` rows decoded from evenly spaced points on the line between two records' latents
        (the first and last rows decode the records' own latents).

        Example:
            >>> path = generator.interpolate(real[0], real[1], steps=8, seed=0)
        """
        self._check_fitted()
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise HFSynthError(f"steps must be an integer >= 2, got {steps!r}")
        mu = self.encode([dict(first), dict(second)])
        weights = torch.linspace(0.0, 1.0, steps).unsqueeze(1)  # (steps, 1)
        z = (1 - weights) * mu[0] + weights * mu[1]  # (steps, d)
        return self._decode_latents(z, self.config.seed if seed is None else seed, options)

    def _decode_latents(self, z: torch.Tensor, seed: int, options: dict[str, Any]) -> datasets.Dataset:
        from ...streams import check_sample_options

        check_sample_options(type(self), options)
        if "latents" in options:
            raise HFSynthError("latents are what this call decodes; do not pass them as an option")
        return self.sample(len(z), latents=z, seed=seed, **options)

    def _sample_rows(self, rows: list[dict], *, seed: int, nonnull: list[tuple] | None = None,
                     batch_size: int | None = None, temperature: float | None = None, top_p: float | None = None,
                     numeric_bounds: dict[str, tuple[float, float]] | None = None, progress: bool = True,
                     latents: torch.Tensor | None = None) -> tuple[list[dict], SamplingReport]:
        config = self.config
        if latents is not None and tuple(latents.shape) != (len(rows), config.latent_dim):
            raise HFSynthError(f"latents must have shape ({len(rows)}, {config.latent_dim}), got {tuple(latents.shape)}")
        z = self.sample_latents(len(rows), seed) if latents is None else latents.float().cpu()
        decoding = dict(batch_size=batch_size or config.sample_batch_size,
                        temperature=config.temperature if temperature is None else temperature,
                        top_p=config.top_p if top_p is None else top_p, numeric_bounds=numeric_bounds, progress=progress)
        records, report = self._decode(rows, z, seed=seed, nonnull=nonnull, **decoding)
        if config.target_columns and config.redraw_targets:
            self._redraw_targets(rows, records, report, seed=seed, nonnull=nonnull, **decoding)
        return records, report

    def _decode(self, rows: list[dict], z: torch.Tensor, *, seed: int, nonnull: list[tuple] | None,
                **decoding: Any) -> tuple[list[dict], SamplingReport]:
        """Decode latents ``z`` ``(len(rows), d)`` into records that keep the values in ``rows``."""
        grammar, options = self.lm.decoding(**decoding)
        model = self.lm._sampling_model()
        injection = self.vae.injection

        @torch.no_grad()
        def prefix(indices: list[int]) -> torch.Tensor:
            return injection(z[indices].to(next(injection.parameters()).device))  # (b, P, H)

        return sample_records(model, grammar, self.lm.vocab, self.schema, rows, seed=seed, options=options,
                              nonnull=nonnull, prefix=prefix, output_bias=self.vae.add_bias,
                              naming=self.vae.naming_tokens)

    def _redraw_targets(self, rows: list[dict], records: list[dict], report: SamplingReport, *, seed: int,
                        nonnull: list[tuple] | None, **options: Any) -> None:
        """Draw ``target_columns`` of ``records`` (in place) again from the decoder alone, given the
        rest of each row; a target the caller fixed in ``rows`` stays."""
        targets = self.config.target_columns
        check_target_columns(targets, self.schema.columns)  # a config changed after fitting
        todo = [i for i, row in enumerate(rows) if any(c not in row for c in targets)]
        if not todo:
            return
        # the rest of the row, in column order: the decoder reads a record in that order when unconditioned
        given = [{c: records[i][c] for c in self.schema.fields if c not in targets or c in rows[i]} for i in todo]
        required = [tuple(c for c in nonnull[i] if c in targets) for i in todo] if nonnull else None
        redrawn, extra = self.lm._sample_rows(given, seed=derive_seed(seed, "target_columns"), nonnull=required,
                                              **options)
        for i, record in zip(todo, redrawn):
            records[i] = record
        report.retried += extra.retried
        report.seconds += extra.seconds

    def card_training_lines(self) -> list[str]:
        config, info = self.config, self.training_info
        trained = info.get("decoder") or {}
        lm = self.lm.config
        decoder = f"`{config.decoder}`, pretrained and frozen" if config.decoder else (
            f"GPT-2 trained from scratch on the records ({lm.n_layer} layers, width {lm.n_embd}, "
            f"{trained.get('parameters') or 0:,} parameters; {trained.get('epochs')} epochs in {trained.get('fit_seconds')} s, "
            f"best validation loss {trained.get('best_validation_loss')})"
            + (f", with {lm.prefix_hints:.0%} of its records holding some of their own tokens where the soft prompt goes"
               if lm.prefix_hints else "") + ", then frozen")
        encoder = f"`{config.encoder}`" if config.encoder else \
            f"a BERT trained from scratch ({config.encoder_layers} layers, width {config.encoder_hidden})"
        vae = info.get("vae", {})
        lines = [
            f"Decoder: {decoder}; context {info.get('context_length')} tokens.",
            f"Encoder: {encoder}; latent of {config.latent_dim} dimensions injected as {config.num_virtual_tokens} "
            f"soft-prompt vectors" + (f" after a learned prefix of {config.prefix_length}" if config.prefix_length else "") + ".",
            f"VAE: {vae.get('epochs')} epochs ({vae.get('steps')} steps) in {vae.get('fit_seconds')} s; best validation "
            f"cross-entropy {vae.get('best_validation_cross_entropy')}; beta from {config.beta_max} down to "
            f"{vae.get('final_beta', config.beta_max):.3g}" + (" (stopped early)." if vae.get("stopped_early") else "."),
        ]
        calibration = info.get("calibration")
        if calibration:
            by = "token and by context (the previous token, the latest token naming a field and the steps since it)" \
                if calibration["kind"] == "context" else "token"
            lines.append(f"Logit offsets by {by} calibrated on {calibration['positions']:,} record tokens: "
                         f"cross-entropy {calibration['cross_entropy_before']} -> "
                         f"{calibration['cross_entropy_after']} nats per token.")
            gaps = calibration.get("sampled_gaps")
            if gaps:
                lines.append(f"Then {len(gaps)} rounds on {calibration.get('samples', 0):,} sampled rows each brought the "
                             "sampled rows' next token after each context towards the training rows' (total variation "
                             f"per context, before each round: {', '.join(f'{g:.4f}' for g in gaps)}).")
        information = info.get("latent_information")
        if information:
            saved = ", ".join(f"`{name}` {m['saved']:.2f}" for name, m in information.items())
            lines.append(f"What the latent tells the decoder, in nats per validation row that a row's own latent "
                         f"saves against another row's: {saved}. The decoder draws the columns near zero from the "
                         "columns written before them.")
            if latent_collapsed(information):
                lines.append("**The latent steers almost nothing**: the VAE collapsed to one soft prompt for every "
                             "row, so the rows come from the decoder alone and latent controls have no effect.")
        if self.diffusion is not None:
            summary = info.get("diffusion") or {}
            lines.append(f"Prior: EDM latent diffusion ({config.diffusion_steps} training steps in "
                         f"{summary.get('seconds', 0):.1f} s; Heun sampler, {config.sampling_steps} steps).")
        else:
            lines.append("Prior: N(0, I) (no diffusion model).")
        if config.target_columns:
            names = ", ".join(f"`{c}`" for c in config.target_columns)
            lines.append(f"Target columns {names}: the encoder does not read them"
                         + (", and they are drawn again from the decoder alone, given the rest of each row the latent "
                            "drew." if config.redraw_targets else "."))
        order = order_card_line(config.column_order, list(self.schema.fields))
        return lines + ([order] if order else [])

    # ------------------------------------------------------------------ persistence
    def _save_components(self, directory: str) -> dict[str, Any]:
        decoder_meta = self.lm._save_components(os.path.join(directory, DECODER_DIR),
                                                include_model=self.config.decoder is None)
        encoder_dir = os.path.join(directory, ENCODER_DIR)
        self.vae.encoder.backbone.save_pretrained(encoder_dir, safe_serialization=True)
        if self.encoder_tokenizer is not None:
            self.encoder_tokenizer.save_pretrained(encoder_dir)
        latent_dir = os.path.join(directory, LATENT_DIR)
        os.makedirs(latent_dir)
        from safetensors.torch import save_file

        trainable = {name: tensor.contiguous() for name, tensor in self.vae.state_dict().items()
                     if not name.startswith("encoder.backbone.")}
        save_file(trainable, os.path.join(latent_dir, "model.safetensors"))
        with open(os.path.join(latent_dir, "config.json"), "w", encoding="utf-8") as f:
            json.dump(self._latent_config().__dict__, f, indent=2)
        if self.diffusion is not None:
            self.diffusion.save_pretrained(os.path.join(directory, DIFFUSION_DIR))
        return {
            "components": {
                DECODER_DIR: {"class": "LMGenerator", "trained": self.config.decoder is None,
                              "model": decoder_meta["components"]["model"], "tokenizer": decoder_meta["components"]["tokenizer"]},
                ENCODER_DIR: {"class": type(self.vae.encoder.backbone).__name__,
                              "tokenizer": "decoder" if self.encoder_tokenizer is None else "own"},
                LATENT_DIR: {"class": "RecordEncoder head + LatentInjection"},
                DIFFUSION_DIR: {"class": "LatentDiffusion"} if self.diffusion is not None else None,
            },
            "decoder": {"config": self.lm.config.to_dict(), "text_limits": decoder_meta["text_limits"],
                        "max_new_tokens": decoder_meta["max_new_tokens"], "context_length": self.lm.training_info["context_length"]},
        }

    def _latent_config(self) -> LatentConfig:
        injection = self.vae.injection
        return LatentConfig(encoder_hidden=self.vae.encoder.backbone.config.hidden_size,
                            latent_dim=self.config.latent_dim, num_virtual_tokens=injection.num_virtual_tokens,
                            prefix_length=0 if injection.prefix is None else injection.prefix.shape[1],
                            decoder_hidden=injection.slot_embedding.shape[-1],
                            vocab_size=self.vae.output_bias.shape[0])

    def _load_components(self, directory: str, meta: dict[str, Any]) -> None:
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        components, decoder_meta = meta.get("components", {}), meta.get("decoder", {})
        try:
            lm = LMGenerator(LMGeneratorConfig.from_dict(decoder_meta["config"]))
            lm.schema = self.schema
            lm.training_info = {"context_length": decoder_meta.get("context_length"),
                                "max_record_tokens": meta.get("training", {}).get("max_record_tokens")}
            lm._load_components(os.path.join(directory, DECODER_DIR), {
                "components": {"model": components[DECODER_DIR]["model"], "tokenizer": components[DECODER_DIR]["tokenizer"]},
                "text_limits": decoder_meta.get("text_limits", {}), "max_new_tokens": decoder_meta.get("max_new_tokens", 256),
            })
            lm.model.requires_grad_(False)
            encoder_dir = os.path.join(directory, ENCODER_DIR)
            own_tokens = components[ENCODER_DIR].get("tokenizer") == "decoder"  # the BERT trained from scratch
            backbone = AutoModel.from_pretrained(encoder_dir, trust_remote_code=False, use_safetensors=True,
                                                 **({"add_pooling_layer": False} if own_tokens else {}))
            self.encoder_tokenizer = None if own_tokens else AutoTokenizer.from_pretrained(encoder_dir, trust_remote_code=False)
            with open(os.path.join(directory, LATENT_DIR, "config.json"), encoding="utf-8") as f:
                latent = LatentConfig(**json.load(f))
            slot = torch.zeros(latent.decoder_hidden)
            vae = DiffLMVAE(RecordEncoder(backbone, latent.latent_dim), LatentInjection(latent, slot), latent.vocab_size)
            state = load_file(os.path.join(directory, LATENT_DIR, "model.safetensors"))
            state = upgraded_latent_state(state)
            # the offsets' shapes depend on the data: size the buffers first
            vae.set_context_bias(state["context_keys"], state["context_tokens"], state["context_table"])
            missing, unexpected = vae.load_state_dict({**{f"encoder.backbone.{k}": v for k, v in backbone.state_dict().items()},
                                                       **state}, strict=False)
            if missing or unexpected:
                raise GeneratorLoadError(f"the latent weights in {directory} do not match its config "
                                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            self.diffusion = LatentDiffusion.from_pretrained(os.path.join(directory, DIFFUSION_DIR)) \
                if components.get(DIFFUSION_DIR) else None
        except GeneratorLoadError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
            raise GeneratorLoadError(f"cannot load the DiffLM generator in {directory}: {err}") from None
        self.lm, self.vae = lm, vae.eval()


def _summary(history: dict | None) -> dict | None:
    if history is None:
        return None
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in history.items() if not isinstance(v, list)}
