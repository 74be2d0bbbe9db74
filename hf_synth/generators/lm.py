"""LMGenerator: a causal language model over encoded records.

With nothing given, it trains a small GPT-2 from scratch with a tokenizer built from the data
(column names and categories as single tokens, numbers as digit tokens), so it works offline.
Given ``model="<Hub id or local path>"`` it fine-tunes that causal LM, fully or with LoRA (peft).
Sampling is constrained by the schema, so every row is valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
from typing import Any

import torch

from ..codec import RecordCodec
from ..column_order import dependence_order, order_card_line
from ..configuration import ConfigError, GeneratorConfig, check_column_order, column_names, in_range, positive
from ..constraints import RecordGrammar
from ..errors import GeneratorLoadError, HFSynthError, SchemaError
from ..io import load_input
from ..precision import cpu_has_native_bf16
from ..sampling import DecodingOptions, SamplingReport, sample_records
from ..schema import RecordSchema, readable_path
from ..tokenizer import (PieceVocab, PretrainedVocab, RecordTokenizer, column_token_counts, encode_record,
                         encode_record_with_columns, record_to_pieces)
from ..training import Example, TrainingArguments, train_causal_lm
from .base import BaseGenerator, register

logger = logging.getLogger(__name__)
MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"


@dataclasses.dataclass
class LMGeneratorConfig(GeneratorConfig):
    """Configuration of :class:`LMGenerator`.

    Args:
        model: Hub id or local path of a causal LM to fine-tune; ``None`` trains a small GPT-2 from
            scratch with a tokenizer built from the data (works offline).
        revision: Revision of ``model`` on the Hub.
        use_lora: Fine-tune ``model`` with LoRA adapters (peft) instead of all weights.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scaling and dropout.
        lora_target_modules: Modules that get adapters (``None``: peft's default for the architecture).
        n_layer, n_embd, n_head, dropout: Size of the model trained from scratch.
        text_vocab_size: BPE vocabulary size for free-text fields (model trained from scratch).
        digits_per_token: Digits one number token writes in the tokenizer built from the data, 1 or
            2 (model trained from scratch). With 2, a record of amounts takes about a quarter fewer
            tokens (UCI Default of credit card clients: 67 -> 50 per row), which shortens training
            and sampling; attention, the main cost of sampling long records, grows with the square
            of their length.
        epochs: Maximum number of passes over the training data.
        batch_size: Training batch size (records).
        learning_rate: Peak learning rate (``None``: 1e-3 from scratch, 5e-5 full fine-tuning, 2e-4 LoRA).
        weight_decay, warmup_ratio: AdamW weight decay; share of steps with linear warm-up.
        validation_size: Share of rows held out for validation (at most ``max_validation_rows``).
        max_validation_rows: Upper bound on the validation rows.
        patience: Stop after this many evaluations without a better validation loss. Mid-schedule
            the validation loss of a model trained from scratch stalls for an epoch or two before
            the decaying learning rate lowers it again, so a short patience ends training early.
        eval_steps: Also evaluate every this many steps (0: once per epoch).
        checkpoint_steps: Write a resumable checkpoint every this many steps (0: only at evaluations).
        permute_probability: Share of training records written with a random subset of columns first
            (so any subset can be given as a condition); the rest use the natural column order.
        max_length: Context length of the model trained from scratch (``None``: fitted to the data).
        prefix_slots: Positions reserved before every record: training records start with this many
            ``<bos>`` tokens. A decoder trained this way takes a soft prompt of that length in their
            place (DiffLM); 0 for a plain LM generator. Only for a model trained from scratch.
        prefix_hints: Share of training records whose reserved positions hold some of the record's
            own tokens (1 to ``prefix_slots`` of them, shuffled, from columns other than the targets)
            instead of ``<bos>``. A model that only ever saw ``<bos>`` there learns to ignore those
            positions, and a soft prompt written there then steers it weakly; one trained with hints
            has learned to read them. The hints carry no loss, and validation uses ``<bos>`` slots.
        seed: Seed of the train/validation split, initialisation, data order and default sampling seed.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"auto"``: bf16 autocast for a model
            trained from scratch on hardware with native bf16 (a CUDA GPU that supports it, or a CPU
            with AMX or AVX512-BF16, where it trains ~1.5-2x faster); full precision otherwise.
        sample_batch_size: Rows decoded together while sampling.
        sample_dtype: ``"float32"``, ``"bfloat16"`` or ``"auto"``: for a model trained from scratch,
            a bfloat16 copy on CPUs with native bf16 dot products (AMX or AVX512-BF16), where it
            samples ~1.3-1.5x faster; float32 elsewhere.
        temperature, top_p: Sampling temperature and nucleus threshold.
        target_columns: Columns a downstream model will predict (e.g. a label). The model writes
            them after the other columns, so it learns them given the whole row; the tokens of the
            categorical ones weigh ``target_loss_weight`` times as much as the others in the training
            loss, so the model learns them from the other columns more closely. Utility on synthetic
            rows is bounded by how well the generator knows the target (benchmarks/RESULTS.md).
            Numeric targets are not weighed: their digits are shared with every numeric column, and
            weighing them distorted their distribution. A name or a list.
        target_loss_weight: See ``target_columns`` (1: an ordinary loss).
        column_order: The order the model writes a record's columns in (``target_columns`` always
            last): ``"natural"`` (the data's), ``"dependence"`` (the columns most tied to the others
            first, by mutual information; see ``hf_synth.column_order``) or a list of every column.
            Sampled rows keep the data's column order either way.
    """

    model: str | None = None
    revision: str | None = None
    use_lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list | None = None
    n_layer: int = 3
    n_embd: int = 128
    n_head: int = 4
    dropout: float = 0.1
    text_vocab_size: int = 2000
    digits_per_token: int = 2
    epochs: int = 16
    batch_size: int = 64
    learning_rate: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    validation_size: float = 0.1
    max_validation_rows: int = 2000
    patience: int = 4
    eval_steps: int = 0
    checkpoint_steps: int = 500
    permute_probability: float = 0.5
    max_length: int | None = None
    prefix_slots: int = 0
    prefix_hints: float = 0.0
    seed: int = 0
    device: str = "auto"
    mixed_precision: str = "auto"
    sample_batch_size: int = 2048
    sample_dtype: str = "auto"
    temperature: float = 1.0
    top_p: float = 1.0
    target_columns: list | None = None
    target_loss_weight: float = 4.0
    column_order: list | str = "natural"

    def validate(self) -> None:
        positive(self, "lora_r", "lora_alpha", "n_layer", "n_embd", "n_head", "epochs", "batch_size",
                 "sample_batch_size", "patience", "max_validation_rows", "text_vocab_size", "temperature")
        in_range(self, "validation_size", 0.0, 0.5)
        in_range(self, "permute_probability", 0.0, 1.0)
        in_range(self, "prefix_hints", 0.0, 1.0)
        positive(self, "target_loss_weight")
        self.target_columns = column_names(self, "target_columns")
        check_column_order(self)
        in_range(self, "top_p", 0.0, 1.0)
        in_range(self, "lora_dropout", 0.0, 1.0)
        in_range(self, "dropout", 0.0, 1.0)
        if self.digits_per_token not in (1, 2) or isinstance(self.digits_per_token, bool):
            raise ConfigError(f"LMGeneratorConfig.digits_per_token must be 1 or 2, got {self.digits_per_token!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"LMGeneratorConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.use_lora and self.model is None:
            raise ConfigError("LMGeneratorConfig.use_lora needs a pretrained model; set model to a Hub id or path")
        if self.sample_dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"LMGeneratorConfig.sample_dtype must be 'auto', 'float32' or 'bfloat16', got {self.sample_dtype!r}")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ConfigError(f"LMGeneratorConfig.mixed_precision must be 'auto', 'no' or 'bf16', got {self.mixed_precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"LMGeneratorConfig.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ConfigError("LMGeneratorConfig.learning_rate must be > 0")
        if self.prefix_slots < 0:
            raise ConfigError("LMGeneratorConfig.prefix_slots must be >= 0")
        if self.prefix_slots and self.model is not None:
            raise ConfigError("LMGeneratorConfig.prefix_slots is for a model trained from scratch (model=None)")
        if self.prefix_hints and not self.prefix_slots:
            raise ConfigError("LMGeneratorConfig.prefix_hints needs prefix_slots > 0: the hints fill those positions")
        if self.max_length is not None and self.max_length < 8:
            raise ConfigError("LMGeneratorConfig.max_length must be at least 8")


@dataclasses.dataclass
class RecordSplit:
    """The seeded train/validation split of a dataset's records (see :meth:`LMGenerator.prepare`)."""

    train_rows: list[dict]
    val_rows: list[dict]
    codec: RecordCodec


