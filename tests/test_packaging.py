"""A normal install (a wheel, ``pip install .``) carries the shipped weights, found through the package.

The full check, a fresh virtual environment running every model from another folder, is
``.ci/wheel-check`` (run by CI); these tests build the wheel (a few seconds) and look inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the wheel itself needs no tomllib)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of its sources (no stale build/ folder of the checkout)."""
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("colorize", "weights"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
         str(src)], capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (found,) = (tmp / "dist").glob("colorize-*.whl")
    return found


def test_every_package_is_in_the_build_list():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "colorize").rglob("__init__.py")
               if "__pycache__" not in p.parts}
    assert listed - {"colorize._weights"} == on_disk


def test_weights_are_package_data_of_the_top_level_weights_folder():
    cfg = _pyproject()["tool"]["setuptools"]
    assert cfg["package-dir"]["colorize._weights"] == "weights"
    assert not (ROOT / "colorize" / "_weights").exists()  # one copy, in weights/


def test_the_wheel_carries_the_weights_and_their_manifest(wheel):
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    assert manifest
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "colorize/_weights/manifest.json" in names
        assert json.loads(z.read("colorize/_weights/manifest.json")) == manifest
        for name, record in manifest.items():
            member = f"colorize/_weights/{record['file']}"
            assert member in names, name
            assert hashlib.sha256(z.read(member)).hexdigest() == record["sha256"], name
        assert "colorize/models/registry.py" in names
        assert not any(n.startswith(("weights/", "tests/")) for n in names)


def test_an_installed_wheel_finds_its_weights_in_the_install(wheel, tmp_path):
    """Installed outside the checkout, the registry resolves every shipped file inside the install."""
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                           str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe = (
        "import json, colorize.models.registry as r\n"
        "print(json.dumps({'module': r.__file__, 'dir': str(r.WEIGHTS_DIR),\n"
        "                  'files': {n: str(r.resolve_weights(n, None)[0]) for n in sorted(r.read_manifest())}}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout)
    assert Path(found["module"]).is_relative_to(site)
    assert Path(found["dir"]) == site / "colorize" / "_weights"
    assert found["files"] and all(Path(p).is_relative_to(site) for p in found["files"].values())
