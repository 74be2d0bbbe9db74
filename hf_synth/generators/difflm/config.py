"""Configuration of :class:`~hf_synth.generators.difflm.DiffLMGenerator`."""

from __future__ import annotations

import dataclasses

from ...configuration import ConfigError, GeneratorConfig, check_column_order, column_names, in_range, positive

#: Bounds that keep a fit meaningful: a latent must carry something, a soft prompt must fit the context.
MAX_LATENT_DIM = 1024
MAX_VIRTUAL_TOKENS = 64
#: Fewest rows a round of calibration samples when ``calibration_samples`` is ``None``.
MIN_CALIBRATION_SAMPLES = 8192
#: ``LMGeneratorConfig.prefix_hints`` of the decoder trained from scratch, unless ``decoder_options`` sets it.
DECODER_PREFIX_HINTS = 0.5


@dataclasses.dataclass
class DiffLMGeneratorConfig(GeneratorConfig):
    """Configuration of :class:`DiffLMGenerator` (DiffLM, arXiv 2411.03250).

    Args:
        decoder: Hub id or local path of a pretrained causal LM used as the frozen decoder. ``None``
            (the offline default) first trains the LM generator's own small GPT-2 on the data (with
            ``num_virtual_tokens + prefix_length`` reserved positions), then freezes it.
        decoder_revision: Revision of ``decoder`` on the Hub.
        decoder_options: :class:`~hf_synth.LMGeneratorConfig` fields for the decoder trained from
            scratch (``n_layer``, ``n_embd``, ``epochs``, ...). ``prefix_hints`` defaults to
            :data:`DECODER_PREFIX_HINTS` here: half the records it trains on hold some of their own
            tokens where the soft prompt will go, so the frozen decoder has learned to read those
            positions (on Beijing PM2.5 the latent then told the decoder 19.7 nats per row instead of
            13.7, and the trend error fell from 3.71 to 3.37 %; benchmarks/RESULTS.md).
        encoder: Hub id or local path of a Hugging Face encoder (e.g. a BERT) that reads the record as
            JSON text; ``None`` trains a small BERT from scratch on the decoder's record tokens.
        encoder_revision: Revision of ``encoder`` on the Hub.
        encoder_layers, encoder_hidden, encoder_heads: Size of the encoder trained from scratch.
        latent_dim: Size ``d`` of the latent ``z``.
        num_virtual_tokens: ``k``: the latent becomes ``k`` soft-prompt vectors (``Linear(d, k*hidden)``).
        prefix_length: Learned prefix vectors placed before the soft prompt (0: the plain soft prompt).
        vae_epochs: Maximum passes over the data while training the encoder and the projection.
        batch_size: VAE training batch size.
        learning_rate: VAE learning rate (AdamW).
        weight_decay: AdamW weight decay of the VAE.
        beta_max, beta_min: The KL weight starts at ``beta_max`` and is multiplied by ``beta_decay``
            each time the validation loss has not improved for ``beta_patience`` evaluations, down
            to ``beta_min``.
        beta_decay, beta_patience: See above.
        calibration: After the prior, fit logit offsets exactly so that the decoder's average
            predictions match the training rows (``calibration.py``): ``"context"`` (per token and
            per (context, token) pair, a context being the previous token, the latest token that
            names a field and the steps since it), ``"token"`` (per token) or ``"none"`` (keep the
            per-token bias as trained with the VAE).
        calibration_rounds: With ``calibration="context"``, rounds that then move the (context,
            token) offsets so that sampled rows follow each context with the tokens the training
            rows follow it with (0: none); contexts too rare to count alone are counted together
            by naming token and steps. Each round samples ``calibration_samples`` rows. Six
            rounds took the shape / trend error from 1.17 / 2.63 % to 0.89 / 2.23 % on UCI Adult
            and from 1.57 / 3.37 % to 0.76 / 2.75 % on Beijing PM2.5, and counting rare contexts
            together took Adult's to 0.63 / 1.98 % (benchmarks/RESULTS.md); they cost a sampling
            of the training rows each.
        calibration_samples: Rows sampled in each of the ``calibration_rounds``; ``None``: as many
            as the fit trains on, at least :data:`MIN_CALIBRATION_SAMPLES`. More rows let the
            rounds move the offsets of rarer contexts.
        patience: Stop after this many evaluations without a better validation loss.
        eval_steps: Also evaluate every this many steps (0: once per epoch).
        validation_size, max_validation_rows: Rows held out for validation.
        diffusion_steps: Training steps of the latent diffusion model.
        diffusion_hidden: Width of the diffusion MLP.
        diffusion_batch_size: Diffusion training batch size.
        sampling_steps: Heun steps of the diffusion sampler.
        prior: ``"diffusion"`` (the latent diffusion model) or ``"normal"`` (z ~ N(0, I), for ablations).
        target_columns: Columns a downstream model will predict (e.g. a label); a name or a list. The
            encoder never reads them, so the latent carries only the other columns; the decoder
            trained here writes them last and weighs the tokens of categorical ones more in its loss
            (``target_loss_weight`` in ``decoder_options``, default 4); and with ``redraw_targets``
            they are drawn again from the decoder alone, given the rest of each row. A label read
            from a latent that encoded it loses part of its dependence on the features: on UCI
            Adult the AUC of a model trained on the rows went from 0.908 to 0.914
            (benchmarks/RESULTS.md).
        redraw_targets: See ``target_columns``. Reads each row again: on Default of credit card
            clients ~700 -> ~510 rows/s (2 CPU cores) for AUC 0.753 -> 0.762; on UCI Adult AUC
            0.911 -> 0.914. Needs the decoder trained on the data (``decoder=None``).
        column_order: The order the decoder writes a record's columns in (``target_columns`` last):
            ``"natural"`` (the data's), ``"dependence"`` (the columns most tied to the others first;
            ``hf_synth.column_order``) or a list of every column. A frozen decoder follows the latent
            only where it reads its context, and it reads little for the columns it writes first.
            ``"dependence"`` improved every figure on UCI Adult (trend error 2.45 -> 2.05 %) and the
            column shapes on Beijing PM2.5, but cost utility on Default of credit card clients (AUC
            0.762 -> 0.757), where it writes the long bill amounts first (benchmarks/RESULTS.md).
        sample_batch_size: Rows decoded together while sampling.
        temperature, top_p: Decoding temperature and nucleus threshold.
        seed: Seed of the split, initialisation, data order and default sampling seed.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    """

    decoder: str | None = None
    decoder_revision: str | None = None
    decoder_options: dict | None = None
    encoder: str | None = None
    encoder_revision: str | None = None
    encoder_layers: int = 2
    encoder_hidden: int = 128
    encoder_heads: int = 4
    latent_dim: int = 32
    num_virtual_tokens: int = 4
    prefix_length: int = 0
    vae_epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    beta_max: float = 0.01
    beta_min: float = 1e-5
    beta_decay: float = 0.7
    beta_patience: int = 1
    patience: int = 3
    calibration: str = "context"
    calibration_rounds: int = 6
    calibration_samples: int | None = None
    eval_steps: int = 0
    validation_size: float = 0.1
    max_validation_rows: int = 2000
    # 4000 steps left the prior short of the encoder means it models: on Default, 16000 brought the
    # shape / trend error from 2.10 / 3.02 % to 1.92 / 2.93 % (a perfect prior: 1.93 / 2.75 %), same
    # DCR, for ~80 s more on 2 CPU cores (benchmarks/RESULTS.md, "The prior, on Default")
    diffusion_steps: int = 16000
    diffusion_hidden: int = 256
    diffusion_batch_size: int = 1024
    sampling_steps: int = 50
    prior: str = "diffusion"
    target_columns: list | None = None
    redraw_targets: bool = True
    column_order: list | str = "natural"
    sample_batch_size: int = 2048
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        positive(self, "encoder_layers", "encoder_hidden", "encoder_heads", "vae_epochs", "batch_size",
                 "learning_rate", "beta_patience", "patience", "max_validation_rows", "diffusion_steps",
                 "diffusion_hidden", "diffusion_batch_size", "sampling_steps", "sample_batch_size", "temperature")
        name = type(self).__name__
        if not 1 <= self.latent_dim <= MAX_LATENT_DIM:
            raise ConfigError(f"{name}.latent_dim must be in [1, {MAX_LATENT_DIM}], got {self.latent_dim}")
        if not 1 <= self.num_virtual_tokens <= MAX_VIRTUAL_TOKENS:
            raise ConfigError(f"{name}.num_virtual_tokens must be in [1, {MAX_VIRTUAL_TOKENS}], got {self.num_virtual_tokens}")
        if not 0 <= self.prefix_length <= MAX_VIRTUAL_TOKENS:
            raise ConfigError(f"{name}.prefix_length must be in [0, {MAX_VIRTUAL_TOKENS}], got {self.prefix_length}")
        if self.encoder_hidden % self.encoder_heads:
            raise ConfigError(f"{name}.encoder_hidden ({self.encoder_hidden}) must be divisible by encoder_heads")
        if not 0 < self.beta_min <= self.beta_max:
            raise ConfigError(f"{name} needs 0 < beta_min <= beta_max, got {self.beta_min} and {self.beta_max}")
        in_range(self, "beta_decay", 1e-3, 1.0)
        in_range(self, "validation_size", 0.0, 0.5)
        in_range(self, "top_p", 0.0, 1.0)
        if self.calibration not in ("context", "token", "none"):
            raise ConfigError(f"{name}.calibration must be 'context', 'token' or 'none', got {self.calibration!r}")
        if self.calibration_rounds < 0:  # ints (not bools) are checked by GeneratorConfig
            raise ConfigError(f"{name}.calibration_rounds must be >= 0, got {self.calibration_rounds!r}")
        if self.calibration_samples is not None:
            positive(self, "calibration_samples")
        if self.prior not in ("diffusion", "normal"):
            raise ConfigError(f"{name}.prior must be 'diffusion' or 'normal', got {self.prior!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"{name}.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        self.target_columns = column_names(self, "target_columns")
        check_column_order(self)
        if self.target_columns and self.redraw_targets and self.decoder is not None:
            raise ConfigError(f"{name}.redraw_targets draws the targets from the decoder trained on the data; a "
                              "pretrained decoder never saw the records (leave decoder=None, or redraw_targets=False)")
        if self.decoder_options is not None:
            if self.decoder is not None:
                raise ConfigError(f"{name}.decoder_options configure the decoder trained from scratch; "
                                  "a pretrained decoder is used as it is")
            from ..lm import LMGeneratorConfig

            LMGeneratorConfig(**self.lm_options())  # names the bad field, if any

    @property
    def slots(self) -> int:
        """Input positions taken by the injected latent: the learned prefix plus the soft prompt."""
        return self.prefix_length + self.num_virtual_tokens

    def lm_options(self) -> dict:
        """LMGeneratorConfig fields of the decoder trained from scratch."""
        options = {"prefix_hints": DECODER_PREFIX_HINTS, **(self.decoder_options or {})}
        shared = {"prefix_slots": self.slots, "seed": self.seed, "device": self.device, "target_columns": self.target_columns,
                  "column_order": self.column_order,
                  # the same validation rows as the VAE's: the decoder never trains on them
                  "validation_size": self.validation_size, "max_validation_rows": self.max_validation_rows}
        reserved = sorted(set(options) & ({"model", "revision", "use_lora"} | set(shared)))
        if reserved:
            raise ConfigError(f"DiffLMGeneratorConfig.decoder_options may not set {reserved}; DiffLM sets them")
        return {**options, **shared}
