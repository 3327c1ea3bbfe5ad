"""House style: the inference path (CLI, registry, every model family, pipeline) never imports
colorize.training. Checked in a fresh interpreter, where nothing else has imported it yet."""

from __future__ import annotations

import json
import subprocess
import sys

INFERENCE_PATH = """
import json, sys
import colorize.cli.main, colorize.models as m, colorize.pipeline.runner, colorize.flow
names = m.list_models()
print(json.dumps([names, sorted(k for k in sys.modules if k.startswith('colorize.training'))]))
"""


def test_inference_path_imports_no_training_code():
    out = subprocess.run([sys.executable, "-c", INFERENCE_PATH], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names, training = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"lstm", "selfreg", "exemplar", "devc"} <= set(names)  # every family module was imported
    assert training == []
