"""``colorize INPUT... [options]``: the default command (no subcommand name needed)."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import click

from colorize.cli.options import (
    EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
    debug_option, device_option, json_option, model_option, model_options_from_flags, precision_option,
    saturation_boost_option, weights_option,
)
from colorize.pipeline.config import PICK_CHOICES, RunConfig, default_model_name


class _ColorizeCommand(click.Command):
    """Adds the registered models and the other commands to the help, read at help time."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from colorize.models.registry import get_model_info, list_models

        with formatter.section("Models"):
            rows = []
            for name in list_models():
                info = get_model_info(name)
                tag = " (needs --ref)" if info.needs_reference else ""
                rows.append((name, f"{info.summary}{tag}"))
            formatter.write_dl(rows or [("(none)", "no model families are installed")])
        with formatter.section("Other commands"):
            formatter.write_dl([
                ("colorize models", "list the models, their weights and whether they load "
                 "(also: colorize --list-models)"),
                ("colorize train --help", "train a model on folders of colour photos and clips"),
                ("colorize eval --help", "measure a model on folders of colour clips"),
            ])
        formatter.write_paragraph()
        formatter.write_text(
            "An INPUT that exists as a file or folder is always an input, even when it is named "
            "like a command (models, train, eval)."
        )
        formatter.write_paragraph()
        formatter.write_text(EXIT_CODES_HELP)
        formatter.write_paragraph()
        formatter.write_text("Examples:")
        with formatter.indentation():
            formatter.write_text("colorize film.mp4 --ref still.jpg")
            formatter.write_text("colorize reels/ -o out/ --codec ffv1")
            formatter.write_text("colorize film.mkv --ref a.jpg@00:00:00-00:01:10 --ref b.jpg --json")


def _codec_ok(ctx, param, value):
    if value is None:
        return value
    import av

    try:
        codec = av.codec.Codec(value, "w")
    except Exception:  # noqa: BLE001 - PyAV raises UnknownCodecError or ValueError by version
        raise click.BadParameter(f"no such encoder in this FFmpeg build: {value!r}")
    if codec.type != "video":
        raise click.BadParameter(f"{value!r} is not a video encoder")
    return value


def _shard_ok(ctx, param, value):
    if value is None:
        return value
    from colorize.pipeline.errors import UsageError
    from colorize.pipeline.shard import Shard

    try:
        return Shard.parse(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1])  # click names the option itself


def _list_models(ctx, param, value):
    if not value or ctx.resilient_parsing:
        return
    from colorize.cli.models_cmd import report_models

    ctx.exit(report_models())


@click.command(
    "colorize", cls=_ColorizeCommand,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    short_help="Colourize videos and stills.",
)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output file, or folder for several inputs / a folder input (subfolders mirrored). "
                   "Default: <name>_colorized.<ext> beside each input.")
@model_option()
@click.option("--ref", "refs", multiple=True, metavar="IMAGE[@START-END]",
              help="Colour reference: a still, a folder of stills, or a still bound to a time range "
                   "(timecodes HH:MM:SS[.fff] or frame numbers). Repeatable; per shot the best-matching "
                   "one is used. Selects the exemplar model.")
@weights_option
@device_option
@precision_option
@click.option("--render-size", type=click.IntRange(min=16), default=None,
              help="Short side in pixels of the frames the model sees (rounded to its multiple); "
                   "default: the model's own. Chroma is upsampled to full size guided by the luma.")
@click.option("--codec", default=None, callback=_codec_ok,
              help="Video encoder (default libx264; ffv1 = lossless archival master, in .mkv).")
@click.option("--crf", type=click.IntRange(0, 63), default=None, help="Quality for x264/x265/VP9/AV1 (default 17).")
@click.option("--preset", default=None, help="Encoder speed preset (default medium).")
@click.option("--diverse", type=click.IntRange(min=1), default=1, show_default=True,
              help="Compute N different colourings (models that support it).")
@click.option("--pick", type=click.Choice(PICK_CHOICES), default="saturation", show_default=True,
              help="With --diverse: keep the most saturated over the film, or write all (name_0, name_1, "
                   "... plus a contact-sheet PNG).")
@click.option("--refine-passes", type=click.IntRange(min=0), default=None,
              help="Refinement passes for models that have one (default: the model's).")
