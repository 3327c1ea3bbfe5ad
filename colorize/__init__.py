"""colorize: bring black-and-white film and photographs into colour."""

__version__ = "0.1.0"
