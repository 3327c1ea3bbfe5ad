"""Registry of model families, built by one factory, with one metadata record per weights file.

Each family module registers a builder with :func:`register_model`; :func:`create_model` builds a
:class:`~colorize.models.base.StreamColorizer` by name. Family modules are imported explicitly in
:data:`_FAMILY_MODULES` (no hidden import side effects: the list is here, in one place).

Weights: ``weights/manifest.json`` holds one record per shipped file (file, sha256, params, data,
steps, wall time, metrics, input contract, licence). Loading checks the sha256 first, then uses
``torch.load(weights_only=True)`` and a strict ``load_state_dict``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from colorize.models.base import ModelInfo, StreamColorizer

# Family modules, imported on first use of the registry.
_FAMILY_MODULES = (
    "colorize.models.lstm",
    "colorize.models.selfreg",
    "colorize.models.exemplar",
    "colorize.models.devc",
)

MANIFEST_NAME = "manifest.json"
WEIGHTS_PACKAGE = "colorize._weights"


def _find_weights_dir() -> Path:
    """Where the shipped weights are. They live in ``weights/`` at the top of the repository, which
    the build installs as the package ``colorize._weights`` (pyproject.toml), so a wheel, a plain
    ``pip install .`` and an editable install all find them through the package. A source tree used
    without installing it (or an editable install made before that mapping) has no such package:
    then the repository's ``weights/`` beside the ``colorize`` folder."""
    try:
        found = importlib.resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError:
        found = None
    if isinstance(found, Path) and (found / MANIFEST_NAME).is_file():
        return found
    return Path(__file__).resolve().parent.parent.parent / "weights"


WEIGHTS_DIR = _find_weights_dir()


class UnknownModelError(ValueError):
    pass


class WeightsError(RuntimeError):
    """Weights missing, corrupt (sha256 mismatch) or not matching the architecture."""


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    builder: Callable[..., StreamColorizer]


_REGISTRY: dict[str, _Entry] = {}
_loaded = False


def register_model(info: ModelInfo) -> Callable:
    """Decorator for a builder ``fn(device, dtype, weights, **options) -> StreamColorizer``."""

    def deco(fn: Callable[..., StreamColorizer]) -> Callable[..., StreamColorizer]:
        if info.name in _REGISTRY:
            raise ValueError(f"model {info.name!r} registered twice")
        _REGISTRY[info.name] = _Entry(info, fn)
        return fn

    return deco


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _FAMILY_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency, not a family not written yet
                raise


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name].info


def create_model(
    name: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    weights: str | Path | None = None,
    **options,
) -> StreamColorizer:
    """Build model ``name`` on ``device``. ``weights=None`` means the shipped default weights."""
    get_model_info(name)  # unknown names fail loudly, listing the choices
    return _REGISTRY[name].builder(device=torch.device(device), dtype=dtype, weights=weights, **options)


def model_options(name: str) -> tuple[str, ...]:
    """The options ``create_model(name, ...)`` takes beyond device, dtype and weights: the
    builder's named keyword parameters (a catch-all ``**kwargs`` declares none)."""
    get_model_info(name)
    params = inspect.signature(_REGISTRY[name].builder).parameters.values()
    return tuple(p.name for p in params
                 if p.name not in ("device", "dtype", "weights")
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


# ---------------------------------------------------------------------------------------- weights


def read_manifest(weights_dir: Path = WEIGHTS_DIR) -> dict:
    path = weights_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def resolve_weights(name: str, weights: str | Path | None) -> tuple[Path, str | None]:
    """The weights file for ``name`` and its expected sha256 (None for a user-given file)."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        return path, None
    record = read_manifest().get(name)
    if record is None:
        raise WeightsError(f"no shipped weights for model {name!r} in {WEIGHTS_DIR / MANIFEST_NAME}")
    path = WEIGHTS_DIR / record["file"]
    if not path.is_file():
        raise WeightsError(f"shipped weights for {name!r} are missing: {path}")
    return path, record["sha256"]


def load_state(path: Path, expected_sha256: str | None) -> tuple[dict, str]:
    """Check the checksum, then load safely. Returns (state_dict, sha256)."""
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise WeightsError(
            f"weights {path} are corrupt or not the shipped file: sha256 {digest[:12]}…, "
            f"manifest says {expected_sha256[:12]}…"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad pickles / truncated files
        raise WeightsError(f"cannot read weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state, digest


def load_into(module: torch.nn.Module, state: dict, path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights {path} do not fit this model: {exc}") from exc


def load_weights(name: str, weights: str | Path | None, net: torch.nn.Module, key_filter=None) -> str:
    """Resolve, checksum, safely load and strictly apply ``name``'s weights to ``net``.

    ``key_filter`` maps an old checkpoint's state dict onto the current keys (timm's habit).
    Returns the file's sha256 for provenance.
    """
    path, expected = resolve_weights(name, weights)
    state, digest = load_state(path, expected)
    load_into(net, key_filter(state) if key_filter else state, path)
    return digest
