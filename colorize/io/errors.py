"""The one exception the media layer raises for anything wrong with a file."""

from __future__ import annotations

from pathlib import Path


class MediaError(Exception):
    """A problem with an input or output file, as a one-line, user-facing message.

    The CLI prints ``str(error)``; the library never prints. ``path`` names the file concerned.
    """

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        message = " ".join(str(message).split())  # one line, whatever the cause text holds
        if path is not None:  # as given: in a mirrored batch a bare file name would be ambiguous
            message = f"{path}: {message}"
        super().__init__(message)
        self.path = None if path is None else Path(path)


def describe_av_error(err: BaseException) -> str:
    """A short reason from a PyAV/FFmpeg exception, without the repeated file name."""
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return reason.strip().rstrip(".")
