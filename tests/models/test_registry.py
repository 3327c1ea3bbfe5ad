"""Every registered model gets the same checks for free (timm's habit)."""

import json

import pytest
import torch

from colorize.models import create_model, get_model_info, list_models
from colorize.models.registry import (
    WEIGHTS_DIR,
    UnknownModelError,
    WeightsError,
    load_into,
    load_state,
    read_manifest,
    sha256_file,
)

TRAINABLE = [n for n in list_models() if n != "devc"]  # devc takes the official files: test_devc.py


def test_unknown_model_fails_loudly():
    with pytest.raises(UnknownModelError, match="choose one of"):
        get_model_info("no-such-model")


@pytest.mark.parametrize("name", TRAINABLE)
def test_forward_through_the_registry(name, tmp_path):
    import importlib

    family = importlib.import_module(f"colorize.models.{name}").FAMILY
    torch.manual_seed(0)
    path = tmp_path / f"{name}.pt"
    torch.save(family.build_net().state_dict(), path)
    model = create_model(name, weights=path)
    info = get_model_info(name)
    assert model.info == info and model.weights_sha256 == sha256_file(path)
    if info.needs_reference:
        model.set_reference(torch.cat((torch.rand(1, 1, 64, 64) * 100, torch.randn(1, 2, 64, 64) * 30), 1))
    h, w = 2 * info.size_multiple, 3 * info.size_multiple
    got = {}
    for i in range(3):
        got.update(dict(model.push(i, torch.rand(1, h, w) * 100)))
    got.update(dict(model.flush()))
    assert sorted(got) == [0, 1, 2]
    for ab in got.values():
        assert ab.shape == (model.num_outputs, 2, h, w)
        assert torch.isfinite(ab).all() and ab.abs().max() <= 128


@pytest.mark.parametrize("name", TRAINABLE)
def test_half_precision_matches_float32(name, tmp_path):
    """GPUs run the models in float16: every model must stay finite and close to float32 there
    (run here on the CPU, which has the same dtype paths). The selfreg refine pass once gave NaN."""
    import importlib

    family = importlib.import_module(f"colorize.models.{name}").FAMILY
    torch.manual_seed(0)
    path = tmp_path / f"{name}.pt"
    torch.save(family.build_net().state_dict(), path)
    info = get_model_info(name)
    h, w = 2 * info.size_multiple, 3 * info.size_multiple
    frames = [torch.rand(1, h // 8, w // 8).repeat_interleave(8, 1).repeat_interleave(8, 2) * 100 for _ in range(3)]
    ref = torch.cat((torch.rand(1, 1, 64, 64) * 100, torch.randn(1, 2, 64, 64) * 30), 1)
    outs = {}
    for dtype in (torch.float32, torch.float16):
        model = create_model(name, weights=path, dtype=dtype)
        if info.needs_reference:
            model.set_reference(ref)
        got = {}
        for i, f in enumerate(frames):
            got.update(dict(model.push(i, f)))
        got.update(dict(model.flush()))
        outs[dtype] = got
    for i in range(3):
        full, half = outs[torch.float32][i], outs[torch.float16][i]
        assert half.dtype == torch.float32 and torch.isfinite(half).all(), i
        assert (full - half).abs().mean() < 0.5, i


def test_sha256_mismatch_is_refused(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(2)}, path)
    with pytest.raises(WeightsError, match="sha256"):
        load_state(path, "0" * 64)
    state, digest = load_state(path, sha256_file(path))
    assert digest == sha256_file(path) and torch.equal(state["x"], torch.zeros(2))


def test_strict_loading_names_the_problem(tmp_path):
    net = torch.nn.Linear(2, 2)
    with pytest.raises(WeightsError, match="do not fit"):
        load_into(net, {"weight": torch.zeros(2, 2)}, tmp_path / "w.pt")


def test_truncated_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="cannot read"):
        load_state(path, None)


@pytest.mark.parametrize("name", sorted(read_manifest()))
def test_shipped_weights_match_their_manifest(name):
    record = read_manifest()[name]
    path = WEIGHTS_DIR / record["file"]
    assert path.stat().st_size < 20 * 2**20
    assert sha256_file(path) == record["sha256"]
    for key in ("params", "data", "steps", "wall_time_s", "metrics", "license"):
        assert key in record, key
    model = create_model(name)  # loads strictly after the checksum
    assert model.weights_sha256 == record["sha256"]
    json.dumps(record)
