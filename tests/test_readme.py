"""The README's first two commands are what CI runs (and so what a fresh machine runs)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, flags=re.S)
    lines = [l.strip() for b in blocks for l in b.splitlines() if l.strip() and not l.strip().startswith("#")]
    return lines[:2]


def _ci_commands() -> list[str]:
    return [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()
            if l.strip() and not l.startswith("#") and not l.startswith(("set ", "cd "))]


def test_ci_runs_exactly_the_readme_commands():
    assert _ci_commands()[:2] == _readme_commands()


def test_ci_checks_a_wheel_install_after_the_readme_commands():
    ci = _ci_commands()
    assert ci[2] == ".ci/wheel-check"
    # then the Ray executor's tests, with the optional extra installed (they skip without it)
    assert ci[3:] and all(".[ray]" in line or "pytest" in line for line in ci[3:])
    script = (ROOT / ".ci" / "wheel-check").read_text()
    assert "pip wheel" in script and "venv" in script and "--ref" in script


def test_readme_example_inputs_exist():
    first = _readme_commands()[0]
    for token in first.split():
        if token.startswith("examples/") and "out/" not in token:
            assert (ROOT / token).is_file(), token
