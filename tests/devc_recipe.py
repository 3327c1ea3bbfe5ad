"""Regenerate the DEVC fixture's deterministic checkpoints (numpy only) as official-style files.

The recipe is documented in tests/models/data/devc/README section 2 (copied from the fixture's
README.md): each tensor has its own PCG64 seed, crc32("{ckpt}/{key}"); conv weights are He-normal
(colornet/conv10_ab.weight x0.1), biases N(0, 0.05), PReLU slopes 0.25; float64 then float32.
The files are random: the colours they give mean nothing, the arithmetic is what the tests check.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from pathlib import Path

import numpy as np

KEYS_JSON = Path(__file__).resolve().parent / "models" / "data" / "devc" / "keys.json"
FILES = {
    "vgg19_conv": "vgg19_conv.pth",
    "nonlocal_net": "nonlocal_net_iter_76000.pth",
    "colornet": "colornet_iter_76000.pth",
}
# sha256 over each state_dict's little-endian float32 bytes in keys.json order (fixture README)
RECIPE_SHA256 = {
    "vgg19_conv": "27642051164450dde054cd6283bd56536c8b2dccc3bb76d4be50f3b17cbc8959",
    "nonlocal_net": "11df8ea8a111e4684c122cdd4de87091a3177626779da3ee0eb4321aca1edcad",
    "colornet": "2e90f417007b620325265e0cbb18b74c3c9221562ba0330482b5fa536efd70ff",
}


def devc_recipe(keys_json: Path = KEYS_JSON) -> dict[str, dict[str, np.ndarray]]:
    spec = json.loads(Path(keys_json).read_text())
    out = {}
    for ckpt in FILES:
        sd = {}
        for key, shape in spec[ckpt]["keys"]:
            shape = tuple(shape)
            rng = np.random.default_rng(zlib.crc32(f"{ckpt}/{key}".encode()))
            if len(shape) >= 2:
                w = rng.standard_normal(shape) * math.sqrt(2.0 / math.prod(shape[1:]))
                if (ckpt, key) == ("colornet", "conv10_ab.weight"):
                    w = w * 0.1
            elif key.endswith(".bias"):
                w = rng.standard_normal(shape) * 0.05
            else:  # 1-D ".weight": PReLU slope
                w = np.full(shape, 0.25)
            sd[key] = w.astype(np.float32)
        out[ckpt] = sd
    return out


def tensor_sha256(sd: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for v in sd.values():
        h.update(np.ascontiguousarray(v, "<f4").tobytes())
    return h.hexdigest()


def write_recipe_weights(folder: Path, keys_json: Path = KEYS_JSON) -> Path:
    """Write the three official-named files into ``folder`` as plain state_dicts, as test.py saves."""
    import torch  # only to write the files in the official format

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for ckpt, sd in devc_recipe(keys_json).items():
        if tensor_sha256(sd) != RECIPE_SHA256[ckpt]:
            raise RuntimeError(f"recipe for {ckpt} does not reproduce the fixture's sha256")
        torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, folder / FILES[ckpt])
    return folder


if __name__ == "__main__":  # python tests/devc_recipe.py DIR
    import sys

    print(write_recipe_weights(Path(sys.argv[1] if len(sys.argv) > 1 else "devc_recipe_weights")))
