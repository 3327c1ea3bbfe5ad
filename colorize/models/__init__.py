"""Model registry and the stream interface every colourization family implements."""

from colorize.models.base import StreamColorizer, ModelInfo
from colorize.models.registry import create_model, get_model_info, list_models, register_model

__all__ = [
    "StreamColorizer",
    "ModelInfo",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]
