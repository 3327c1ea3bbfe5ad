"""``colorize models``: which model is the default for what, readable when piped, what the data is,
and the figures users compare by."""

from __future__ import annotations

import json

from colorize.pipeline.config import DEFAULT_AUTO_MODEL, DEFAULT_REFERENCE_MODEL
from tests.cli.test_cli_colorize import invoke


def _blocks(text: str) -> dict[str, str]:
    return {b.splitlines()[0].split()[0]: b for b in text.strip().split("\n\n")}


def test_models_says_which_default_is_which_and_reads_well_piped():
    r = invoke("models", "--no-load")  # CliRunner's stdout is not a terminal: the piped case
    assert r.exit_code == 0, r.stderr
    blocks = _blocks(r.stdout)
    assert blocks[DEFAULT_AUTO_MODEL].splitlines()[0] == f"{DEFAULT_AUTO_MODEL} (default automatic model)"
    assert blocks[DEFAULT_REFERENCE_MODEL].splitlines()[0].startswith(
        f"{DEFAULT_REFERENCE_MODEL} (default model with --ref")
    assert r.stdout.count("(default") == 2
    assert max(len(l) for l in r.stdout.splitlines()) <= 100
    # a long value wraps as a paragraph under its label instead of folding into a narrow column
    data_lines = [l for l in blocks["lstm"].splitlines() if l.startswith("  data:")]
    assert len(data_lines) == 1 and len(data_lines[0]) > 80


def test_models_names_the_data_not_a_development_path_and_shows_every_figure():
    r = invoke("models", "--no-load")
    assert "shared/data" not in r.stdout and "dev_eval" not in r.stdout
    for name in ("lstm", "selfreg", "exemplar"):
        figures = " ".join(l.strip() for l in _blocks(r.stdout)[name].split("figures:")[1].splitlines())
        assert "PSNR gain +" in figures and "colourfulness 0." in figures and "flicker 0." in figures, name
    recs = {json.loads(l)["name"]: json.loads(l) for l in invoke("models", "--json", "--no-load").stdout.splitlines()}
    assert recs[DEFAULT_AUTO_MODEL]["default_for"] == "automatic"
    assert recs[DEFAULT_REFERENCE_MODEL]["default_for"] == "reference"
    assert all("shared/data" not in (rec["weights"]["data"] or "") for rec in recs.values())
