"""x264 settings that make the default H.264 output a function of its input alone.

Two runs of the same command used to decode to different frames (up to 34 levels apart) while
FFV1 output was identical, so the pictures fed to the encoder were the same and x264 itself
varied. Measured (PyAV 18 / FFmpeg 8 / x264 core 165, Xeon with AVX-512):

* the output changed with ``MALLOC_PERTURB_`` even with ``threads=1`` — x264 reads heap memory it
  did not initialise, so a fresh process (zeroed pages) looked deterministic and a later encode in
  the same process, or a process that had run a model first, did not;
* only with the macroblock tree on (``no-mbtree``, ``qcomp=1``, ``rc-lookahead=0`` or ``bframes=0``
  all hide it) and only with x264's AVX-512 code: ``asm=AVX2`` (everything but AVX-512) is
  bit-identical under any ``MALLOC_PERTURB_``, with sliced or frame threads;
* x264's threading is not the cause (it is deterministic by default, ``b_deterministic``).

So on a CPU with AVX-512 the encoder is told to use the AVX2 code instead: same speed within noise
(1.16 s vs 1.18 s for 60 frames 854x480 at the default preset), same size within 2 %. Turning the
macroblock tree off would also work but makes files up to 4x larger at the same CRF. Every
AVX-512 CPU has AVX2, FMA3, BMI1/2 and LZCNT, which is what x264's ``AVX2`` name stands for.
"""

from __future__ import annotations

import platform
from functools import lru_cache

# x264's cpu name for "everything up to AVX2"; Cache64 is what its detection adds on these CPUs.
_WITHOUT_AVX512 = "AVX2,Cache64"
# The AVX-512 subsets x264 requires before it uses AVX-512 at all (common/cpu.c).
_X264_AVX512 = ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL")


def _numpy_cpu_features() -> dict | None:
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # numpy >= 2
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__  # numpy 1.x
        except ImportError:
            return None
    return dict(__cpu_features__)


def _proc_cpuinfo_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return {w.upper() for w in line.split(":", 1)[1].split()}
    except OSError:
        return None
    return None


@lru_cache(maxsize=1)
def has_avx512() -> bool:
    """Whether x264 would pick its AVX-512 code on this CPU (x86 only; numpy's runtime detection,
    which includes the OS's support for the registers, else /proc/cpuinfo)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    features = _numpy_cpu_features()
    if features is not None:
        return all(features.get(name, False) for name in _X264_AVX512)
    flags = _proc_cpuinfo_flags()
    return flags is not None and all(name in flags for name in _X264_AVX512)


def deterministic_params() -> list[str]:
    """``x264-params`` entries (``key=value``) that make the output reproducible on this CPU."""
    return [f"asm={_WITHOUT_AVX512}"] if has_avx512() else []


def join_params(*groups: list[str] | str | None) -> str | None:
    """One ``x264-params`` string from several (``a=1:b=2``); None when there is nothing."""
    items: list[str] = []
    for g in groups:
        if not g:
            continue
        items.extend(g.split(":") if isinstance(g, str) else g)
    return ":".join(items) or None
