"""Whether this CPU computes in bfloat16 natively.

The models hf_synth trains from scratch are small enough that their matrix products dominate, and
a CPU with bf16 dot-product instructions runs those about twice as fast in bf16 as in float32:
Intel's AMX tiles, and the AVX512-BF16 instructions of AMD Zen 4 and later Intel cores. Elsewhere
bf16 is emulated and slower than float32, so ``"auto"`` precision settings ask this first.
"""

from __future__ import annotations

import functools

import torch


@functools.cache  # the CPU does not change while a process runs; the diffusion prior asks at every step
def cpu_has_native_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16 that oneDNN uses for bf16 matrix products."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without these probes: assume emulation
        return False