@register
class LMGenerator(BaseGenerator):
    """A causal LM trained on records; every sampled row is valid by construction.

    Example:
        >>> from hf_synth import LMGenerator
        >>> generator = LMGenerator(epochs=5).fit("adult.csv")
        >>> rows = generator.sample(100, conditions={"sex": "Female"}, seed=0)
        >>> generator.save_pretrained("adult-generator")
    """

    config_class = LMGeneratorConfig
    method = "lm"

    def __init__(self, config: LMGeneratorConfig | None = None, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.model: torch.nn.Module | None = None
        self.vocab: PieceVocab | None = None
        self.grammar: RecordGrammar | None = None
        self.text_limits: dict[str, int] = {}
        self.max_new_tokens = 0
        self.hf_tokenizer = None
        self._bf16_model: tuple[torch.nn.Module, torch.nn.Module] | None = None  # (source, copy)

    # ------------------------------------------------------------------ fit
    def fit(self, dataset: Any, *, checkpoint_dir: str | None = None, progress: bool = True, **load_kwargs: Any) -> "LMGenerator":
        """Train on ``dataset``.

        Args:
            dataset: A `datasets.Dataset`, DataFrame, list of dicts, file path, saved dataset
                directory or Hub id (``config=``, ``split=``, ``columns=`` choose what to read).
            checkpoint_dir: Where to keep resumable checkpoints; a fit interrupted and started again
                with the same data and config resumes from the last one.
            progress: Show a progress bar with the loss.
        """
        config = self.config
        data = load_input(dataset, **load_kwargs)
        check_target_columns(config.target_columns, data.column_names)
        split = self.prepare(data)
        schema, vocab, codec, slots = self.schema, self.vocab, split.codec, config.prefix_slots

        targets, weight = set(self._weighed_targets()), config.target_loss_weight
        weighed = (bool(targets) and weight != 1.0) or config.prefix_hints > 0
        no_hints = set(config.target_columns or ()) | {""}  # "": the record's braces

        def train_examples(epoch: int) -> list[Example]:
            epoch_rng = random.Random(config.seed * 7_919 + epoch)
            hint_rng = random.Random(f"{config.seed}:{epoch}:hints")  # its own stream: the orders stay as without hints
            examples: list[Example] = []
            for r in split.train_rows:
                ids, columns = encode_record_with_columns(vocab, schema, r, codec.training_order(epoch_rng, config.permute_probability))
                head = [vocab.bos_id] * slots
                if config.prefix_hints and hint_rng.random() < config.prefix_hints:
                    head = hinted_slots([t for t, c in zip(ids, columns) if c not in no_hints], slots, vocab.bos_id, hint_rng)
                ids = head + ids
                # the positions before the record carry no loss when they may hold hints
                examples.append((ids, [0.0 if config.prefix_hints else 1.0] * slots
                                 + [weight if c in targets else 1.0 for c in columns]) if weighed else ids)
            return examples

        val_examples = [[vocab.bos_id] * slots + encode_record(vocab, schema, r) for r in split.val_rows]
        lr = config.learning_rate or (1e-3 if config.model is None else (2e-4 if config.use_lora else 5e-5))
        args = TrainingArguments(
            epochs=config.epochs, batch_size=config.batch_size, learning_rate=lr, weight_decay=config.weight_decay,
            warmup_ratio=config.warmup_ratio, patience=config.patience, seed=config.seed, eval_steps=config.eval_steps,
            checkpoint_steps=config.checkpoint_steps, checkpoint_dir=checkpoint_dir, progress=progress, device=config.device,
            mixed_precision=self._mixed_precision(),
        )
        run_key = f"{schema.fingerprint}:{hashlib.sha256(config.to_json().encode()).hexdigest()[:16]}"
        result = train_causal_lm(self.model, train_examples, len(split.train_rows), val_examples, vocab.pad_id, args, run_key)
        self.training_info.update({
            "dataset": dataset_name(dataset),
            "epochs": result.epochs, "steps": result.steps, "best_validation_loss": round(result.best_val_loss, 5),
            "stopped_early": result.stopped_early, "fit_seconds": round(result.seconds, 1), "history": result.history,
        })
        return self

    def _weighed_targets(self) -> list[str]:
        """The target columns whose tokens the loss weighs: labels written as one token per category.
        Weighing the digits of a numeric target distorted its distribution and its neighbours'
        (benchmarks/RESULTS.md, Beijing)."""
        return [c for c in self.config.target_columns or () if self.schema.fields[c].kind in ("categorical", "bool")]

    def prepare(self, data: Any) -> "RecordSplit":
        """Everything :meth:`fit` does before training: the schema, the vocabulary, the context length,
        the model (new, or the pretrained one) and the seeded train/validation split of the rows.

        DiffLM uses it to wrap a pretrained causal LM that it keeps frozen.
        """
        config = self.config
        data = load_input(data)
        schema = RecordSchema.from_dataset(data)
        for warning in schema.warnings:
            logger.warning(warning)
        if data.num_rows < 2:
            raise SchemaError("the dataset needs at least 2 rows (one for training, one for validation)")
        records = data.to_list()
        if config.column_order == "dependence":
            schema = schema.with_order(dependence_order(schema, records, seed=config.seed))
        elif config.column_order != "natural":
            schema = schema.with_order(config.column_order)
        if config.target_columns:  # features first, then the targets given them: p(x) p(y | x)
            schema = schema.with_columns_last(config.target_columns)
        vocab, model_source = self._build_vocab(schema, records)
        counts = [column_token_counts(vocab, schema, r) for r in records]
        lengths = [sum(c.values()) for c in counts]
        self.text_limits = _text_limits(vocab, schema, records)
        self.max_new_tokens = _length_bound(schema, counts)
        slots = config.prefix_slots
        context = self._context_length(model_source, self.max_new_tokens + 8 + slots)
        longest = max(lengths)
        if longest + slots > context:
            worst = counts[lengths.index(longest)]
            top = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
            detail = ", ".join(f"{readable_path(c) or 'structure'} ({n} tokens)" for c, n in top)
            raise SchemaError(
                f"the longest record is {longest} tokens but the model's context is {context}; the longest "
                f"columns are {detail}. Drop or shorten them (--columns), or use a model with a longer context"
            )
        self.max_new_tokens = min(self.max_new_tokens, context - slots)

        train_rows, val_rows = split_records(records, config.seed, config.validation_size, config.max_validation_rows)
        torch.manual_seed(config.seed)
        self.model = self._build_model(model_source, vocab, context)
        self.schema, self.vocab = schema, vocab
        self.source = None  # no longer the saved generator it may have been loaded from
        self.grammar = RecordGrammar(schema, vocab, self.text_limits)
        self.training_info = {
            "rows": data.num_rows, "train_rows": len(train_rows), "validation_rows": len(val_rows),
            "fingerprint": schema.fingerprint, "dataset": None, "epochs": 0, "steps": 0,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "context_length": context, "max_record_tokens": longest,
        }
        return RecordSplit(train_rows, val_rows, RecordCodec(schema))

    def _mixed_precision(self) -> str:
        if self.config.mixed_precision != "auto":
            return self.config.mixed_precision
        if self.config.model is not None:
            return "no"
        if torch.cuda.is_available() and self.config.device != "cpu":
            return "bf16" if torch.cuda.is_bf16_supported() else "no"
        return "bf16" if cpu_has_native_bf16() else "no"

    def _build_vocab(self, schema: RecordSchema, records: list[dict]) -> tuple[PieceVocab, str | None]:
        if self.config.model is None:
            texts = [item[1] for r in records for _, item in record_to_pieces(schema, r) if item[0] == "text"]
            return RecordTokenizer.build(schema, texts, self.config.text_vocab_size,
                                         digit_pairs=self.config.digits_per_token == 2), None
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.config.model, revision=self.config.revision, trust_remote_code=False)
        except (OSError, ValueError) as err:
            raise HFSynthError(f"cannot load the tokenizer of {self.config.model!r}: {err}") from None
        self.hf_tokenizer = tokenizer
        return PretrainedVocab(schema, tokenizer), self.config.model

    def _context_length(self, model_source: str | None, needed: int) -> int:
        if model_source is None:
            return self.config.max_length or ((needed + 7) // 8) * 8
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(model_source, revision=self.config.revision, trust_remote_code=False)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            if getattr(model_config, name, None):
                return int(getattr(model_config, name))
        return needed

    def _build_model(self, model_source: str | None, vocab: PieceVocab, context: int) -> torch.nn.Module:
        config = self.config
        if model_source is None:
            from transformers import GPT2Config, GPT2LMHeadModel

            model_config = GPT2Config(
                vocab_size=vocab.vocab_size, n_positions=context, n_embd=config.n_embd, n_layer=config.n_layer,
                n_head=config.n_head, resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
                bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id, pad_token_id=vocab.pad_id,
                activation_function="gelu",  # exact GELU: a fused kernel, much faster on CPU than gelu_new
            )
            return _with_causal_lm_loss(GPT2LMHeadModel(model_config))
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(model_source, revision=config.revision,
                                                         trust_remote_code=False, use_safetensors=True)
        except (OSError, ValueError) as err:
            raise HFSynthError(f"cannot load the causal LM {model_source!r} (safetensors weights required): {err}") from None
        model = _with_causal_lm_loss(model)
        if config.use_lora:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=config.lora_target_modules, task_type="CAUSAL_LM")
            model = get_peft_model(model, lora)
        return model

    # ------------------------------------------------------------------ sampling
    def _sample_rows(self, rows: list[dict], *, seed: int, nonnull: list[tuple] | None = None,
                     batch_size: int | None = None, temperature: float | None = None, top_p: float | None = None,
                     numeric_bounds: dict[str, tuple[float, float]] | None = None, progress: bool = True,
                     ) -> tuple[list[dict], SamplingReport]:
        grammar, options = self.decoding(
            batch_size=batch_size or self.config.sample_batch_size,
            temperature=self.config.temperature if temperature is None else temperature,
            top_p=self.config.top_p if top_p is None else top_p, numeric_bounds=numeric_bounds, progress=progress)
        model = self._sampling_model()
        return sample_records(model, grammar, self.vocab, self.schema, rows, seed=seed, options=options,
                              nonnull=nonnull, prefix=self._slot_prefix(model))

    def decoding(self, *, batch_size: int, temperature: float, top_p: float,
                 numeric_bounds: dict[str, tuple[float, float]] | None, progress: bool,
                 ) -> tuple[RecordGrammar, DecodingOptions]:
        """The grammar and decoding options of a sampling call (also used by DiffLM, whose decoder this is)."""
        grammar = self.grammar
        if numeric_bounds:
            unknown = [c for c in numeric_bounds if c not in self.schema.fields or self.schema.fields[c].kind != "numeric"]
            if unknown:
                raise HFSynthError(f"numeric_bounds names columns that are not numeric: {unknown}")
            grammar = RecordGrammar(self.schema, self.vocab, self.text_limits, numeric_bounds)
        options = DecodingOptions(batch_size=batch_size, temperature=temperature, top_p=top_p,
                                  max_new_tokens=self.max_new_tokens, progress=progress,
                                  context_length=self.training_info.get("context_length"),
                                  record_tokens=self.training_info.get("max_record_tokens") or 0)
        if options.batch_size <= 0 or options.temperature <= 0:
            raise HFSynthError("batch_size and temperature must be > 0")
        return grammar, options

    def _slot_prefix(self, model: torch.nn.Module) -> Any:
        """The reserved ``<bos>`` positions of a decoder trained with ``prefix_slots``, as a prefix."""
        if not self.config.prefix_slots:
            return None
        ids = torch.full((1, self.config.prefix_slots), self.vocab.bos_id, dtype=torch.long, device=model.device)
        with torch.no_grad():
            slots = model.get_input_embeddings()(ids)  # (1, P, H)
        return lambda rows: slots.expand(len(rows), -1, -1)

    def _sampling_model(self) -> torch.nn.Module:
        """The model used for decoding: a bfloat16 copy where that is faster (``sample_dtype``)."""
        dtype = self.config.sample_dtype
        device = next(self.model.parameters()).device
        if dtype == "auto":
            small = self.config.model is None  # a pretrained model would be copied at full size
            dtype = "bfloat16" if small and device.type == "cpu" and cpu_has_native_bf16() else "float32"
        if dtype == "float32" or next(self.model.parameters()).dtype == torch.bfloat16:
            return self.model
        cached = self._bf16_model
        if cached is None or cached[0] is not self.model:
            import copy

            cached = self._bf16_model = (self.model, copy.deepcopy(self.model).to(torch.bfloat16).eval())
        return cached[1]

    def card_training_lines(self) -> list[str]:
        config, info = self.config, {"parameters": 0, "context_length": 0, "epochs": 0, "steps": 0, "fit_seconds": 0,
                                     "best_validation_loss": None, "stopped_early": False, **self.training_info}
        model = (f"`{config.model}` fine-tuned" + (" with LoRA" if config.use_lora else "")) if config.model \
            else f"GPT-2 trained from scratch ({config.n_layer} layers, width {config.n_embd})"
        lines = [
            f"Model: {model}, {info['parameters']:,} parameters, context {info['context_length']} tokens.",
            f"Trained {info['epochs']} epochs ({info['steps']} steps) in {info['fit_seconds']} s; best validation "
            f"loss {info['best_validation_loss']}" + (" (stopped early)." if info["stopped_early"] else "."),
        ]
        if isinstance(self.vocab, RecordTokenizer):
            per = "two digits" if self.vocab.digit_pairs else "digit"
            lines.append(f"Tokenizer: built from the data, {self.vocab.vocab_size:,} tokens; a token per column name "
                         f"and category, a token per {per} of a number.")
        if config.target_columns:
            targets = ", ".join(f"`{c}`" for c in config.target_columns)
            weighed = ", ".join(f"`{c}`" for c in self._weighed_targets())
            line = f"Target columns {targets}: written after the other columns"
            if weighed and config.target_loss_weight != 1.0:
                line += f"; the tokens of {weighed} weighed {config.target_loss_weight:g} times in the training loss"
            lines.append(line + ".")
        order = order_card_line(config.column_order, list(self.schema.fields))
        return lines + ([order] if order else [])

    # ------------------------------------------------------------------ persistence
    def _save_components(self, directory: str, include_model: bool = True) -> dict[str, Any]:
        """``include_model=False`` stores a pretrained model as its id and revision only (DiffLM's
        frozen decoder), not as a copy of its weights."""
        model_dir = os.path.join(directory, MODEL_DIR)
        tokenizer_dir = os.path.join(directory, TOKENIZER_DIR)
        if include_model:
            self.model.save_pretrained(model_dir, safe_serialization=True)
        elif self.config.model is None:
            raise HFSynthError("a model trained from scratch cannot be saved as a reference")
        if isinstance(self.vocab, RecordTokenizer):
            self.vocab.save(tokenizer_dir)
        else:
            self.hf_tokenizer.save_pretrained(tokenizer_dir)
        return {
            "components": {"model": ("peft" if self.config.use_lora else "transformers") if include_model else "reference",
                           "tokenizer": type(self.vocab).__name__},
            "text_limits": self.text_limits,
            "max_new_tokens": self.max_new_tokens,
        }

    def _load_components(self, directory: str, meta: dict[str, Any]) -> None:
        model_dir = os.path.join(directory, MODEL_DIR)
        tokenizer_dir = os.path.join(directory, TOKENIZER_DIR)
        components = meta.get("components", {})
        self.text_limits = meta.get("text_limits", {})
        self.max_new_tokens = meta.get("max_new_tokens", 256)
        try:
            if components.get("tokenizer") == "RecordTokenizer":
                self.vocab = RecordTokenizer.load(tokenizer_dir, self.schema)
            else:
                from transformers import AutoTokenizer

                self.hf_tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=False)
                self.vocab = PretrainedVocab(self.schema, self.hf_tokenizer)
            self.model = _load_model(model_dir, components.get("model"), self.config)
        except GeneratorLoadError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise GeneratorLoadError(f"cannot load the generator in {directory}: {err}") from None
        self.model.eval()
        self.grammar = RecordGrammar(self.schema, self.vocab, self.text_limits)


