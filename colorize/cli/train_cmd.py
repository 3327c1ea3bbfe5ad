"""``colorize train``: a thin layer over ``colorize.training.cli_train`` (imported only here)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from colorize.cli.options import debug_option, device_option, model_option


def call_lazily(module: str, func: str, command: str, debug: bool, **kwargs) -> int:
    """Import ``module.func`` when the command runs (training code never loads otherwise)."""
    import importlib
    import traceback

    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"colorize: error: `colorize {command}` is not available in this installation "
                   f"({module}.{func}: {exc})", err=True)
        return 1
    try:
        rc = fn(**kwargs)
    except KeyboardInterrupt:
        click.echo("colorize: error: interrupted", err=True)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"colorize: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", err=True)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"colorize: error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", err=True)
        return 1
    return int(rc) if isinstance(rc, int) else 0


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@model_option(required=True, trainable=True, help="Model family to train.")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of colour photos and/or clips (repeatable).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimisation steps (default: the family's).")
@click.option("--resume", is_flag=True, help="Continue exactly from the last checkpoint in --out.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for checkpoints and the CSV log. Default: ~/.cache/colorize/runs/MODEL.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch size.")
@click.option("--size", type=click.IntRange(min=16), default=None, help="Training crop size in pixels.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Peak learning rate (Adam, cosine).")
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from these trainable weights (fine-tuning), e.g. weights/lstm.pt.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None,
              help="bf16: forward passes under bfloat16 autocast (about 2x faster on CPUs with AMX/AVX512-BF16).")
@click.option("--threads", type=click.IntRange(min=0), default=None, help="Torch threads (0 = all cores).")
@click.option("--eval-every", type=click.IntRange(min=1), default=None, help="Validate every N steps.")
@click.option("--ema", type=click.FloatRange(min=0, max=1, max_open=True), default=None,
              help="Validate and export a moving average of the weights with this decay per step "
                   "(e.g. 0.999; 0 = off).")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a loss setting of the model family (repeatable), e.g. --set temporal_weight=0.5.")
@click.option("--photo-size", "photo_short", type=click.IntRange(min=16), default=None,
              help="Short side at which photos are held in memory (default 160); larger lets crops zoom in.")
@click.option("--crop-min", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
              help="Smallest photo crop, as a share of the photo's short side (default 0.55).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Feature-cache folder (outside the repository): the frozen backbone's features of "
                   "--cache-samples augmented samples are computed once there (resumable) and every step "
                   "runs only the small networks.")
@click.option("--cache-samples", type=click.IntRange(min=1), default=None,
              help="Samples in the feature cache (default 20000).")
@click.option("--best-at-colour", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Keep as best.pt the checkpoint with the best validation PSNR once its chroma is "
                   "scaled to this colourfulness ratio (e.g. 0.8), not the best plain PSNR.")
@click.option("--val-clips", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder of held-out colour clips (never trained on): every evaluation also runs "
                   "`colorize eval` on them, whole frames as the product runs, and best.pt follows that "
                   "figure (at --best-at-colour if given). Slower evaluations; ranks files as users see them.")
@click.option("--val-frames", type=click.IntRange(min=1), default=None,
              help="Frames per --val-clips clip at each evaluation (default 20).")
@click.option("--freeze-bn", is_flag=True, default=None,
              help="Fine-tuning: BatchNorm layers normalise with the --init file's running statistics "
                   "and never update them (as at inference).")
@device_option(help="Training device; auto = CUDA, then Apple MPS, then CPU (--precision sets the arithmetic).")
@debug_option
def train_command(model, data, steps, resume, out, batch, size, lr, init, precision, threads, eval_every,
                  ema, overrides, photo_short, crop_min, cache, cache_samples, best_at_colour, val_clips, val_frames,
                  freeze_bn, device, debug) -> None:
    """Train MODEL self-supervised on folders of colour photos and clips."""
    extra = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--set")
        extra[name.strip()] = value.strip()
    sys.exit(call_lazily("colorize.training", "cli_train", "train", debug, model=model, data=tuple(data),
                         steps=steps, resume=resume, out=out, batch=batch, size=size, lr=lr, init=init,
                         precision=precision, threads=threads, eval_every=eval_every, ema=ema,
                         extra=extra or None, photo_short=photo_short, crop_min=crop_min,
                         cache=str(cache) if cache else None, cache_samples=cache_samples,
                         best_at_colour=best_at_colour, val_clips=str(val_clips) if val_clips else None,
                         val_frames=val_frames, freeze_bn=freeze_bn or None, device=device))
