"""Which reduced precision pays off on a device: bf16 autocast only where the hardware computes it natively.

On a CPU without AVX512_BF16 or AMX, PyTorch emulates bf16 matmuls and convolutions: measured on a
2-core AVX2 EPYC (BENCHMARKS.md, "Training speed"), autocast made training steps 8-17x slower, so
"auto" precision stays float32 there. On a 2-core EPYC with AVX512_BF16 ("Native bf16") it made training
steps 1.4-1.7x and upscales 1.3-1.4x faster at a cost of at most 0.001 dB, so "auto" is bf16 there.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import UserError

# Private but stable probes of torch.cpu (present since torch 2.1); a missing one counts as "no".
_CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def native_bf16(device: torch.device | str) -> bool:
    """True where bf16 arithmetic runs in hardware: CUDA GPUs with bf16, CPUs with AVX512_BF16 or AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in _CPU_BF16_PROBES)
    return False


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast the networks to bf16/fp16 on `device` (arithmetic outside them stays float32); None or
    float32: no autocast. Every inference path (pipelines, baselines, evaluation) runs under this one rule."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    if dtype not in (torch.bfloat16, torch.float16):
        raise UserError(f"precision must be float32, bfloat16 or float16, got {dtype}")
    if dtype == torch.float16 and device_type == "cpu":
        raise UserError("float16 needs a GPU: use bfloat16 or float32 on the CPU")
    return torch.autocast(device_type, dtype=dtype)
