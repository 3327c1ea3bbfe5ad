"""The shipped weights and their manifest, installed as the package ``colorize._weights``.

This folder is where they live in the repository; pyproject.toml maps it into the package so that a
wheel or a plain ``pip install .`` carries them, and ``colorize.models.registry`` finds them through
the package. Code never imports this module for anything else.
"""
