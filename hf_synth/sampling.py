"""The sampling core shared by LM-based generators: batched, KV-cached, schema-constrained decoding.

For each batch: (1) write each row's prompt (the record opening plus its conditioned columns),
(2) left-pad the prompts, (3) run the automaton over each prompt to get its start state, (4) call
``generate`` with :class:`~hf_synth.constraints.SchemaLogitsProcessor`, (5) parse prompt plus
generated ids back into records. Every completed record is valid by construction; a record that
runs out of ``max_new_tokens`` is sampled again with twice the budget and counted as retried.

On a CPU with several threads, two batches are decoded at once, each in its own Python thread with
half of torch's threads (:func:`decoding_streams`). A decoding step of a small model is many small
operations, which two threads share out poorly, and Python work (``generate``'s loop, the
automaton, turning ids back into records) that runs on one core; two batches at once keep both
cores busy (Default's DiffLM decoder, 2 cores: 386 -> 441 rows/s). Each batch has its own seed, so
the rows do not depend on the streams.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from .constraints import RecordGrammar, SchemaLogitsProcessor
from .errors import HFSynthError
from .kv_cache import BufferedCache
from .schema import RecordSchema
from .naming_tokens import naming_context, next_naming_context
from .tokenizer import PieceVocab, encode_prompt

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 4
#: Prompt tokens a batch may hold at most: ``generate`` reads all of a batch's prompts in one forward
#: pass, and a wide batch of long prompts (conditions on most columns, DiffLM's redrawn targets)
#: outgrows the CPU's caches. 1,024 prompts of 95 tokens took 1.8x as long in one pass as in
#: passes of 128.
MAX_PROMPT_TOKENS = 16_384
#: Batches decoded at once on a CPU (see the module docstring); more streams contend for the GIL.
MAX_STREAMS = 2
#: ``prefix(row indices) -> (rows, P, hidden)`` input embeddings placed before each prompt.
PrefixEmbeddings = Callable[[list[int]], torch.Tensor]
#: ``output_bias(previous tokens (rows,), latest naming tokens (rows,), steps since them (rows,),
#: logits (rows, vocab)) -> biased logits`` of the next token (see :mod:`hf_synth.naming_tokens`).
OutputBiasFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass
class SamplingReport:
    """What a call to ``sample`` did."""

    requested: int
    produced: int
    retried: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.produced / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        return (f"requested {self.requested}, produced {self.produced}, retried {self.retried} "
                f"({self.rows_per_second:,.0f} rows/s)")


@dataclasses.dataclass
class DecodingOptions:
    batch_size: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    context_length: int | None = None
    #: Tokens of the longest training record: the room a key/value cache keeps after a prompt.
    record_tokens: int = 0
    progress: bool = True


def sample_records(
    model: torch.nn.Module,
    grammar: RecordGrammar,
    vocab: PieceVocab,
    schema: RecordSchema,
    rows: list[dict],
    *,
    seed: int,
    options: DecodingOptions,
    nonnull: list[Iterable[str]] | None = None,
    prefix: PrefixEmbeddings | None = None,
    output_bias: OutputBiasFn | None = None,
    naming: torch.Tensor | None = None,
) -> tuple[list[dict], SamplingReport]:
    """Sample one record per entry of ``rows`` (the fixed values of that row).

    ``prefix(indices)`` gives, for those rows, input embeddings ``(len(indices), P, hidden)`` placed
    before each prompt: soft prompts, or the embeddings of reserved prefix tokens.
    ``output_bias(previous, named, steps, logits)`` offsets each step's logits, given each row's
    last token, its latest token that ``naming`` (a mask over the vocabulary) says names a field,
    and the tokens since that one.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    if output_bias is not None and naming is None:
        naming = torch.zeros(vocab.vocab_size, dtype=torch.bool)  # no token names a field
    prompts = [encode_prompt(vocab, schema, values) for values in rows]
    nonnull = nonnull or [()] * len(rows)
    records: list[dict | None] = [None] * len(rows)
    pending = list(range(len(rows)))
    retried, budget = 0, options.max_new_tokens
    bar = tqdm(total=len(rows), disable=not options.progress, desc="sample", unit="row")
    several_batches = len(rows) > _batch_width(prompts, pending, options)
    with _decoding_threads(model, several_batches, options.record_tokens) as (streams, caches), \
            _contiguous_head_inputs(model):

        def decode(number: int, batch: list[int], attempt: int) -> list[dict | None]:
            batch_seed = (seed * 1_000_003 + attempt * 7_919 + number) % (2**63)
            cache = caches.get()  # a stream's own buffers, free while no other batch decodes into them
            try:
                return _decode_batch(model, grammar, [prompts[i] for i in batch], [nonnull[i] for i in batch],
                                     vocab, batch_seed, options, budget, cache,
                                     prefix(batch) if prefix is not None else None, output_bias, naming)
            finally:
                caches.put(cache)

        for attempt in range(MAX_ATTEMPTS):
            failed = []
            width = _batch_width(prompts, pending, options)
            batches = [pending[first : first + width] for first in range(0, len(pending), width)]
            for batch, results in zip(batches, streams(decode, range(len(batches)), batches, [attempt] * len(batches))):
                for index, record in zip(batch, results):
                    if record is None:
                        failed.append(index)
                    else:
                        records[index] = record
                        bar.update(1)
            if not failed:
                break
            retried += len(failed)
            pending, budget = failed, budget * 2
            logger.info("%d rows ran out of tokens; sampling them again with max_new_tokens=%d", len(failed), budget)
    bar.close()
    if pending and any(records[i] is None for i in pending):
        raise HFSynthError(f"{len(pending)} rows did not finish within {budget} new tokens")
    report = SamplingReport(len(rows), len(rows), retried, time.perf_counter() - start)
    return records, report


