"""``colorize eval``: a thin layer over ``colorize.evaluation.cli_eval`` (imported only here)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from colorize.cli.options import (
    debug_option, device_option, json_option, model_option, precision_option, weights_option,
)
from colorize.cli.train_cmd import call_lazily


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@model_option(required=True, help="Model to evaluate.")
@click.argument("dirs", nargs=-1, required=True, metavar="DIR...",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--propagate", is_flag=True,
              help="Reference models: each clip's first original frame is its reference (propagation).")
# The spelling before --propagate, still accepted (its only value was first-frame).
@click.option("--ref-mode", type=click.Choice(["first-frame"]), default=None, hidden=True)
@click.option("--ref", "reference", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A still used as the reference for every clip (foreign-reference mode); its faithfulness "
                   "(ab-histogram distance) is scored for every model, automatic ones included.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Frames per clip at most.")
@click.option("--csv", "out_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the per-frame PSNR series (clip, frame, output, grey) to this CSV file.")
@click.option("--render-size", type=click.IntRange(min=16), default=None,
              help="Short side in pixels of the frames the model sees (as in colorize --render-size); "
                   "default: the model's own.")
@weights_option
@device_option
@precision_option
@json_option("Print the figures as JSON on stdout.")
@debug_option
def eval_command(model, dirs, propagate, ref_mode, reference, max_frames, out_csv, render_size, weights, device, precision,
                 as_json, debug) -> None:
    """Measure MODEL on folders of colour clips: PSNR, colourfulness, flicker, accuracy, fps.

    Each DIR holds colour video clips (any you have; none ship with colorize): every clip is turned
    grey, colourized, and compared with its own colours."""
    if propagate:
        ref_mode = "first-frame"
    sys.exit(call_lazily("colorize.cli.eval_cmd", "run_and_print", "eval", debug, model=model, dirs=tuple(dirs),
                         ref_mode=ref_mode, reference=reference, max_frames=max_frames, out_csv=out_csv,
                         render_size=render_size,
                         weights=weights, device=device, precision=precision, json=as_json))


def run_and_print(json: bool = False, **kwargs) -> int:
    """Run ``cli_eval`` (which returns the report and prints nothing) and print the report."""
    import json as json_module

    from colorize.evaluation import cli_eval, format_report

    report = cli_eval(json=json, **kwargs)
    click.echo(json_module.dumps(report.as_dict(), indent=2) if json else format_report(report))
    return 0
