"""A key/value cache for ``generate`` that writes each step in place instead of concatenating.

transformers' ``DynamicLayer`` grows its keys and values with ``torch.cat`` at every step, so a
record of ``T`` tokens copies the whole cache ``T`` times. With the small models and wide batches
hf_synth decodes on a CPU, those copies (and the fresh allocations behind them) took about as long
as the model itself on records of ~90 tokens. :class:`BufferedLayer` keeps the keys and values in a
buffer with spare positions that doubles when full, and hands attention views of it: each step
writes one position, and the total copying stays linear in the length. ``reset()`` keeps the
buffers, so one cache serves every batch of a sampling run without allocating (and page-faulting)
its memory again. ``new_tokens``, the length expected of what is generated, sizes the first buffers
so that they rarely have to grow: growing copies the whole cache into fresh memory, which for a
batch of 2,048 Default rows cost as long as a tenth of the sampling.

    cache = BufferedCache(model.config, new_tokens=longest_record)
    for batch in batches:
        cache.reset()
        model.generate(**batch, past_key_values=cache)

The tokens generated are exactly those of the default cache.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

#: Spare positions allocated at least, so that short prompts do not regrow the buffer every few steps.
MIN_SPARE_POSITIONS = 64


class BufferedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``keys`` / ``values`` ``(B, H, T, D)`` are views of larger buffers."""

    def __init__(self, capacity: int = 0, new_tokens: int = 0) -> None:
        super().__init__()
        self.capacity = capacity  # positions of the first buffers; later ones double the length needed
        self.new_tokens = new_tokens  # positions the first buffers keep beyond the prompt
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        end = length + key_states.shape[-2]
        if not self._holds_cache(key_states, length, end):
            # a prompt: room for what is expected after it; a full buffer during decoding: double it
            spare = max(end, MIN_SPARE_POSITIONS, self.new_tokens if length == 0 else 0)
            self._reallocate(key_states, value_states, length, capacity=max(self.capacity, end + spare))
        rows = key_states.shape[0]  # the buffers may have more: a last, smaller batch reuses them
        self._key_buffer[:rows, :, length:end] = key_states
        self._value_buffer[:rows, :, length:end] = value_states
        self.keys, self.values = self._key_buffer[:rows, :, :end], self._value_buffer[:rows, :, :end]
        return self.keys, self.values

    def _holds_cache(self, key_states: torch.Tensor, length: int, end: int) -> bool:
        """Whether the buffers fit these states up to position ``end`` and hold the cached ones at
        their start (beam reordering or batch selection replace those with new tensors)."""
        buffer = self._key_buffer
        if buffer is None or end > buffer.shape[-2] or buffer.shape[0] < key_states.shape[0] \
                or buffer.shape[1] != key_states.shape[1] or buffer.shape[-1] != key_states.shape[-1] \
                or buffer.dtype != key_states.dtype or buffer.device != key_states.device:
            return False
        return length == 0 or (self.keys.data_ptr() == buffer.data_ptr()
                               and self.values.data_ptr() == self._value_buffer.data_ptr())

    def _reallocate(self, key_states: torch.Tensor, value_states: torch.Tensor, length: int, capacity: int) -> None:
        keys = key_states.new_empty((*key_states.shape[:2], capacity, key_states.shape[-1]))
        values = value_states.new_empty((*value_states.shape[:2], capacity, value_states.shape[-1]))
        if length:
            keys[:, :, :length] = self.keys
            values[:, :, :length] = self.values
        self._key_buffer, self._value_buffer = keys, values


class BufferedCache(DynamicCache):
    """``DynamicCache`` with :class:`BufferedLayer` for its full-attention layers (sliding-window and
    other special layers keep the class the model's config asks for).

    ``capacity``: positions to allocate at first. ``new_tokens``: positions the first buffers keep
    beyond the first prompt. By default the buffers hold twice the prompt, and at least
    :data:`MIN_SPARE_POSITIONS` more.
    """

    def __init__(self, config, capacity: int = 0, new_tokens: int = 0) -> None:
        super().__init__(config=config)
        self.layers = [BufferedLayer(capacity, new_tokens) if type(layer) is DynamicLayer else layer
                       for layer in self.layers]
        if self.layer_class_to_replicate is DynamicLayer:
            self.layer_class_to_replicate = lambda: BufferedLayer(capacity, new_tokens)
