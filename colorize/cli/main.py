"""The ``colorize`` entry point: the colourize command by default, plus a few subcommands.

``colorize film.mp4`` needs no subcommand name. ``colorize models``, ``colorize train ...`` and
``colorize eval ...`` are subcommands. The rule that keeps the two apart: the first argument is a
subcommand only when it is a subcommand's name *and no file or folder of that name exists*: an
existing path is always an input, so data is never mistaken for a command (``colorize train`` in
a directory holding ``train/`` colourizes that folder; ``./train`` always means the path). Everything
else, ``--help`` and ``--version`` included, goes to the colourize command, whose help lists the
subcommands.
"""

from __future__ import annotations

import os

import click

from colorize.cli.colorize_cmd import colorize_command
from colorize.cli.eval_cmd import eval_command
from colorize.cli.models_cmd import models_command
from colorize.cli.train_cmd import train_command

_DEFAULT = "\0colorize"  # internal name of the default command: no user types or names a file this


class OneLineUsageError(click.UsageError):
    """Click's usage errors in the form every other error has: ``colorize: error: ...``, one line
    on stderr, exit code 2, with a pointer to the help of the command that was used."""

    def __init__(self, original: click.UsageError) -> None:
        super().__init__(original.format_message(), original.ctx)
        self.exit_code = original.exit_code

    def show(self, file=None) -> None:
        where = self.ctx.command_path if self.ctx is not None else "colorize"
        message = self.format_message().strip().replace("\n", " ")
        click.echo(f"colorize: error: {message} (see '{where} --help')", file=file, err=True)


class ColorizeGroup(click.Group):
    """A group whose default command runs when the first argument is not a subcommand."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc) from exc

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:  # the default command's and the subcommands' own
            raise OneLineUsageError(exc) from exc

    def is_subcommand(self, arg: str) -> bool:
        return arg in self.commands and arg != _DEFAULT and not os.path.lexists(arg)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or not self.is_subcommand(args[0]):
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        colorize_command.format_help(ctx, formatter)


class _DefaultCommand(click.Command):
    """The colourize command as the group's default: its usage reads ``colorize [OPTIONS] ...``."""

    def make_context(self, info_name, args, parent=None, **extra):
        if info_name == _DEFAULT and parent is not None:
            # Detach from the group so usage lines and errors say "colorize", not the internal name.
            return super().make_context(parent.info_name, args, parent=None, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


def _as_default(cmd: click.Command) -> click.Command:
    default = _DefaultCommand(
        name=_DEFAULT, params=cmd.params, callback=cmd.callback, help=cmd.help,
        context_settings=cmd.context_settings, hidden=True, short_help=cmd.short_help,
    )
    default.format_epilog = cmd.format_epilog  # the models / commands / exit codes sections
    return default


cli = ColorizeGroup(
    name="colorize",
    context_settings={"help_option_names": [], "max_content_width": 100},
    add_help_option=False,
)
cli.add_command(_as_default(colorize_command))
cli.add_command(models_command)
cli.add_command(train_command)
cli.add_command(eval_command)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="colorize")


if __name__ == "__main__":
    main()
