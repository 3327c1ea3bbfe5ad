"""Evaluation: metrics (PSNR, colourfulness, flicker as warp error, colour accuracy, reference
faithfulness) and the runner behind ``colorize eval`` and the trainer's periodic evaluation."""

from colorize.evaluation.report import ClipResult, EvalReport, format_report
from colorize.evaluation.runner import (
    EvalError,
    cli_eval,
    evaluate,
    find_clips,
    quick_eval,
)

__all__ = [
    "ClipResult",
    "EvalError",
    "EvalReport",
    "cli_eval",
    "evaluate",
    "find_clips",
    "format_report",
    "quick_eval",
]
