"""The README's first two commands are what CI runs (and so what a fresh machine runs)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S)
    lines = [l.strip() for b in blocks for l in b.splitlines() if l.strip() and not l.strip().startswith("#")]
    return lines[:2]


def test_ci_runs_exactly_the_readme_commands():
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()
          if l.strip() and not l.startswith("#") and not l.startswith(("set ", "cd "))]
    assert ci == _readme_commands()


def test_readme_example_inputs_exist():
    first = _readme_commands()[0]
    for token in first.split():
        if token.startswith("examples/") and "out/" not in token:
            assert (ROOT / token).is_file(), token