def _batch_width(prompts: list[list[int]], pending: list[int], options: DecodingOptions) -> int:
    """Rows per batch: ``batch_size``, fewer where long prompts would exceed :data:`MAX_PROMPT_TOKENS`."""
    return max(1, min(options.batch_size, MAX_PROMPT_TOKENS // max(len(prompts[i]) for i in pending)))


def decoding_streams(model: torch.nn.Module) -> int:
    """How many batches to decode at once: two on a CPU where torch has several threads, else one."""
    if next(model.parameters()).device.type != "cpu":
        return 1
    return max(1, min(MAX_STREAMS, torch.get_num_threads()))


@contextlib.contextmanager
def _decoding_threads(model: torch.nn.Module, several_batches: bool, record_tokens: int,
                      ) -> Iterator[tuple[Callable, "queue.Queue[BufferedCache]"]]:
    """A ``map`` over the decoding streams and a key/value cache for each. With one stream,
    batches decode in the calling thread; with more, torch's threads are shared out between the
    streams while the pool is open."""
    streams = decoding_streams(model) if several_batches else 1
    caches: queue.Queue[BufferedCache] = queue.Queue()
    for _ in range(streams):
        caches.put(BufferedCache(model.config, new_tokens=record_tokens))  # buffers reused batch after batch
    if streams == 1:
        yield map, caches
        return
    threads = torch.get_num_threads()
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="hf_synth-decode") as pool:
        torch.set_num_threads(max(1, threads // streams))
        try:
            yield pool.map, caches
        finally:
            torch.set_num_threads(threads)


@contextlib.contextmanager
def _contiguous_head_inputs(model: torch.nn.Module) -> Iterator[None]:
    """Hand the output layer contiguous hidden states while sampling.

    At the first step ``generate`` keeps the logits of the last position only, a strided slice of
    the hidden states; a bfloat16 ``linear`` on such a 3-D slice copies the weight once per row
    (147 ms instead of 0.3 ms for 2,048 rows of a 128-wide model).
    """
    head = model.get_output_embeddings()
    if head is None:
        yield
        return
    handle = head.register_forward_pre_hook(
        lambda module, args: tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args))
    try:
        yield
    finally:
        handle.remove()


def _with_prefix(model, input_ids, attention, prefix, lengths) -> dict[str, torch.Tensor]:
    """``[pad | prefix | prompt]`` rows as input embeddings: each row's prefix sits right before its
    own (left-padded) prompt, so positions count from the prefix as in training."""
    tokens = model.get_input_embeddings()(input_ids.to(model.device))  # (B, W, H)
    batch, width, _ = tokens.shape
    slots = prefix.shape[1]
    embeds = tokens.new_zeros((batch, slots + width, tokens.shape[2]))  # (B, P + W, H)
    mask = torch.zeros((batch, slots + width), dtype=torch.long)
    prefix = prefix.to(device=tokens.device, dtype=tokens.dtype)
    for row, length in enumerate(lengths):
        start = width - length
        embeds[row, start : start + slots] = prefix[row]
        embeds[row, start + slots :] = tokens[row, start:]
        mask[row, start:] = 1
    return {"inputs_embeds": embeds, "attention_mask": mask}


class OutputBias(LogitsProcessor):
    """Adds logit offsets that depend on each row's previous token, the latest token that names a
    field and the steps since it (DiffLM's calibrated offsets), followed as
    :func:`~hf_synth.naming_tokens.naming_context` does."""

    def __init__(self, bias: OutputBiasFn, prompts: torch.Tensor, naming: torch.Tensor, prompt_length: int):
        self.bias = bias
        self.naming = naming
        self.prompt_length = prompt_length  # tokens of input_ids at the first step (0 with inputs_embeds)
        self.previous = prompts[:, -1]  # (B,) the last prompt tokens: the previous tokens of the first step
        named, steps = naming_context(prompts, naming)
        self.named, self.steps = named[:, -1], steps[:, -1]  # (B,) each

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] > self.prompt_length:  # a token was sampled at the step before
            self.previous = input_ids[:, -1]
            device = self.previous.device
            self.named, self.steps = next_naming_context(self.previous, self.named.to(device), self.steps.to(device),
                                                         self.naming)
        device = scores.device
        return self.bias(self.previous.to(device), self.named.to(device), self.steps.to(device), scores)


class SeededSample(LogitsProcessor):
    """Draws each row's next token from ``softmax(scores)`` with a seeded generator, and leaves only
    that token finite, so that greedy decoding picks it.

    Inverse transform sampling takes one uniform per row; Gumbel-max would take one per vocabulary
    entry, and drawing those was most of a step's cost outside the model. ``torch.multinomial``
    would draw from torch's global generator, which the seed must stay out of.
    """

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        cumulative = torch.softmax(scores.float(), dim=-1).cumsum(dim=-1)  # (B, V)
        # u in (0, total]: the first entry to reach it has a probability above zero
        uniform = 1.0 - torch.rand((scores.shape[0], 1), generator=self.generator, dtype=torch.float64)
        threshold = (uniform.to(scores.device) * cumulative[:, -1:]).to(cumulative.dtype)
        choice = torch.searchsorted(cumulative, threshold).clamp_(max=scores.shape[1] - 1)  # (B, 1)
        return torch.full_like(scores, float("-inf")).scatter_(1, choice, 0.0)


@torch.no_grad()
def _decode_batch(model, grammar, prompts, nonnull, vocab, seed, options, max_new_tokens, cache: BufferedCache,
                  prefix: torch.Tensor | None = None, output_bias: OutputBiasFn | None = None,
                  naming: torch.Tensor | None = None) -> list[dict | None]:
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), vocab.pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    states = []
    for row, (prompt, columns) in enumerate(zip(prompts, nonnull)):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention[row, width - len(prompt) :] = 1
        state = grammar.feed(grammar.initial_state(nonnull=columns), prompt)
        states.append(grammar.with_natural_order(state))
    inputs: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention}
    if prefix is not None:
        inputs = _with_prefix(model, input_ids, attention, prefix, [len(p) for p in prompts])
    length = inputs["attention_mask"].shape[1]
    if options.context_length is not None:
        # positions past the model's context do not exist (GPT-2 learns one embedding per position)
        max_new_tokens = min(max_new_tokens, options.context_length - length)
        if max_new_tokens <= 0:
            raise HFSynthError(f"the conditions take {length} tokens, the whole context of the model")
    # with inputs_embeds, generate hands the logits processors only the new tokens
    processor = SchemaLogitsProcessor(grammar, states, width if prefix is None else 0)
    processors = [processor]
    if output_bias is not None:
        processors.insert(0, OutputBias(output_bias, input_ids, naming, width if prefix is None else 0))
    if options.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(options.temperature))
    if options.top_p < 1.0:
        processors.append(TopPLogitsWarper(options.top_p))
    processors.append(SeededSample(seed))
    # finished rows repeat the end token rather than pad: when no prompt is padded, generate drops
    # the all-ones attention mask, and pad ids in the inputs would then draw a warning that one is needed
    config = GenerationConfig(
        do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=vocab.eos_id, eos_token_id=vocab.eos_id,
    )
    cache.reset()
    output = model.generate(
        **{name: tensor.to(device) for name, tensor in inputs.items()},
        generation_config=config, logits_processor=LogitsProcessorList(processors),
        past_key_values=cache,
    )
    generated = (output[:, width:] if prefix is None else output).tolist()
    results = []
    for prompt, tokens in zip(prompts, generated):
        try:
            results.append(grammar.parse(prompt + tokens, trusted=True))
        except HFSynthError:  # the record ran out of new tokens before it was closed
            results.append(None)
    return results