@saturation_boost_option
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads on CPU (default: all cores but one, which is left to decoding and "
                   "encoding; heavy models such as devc gain from all cores).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip those inputs).")
@click.option("--segment-frames", type=click.IntRange(min=0), default=2000, show_default=True, metavar="N",
              help="Process a video as segments of at most N frames, cut where shots start, kept in a hidden "
                   ".NAME.parts/ folder until joined: an interrupted run resumes from the finished segments "
                   "when the same command is run again (0: in one piece).")
@click.option("--executor", type=click.Choice(("local", "ray")), default="local", show_default=True,
              help="Where a film's segments are rendered: here, or as tasks on a Ray cluster (the one in "
                   "RAY_ADDRESS, else a local one started for the run; needs pip install \"colorize[ray]\").")
@click.option("--preview", type=click.IntRange(1, 200), default=None, metavar="N",
              help="Colourize only N frames spread over each film (with warm-up for temporal models) and "
                   "write a labelled contact sheet NAME_preview.png instead of the film; seconds, not hours.")
@click.option("--shard", default=None, metavar="K/N", callback=_shard_ok,
              help="Process only part K of N (K is 0-based: 0..N-1) of the input files: deterministic, "
                   "disjoint, balanced by frame count; for job arrays (see docs/scaling.md).")
@json_option("Print one JSON object per input on stdout (input, output, status, frames, seconds, "
             "model, weights_sha256, error).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; errors only.")
@debug_option
@click.option("--list-models", is_flag=True, is_eager=True, expose_value=False, callback=_list_models,
              help="List the models (same as `colorize models`, whatever files are in this folder) and exit.")
@click.version_option(package_name="colorize", message="%(prog)s %(version)s")
def colorize_command(inputs, output, model, refs, weights, device, precision, render_size, codec, crf, preset,
                     diverse, pick, refine_passes, no_saturation_boost, threads, overwrite, segment_frames,
                     executor, preview, shard, as_json, quiet, debug):
    """Colourize black-and-white videos and stills.

    INPUT is a video, a still image (jpg, png, tiff, webp) or a folder of them. Only the chroma
    is changed: the picture's luma is kept (bit-exact with a lossless codec); audio and subtitle
    tracks are copied untouched; nothing is written until an output is complete.
    """
    if pick == "all" and diverse < 2:
        raise click.UsageError("--pick all keeps every candidate of --diverse N: add --diverse N (N >= 2)")
    sys.exit(run_colorize(
        inputs=list(inputs), output=output, model=model, refs=refs, weights=weights, device=device,
        precision=precision,
        render_size=render_size, codec=codec, crf=crf, preset=preset, diverse=diverse, pick=pick,
        refine_passes=refine_passes, overwrite=overwrite, as_json=as_json, quiet=quiet, debug=debug,
        threads=threads, model_options=model_options_from_flags(no_saturation_boost=no_saturation_boost),
        shard=shard, preview=preview, segment_frames=segment_frames, executor=executor,
    ))


def _err(text: str) -> None:
    click.echo(f"colorize: error: {text}", err=True)