def _with_causal_lm_loss(model: torch.nn.Module) -> torch.nn.Module:
    """``model``, its loss named: transformers reads it from the class name, which some causal LMs
    ("GPT2LMHeadModel") do not tell, and then warns before using the causal-LM loss all the same."""
    if getattr(model, "loss_type", None) is None:
        model.loss_type = "ForCausalLM"
    return model


def check_target_columns(targets: list[str] | None, columns: list[str]) -> None:
    """``target_columns`` must be columns of the data, and leave at least one column besides."""
    unknown = [c for c in targets or () if c not in columns]
    if unknown:
        raise SchemaError(f"target_columns {unknown} are not columns of the data; columns: {list(columns)}")
    if targets and len(targets) == len(columns):
        raise SchemaError("target_columns name every column; a target is predicted from the other columns")


def split_records(records: list[dict], seed: int, validation_size: float, max_validation_rows: int,
                  ) -> tuple[list[dict], list[dict]]:
    """The seeded ``(train, validation)`` split: ``validation_size`` of the rows, at least one, at most
    ``max_validation_rows``."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_val = max(1, min(max_validation_rows, int(round(validation_size * len(records)))))
    return [records[i] for i in order[n_val:]], [records[i] for i in order[:n_val]]


def dataset_name(dataset: Any) -> str | None:
    """What the model card may say about the training data: a Hub id, or a local file's base name
    (never a local path, which can be private)."""
    if not isinstance(dataset, (str, os.PathLike)):
        return None
    dataset = str(dataset)
    return os.path.basename(os.path.normpath(dataset)) if os.path.exists(dataset) else dataset


def _load_model(model_dir: str, kind: str | None, config: LMGeneratorConfig) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    if kind == "reference":  # the pretrained model itself, from its id or path
        return AutoModelForCausalLM.from_pretrained(config.model, revision=config.revision,
                                                    trust_remote_code=False, use_safetensors=True)
    if kind == "peft":
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(config.model, revision=config.revision,
                                                    trust_remote_code=False, use_safetensors=True)
        return PeftModel.from_pretrained(base, model_dir)
    return AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=False, use_safetensors=True)


def _text_limits(vocab: PieceVocab, schema: RecordSchema, records: list[dict]) -> dict[str, int]:
    """Longest free text of each text field, in tokens (sampled text may not be longer)."""
    limits: dict[str, int] = {}
    for record in records:
        for _, item in record_to_pieces(schema, record):
            if item[0] == "text":
                limits[item[2]] = max(limits.get(item[2], 0), len(vocab.text_ids(item[1])))
    return limits


def _length_bound(schema: RecordSchema, counts: list[dict[str, int]]) -> int:
    """A generous bound on the tokens of a sampled record: each column's longest value plus slack
    for signs, decimals and longer numbers, lists or texts that the schema allows."""
    total = 0
    for column in ["", *schema.fields]:
        longest = max(c.get(column, 0) for c in counts)
        fs = schema.fields.get(column)
        slack = 4 if fs is None or fs.kind != "numeric" else (26 if fs.scientific else 4)
        if fs is not None and fs.kind in ("list", "struct", "text"):
            slack += longest // 2
        total += longest + slack
    return total


def hinted_slots(tokens: list[int], slots: int, bos_id: int, rng: random.Random) -> list[int]:
    """``slots`` positions holding 1 to ``slots`` of ``tokens`` (drawn without replacement) and
    ``<bos>`` elsewhere, in a random order (see ``LMGeneratorConfig.prefix_hints``)."""
    count = rng.randint(1, min(slots, len(tokens))) if tokens else 0
    head = rng.sample(tokens, count) + [bos_id] * (slots - count)
    rng.shuffle(head)
    return head
