import os

import pytest

from hf_synth.precision import cpu_has_native_bf16


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads the CPU's flags from Linux's /proc/cpuinfo")
def test_native_bf16_follows_the_cpus_bf16_instructions():
    flags = _cpu_flags()
    if not flags:
        pytest.skip("/proc/cpuinfo lists no flags on this platform")
    assert cpu_has_native_bf16() == bool({"amx_tile", "avx512_bf16"} & flags)
