"""Choosing the compute device and precision: auto = CUDA, then MPS, then CPU."""

from __future__ import annotations

import re

import torch

from colorize.pipeline.config import PRECISIONS
from colorize.pipeline.errors import UsageError


class DeviceError(UsageError):
    """The requested device does not exist on this machine (a usage error)."""


_SPEC = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str) -> torch.device:
    """``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` -> a device that exists, or DeviceError."""
    m = _SPEC.match(spec.strip().lower())
    if m is None:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    kind, num = m.group(1), m.group(2)
    if kind == "auto":
        if num is not None:
            raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise DeviceError("--device mps: Apple Metal (MPS) is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"--device {spec}: CUDA is not available (PyTorch {torch.__version__} sees no NVIDIA GPU); "
            "use --device cpu or auto"
        )
    index = int(num) if num is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present (0-based)"
        )
    return torch.device("cuda", index)


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def compute_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype the networks run in.

    ``auto``: half precision on GPUs, float32 on the CPU (CPU float16 is slow and inexact).
    ``bf16`` on the CPU pays off only for large convolutions on CPUs with AMX / AVX512-BF16: the
    official DEVC networks run about 1.7x faster, our small models do not gain, and none of it is
    bit-faithful (see docs/devc.md). ``fp32`` everywhere is the reference arithmetic.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    return _DTYPES[precision]


def cpu_threads(reserved: int = 1) -> int:
    """Intra-op threads for torch on CPU: all cores but ``reserved`` for the decode/encode threads.

    Measured on a busy 2-core machine: the lstm model took 1-3 s/frame with two intra-op threads
    and 0.16 s/frame with one (OpenMP workers spin-waiting against other threads); the decode and
    encode threads are such other threads, so one core is always left to them.
    """
    from colorize.models.overlap import usable_cores

    return max(1, usable_cores() - reserved)