def run_colorize(*, inputs, output, model, refs, weights, device, render_size, codec, crf, preset,
                 diverse, pick, refine_passes, overwrite, as_json, quiet, debug, threads: int | None = None,
                 precision: str = "auto",
                 model_options: tuple[tuple[str, object], ...] = (), shard=None,
                 preview: int | None = None, segment_frames: int = 2000, executor: str = "local") -> int:
    """Everything the command does, returning the exit code (library errors -> messages here).

    ``model_options``: ``RunConfig.extra_model_options`` (model-specific flags, already checked
    against the model by the runner). ``shard``: a ``colorize.pipeline.shard.Shard`` (``--shard K/N``);
    ``preview``: sample that many frames per film onto a contact sheet instead of the full run;
    ``executor``: "local" or "ray" (``colorize.pipeline.executors``), where segments are rendered."""
    import torch

    from colorize.cli.progress import make_reporter
    from colorize.pipeline import events as ev
    from colorize.pipeline.device import cpu_threads
    from colorize.pipeline.errors import ModelError, UsageError
    from colorize.pipeline.inputs import plan_jobs
    from colorize.pipeline.runner import Runner

    def fail(exc: BaseException, code: int, prefix: str = "") -> int:
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        text = str(exc).strip().splitlines()
        _err(prefix + (text[0] if text else type(exc).__name__))
        return code

    reporter = None
    current: ev.FileStarted | None = None
    failed = 0
    remote = None  # a Ray executor, closed at the end
    restore_sigterm = _sigterm_as_interrupt()
    try:
        try:
            config = RunConfig(
                model=model or default_model_name(bool(refs)), weights=weights, references=tuple(refs),
                device=device, precision=precision, render_size=render_size, codec=codec, crf=crf, preset=preset,
                diverse=diverse, pick=pick, refine_passes=refine_passes, overwrite=overwrite,
                extra_model_options=tuple(model_options), segment_frames=segment_frames,
            )
            runner = Runner(config)
            jobs = plan_jobs(inputs, output, codec)
            all_jobs = jobs
            if shard is not None:
                from colorize.pipeline.shard import select_shard

                jobs = select_shard(jobs, inputs, shard)
        except (UsageError, ValueError) as exc:
            return fail(exc, EXIT_USAGE)
        if runner.device.type == "cpu":
            torch.set_num_threads(threads or cpu_threads())
        if executor != "local" and preview is None:
            from colorize.pipeline.executors import make_executor

            if segment_frames == 0 or diverse > 1:  # both run in one piece: nothing to send out
                why = "--segment-frames 0" if segment_frames == 0 else "--diverse N"
                return fail(UsageError(f"--executor {executor} renders a film's segments; {why} runs "
                                       "films in one piece"), EXIT_USAGE)

            from colorize.pipeline.distributed import cpus_per_task

            try:  # each task computes with the driver's torch threads (same frames as a local run)
                remote = runner.executor = make_executor(
                    executor, task_cpus=cpus_per_task(runner.device),
                    task_gpus=1 if runner.device.type == "cuda" else 0, quiet=not debug)
            except UsageError as exc:
                return fail(exc, EXIT_USAGE)
        reporter = make_reporter(quiet)
        if shard is not None and not quiet:
            from colorize.pipeline.shard import shard_summary

            reporter.message(f"colorize: {shard_summary(jobs, all_jobs, shard)}")

        def track(event) -> None:
            nonlocal current
            if isinstance(event, ev.FileStarted):
                current = event
            if isinstance(event, ev.Notice):  # a resumed or restarted segmented run
                if not quiet:
                    reporter.message(f"colorize: {event.text}")
                return
            reporter(event)

        runner.on_event = track
        if preview is not None:
            from colorize.pipeline.preview import Previewer

            results = Previewer(runner, preview).run(jobs)
        else:
            results = runner.run(jobs)
        for result in results:
            current = None
            if not result.ok:
                failed += 1
                reporter.message(f"colorize: error: {result.error}")
                if debug and result.exception is not None:
                    exc = result.exception
                    traceback.print_exception(type(exc), exc, exc.__traceback__)
            if as_json:
                click.echo(json.dumps(result.as_json()))
    except KeyboardInterrupt as exc:
        if reporter is not None:
            reporter.close(summary=False)
        _err("interrupted; the output being written was removed, finished outputs are kept")
        hint = getattr(exc, "hint", None)  # segments.SegmentsKept: how to resume or discard
        if hint:
            _err(hint)
        if as_json and current is not None:
            click.echo(json.dumps({"input": str(current.input), "output": str(current.output),
                                   "status": "interrupted", "frames": 0, "seconds": 0.0,
                                   "model": model or default_model_name(bool(refs)),
                                   "weights_sha256": None, "error": "interrupted"}))
        return EXIT_INTERRUPTED
    except UsageError as exc:
        reporter.close()
        return fail(exc, EXIT_USAGE)
    except ModelError as exc:
        reporter.close()
        return fail(exc, EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 - a bug: still one line unless --debug
        if reporter is not None:
            reporter.close()
        return fail(exc, EXIT_FAILED, prefix=f"internal error ({type(exc).__name__}): ")
    finally:
        restore_sigterm()
        if remote is not None:
            remote.close()
    reporter.close()
    return EXIT_FAILED if failed else EXIT_OK


def _sigterm_as_interrupt():
    """Treat SIGTERM (a batch system stopping the job) like Ctrl-C, so partial outputs are removed.
    Returns a function restoring the previous handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
