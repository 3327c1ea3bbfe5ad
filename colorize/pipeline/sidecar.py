"""The provenance sidecar ``OUTPUT.colorize.json`` and atomic small-file writes."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; outputs get ordinary permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)  # Fractions, devices, dtypes


def weights_record(model) -> dict:
    """What the sidecar says about a model's weights: the id of the set (``weights_sha256``) and,
    for a model made of several files (``model.weights_files``, e.g. devc's
    ``{file name: {path, sha256, sha256_verified}}``), every file on its own, so each one can be
    checked with ``sha256sum``."""
    record = {"weights_sha256": getattr(model, "weights_sha256", None)}
    files = getattr(model, "weights_files", None)
    if files:
        record["weights_files"] = _jsonable(files)
    return record


def sidecar_bytes(record: dict) -> bytes:
    return (json.dumps(_jsonable(record), indent=2, sort_keys=False) + "\n").encode("utf-8")


def environment() -> dict:
    import av
    import torch

    from colorize import __version__

    return {
        "tool": "colorize",
        "version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyav": av.__version__,
        "ffmpeg": {k: ".".join(map(str, v)) if isinstance(v, tuple) else str(v) for k, v in av.library_versions.items()},
        "platform": platform.platform(),
    }
