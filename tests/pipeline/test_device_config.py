from fractions import Fraction

import pytest
import torch

from colorize.pipeline.config import DEFAULT_AUTO_MODEL, DEFAULT_REFERENCE_MODEL, RunConfig, default_model_name
from colorize.pipeline.device import DeviceError, compute_dtype, resolve_device
from colorize.pipeline.runner import working_size


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    for bad in ("gpu", "cuda:x", "auto:1", ""):
        with pytest.raises(DeviceError):
            resolve_device(bad)
    assert compute_dtype(torch.device("cpu")) == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("w, h, sar, render, mult, expected", [
    (1920, 1080, Fraction(1), 256, 32, (256, 448)),   # 16:9, short side 256
    (1080, 1920, Fraction(1), 256, 32, (448, 256)),   # portrait
    (64, 48, Fraction(1), 256, 16, (48, 64)),         # small: never upscaled past the next multiple
    (50, 40, Fraction(1), 256, 16, (48, 64)),
    (720, 576, Fraction(16, 15), 256, 32, (256, 352)),  # non-square pixels: display aspect kept
    (640, 480, Fraction(1), 250, 32, (256, 352)),     # render size rounded to the multiple
])
def test_working_size(w, h, sar, render, mult, expected):
    hh, ww = working_size(w, h, sar, render, mult)
    assert (hh, ww) == expected and hh % mult == 0 and ww % mult == 0


def test_config_validation_and_dict():
    assert default_model_name(False) == DEFAULT_AUTO_MODEL and default_model_name(True) == DEFAULT_REFERENCE_MODEL
    with pytest.raises(ValueError):
        RunConfig(diverse=0)
    with pytest.raises(ValueError):
        RunConfig(pick="random")
    cfg = RunConfig(diverse=3, refine_passes=2)
    assert cfg.model_options() == {"diverse": 3, "refine_passes": 2}
    assert RunConfig().model_options() == {}
    d = cfg.as_dict()
    assert d["diverse"] == 3 and d["weights"] is None
    with pytest.raises(Exception):
        cfg.diverse = 2  # frozen


def test_precision_choices():
    from colorize.pipeline.errors import UsageError

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert compute_dtype(cpu, "auto") == torch.float32 and compute_dtype(gpu, "auto") == torch.float16
    assert compute_dtype(cpu, "bf16") == torch.bfloat16 and compute_dtype(gpu, "fp32") == torch.float32
    assert compute_dtype(cpu, "fp16") == torch.float16
    with pytest.raises(UsageError, match="precision"):
        compute_dtype(cpu, "int8")
    with pytest.raises(ValueError, match="precision"):
        RunConfig(precision="fp64")
    assert RunConfig(precision="bf16").as_dict()["precision"] == "bf16"


def test_a_ray_task_reserves_the_cores_it_computes_on(monkeypatch):
    """One torch thread with a core to spare: the backbone overlaps onto a second core, so a
    segment task reserves two CPUs; more threads reserve that many; a GPU task one CPU."""
    import torch

    import colorize.models.overlap as overlap
    from colorize.pipeline.distributed import cpus_per_task

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(overlap, "usable_cores", lambda: 8)
        torch.set_num_threads(1)
        assert cpus_per_task(torch.device("cpu")) == 2
        monkeypatch.setattr(overlap, "usable_cores", lambda: 1)
        assert cpus_per_task(torch.device("cpu")) == 1
        monkeypatch.setattr(overlap, "usable_cores", lambda: 8)
        torch.set_num_threads(3)
        assert cpus_per_task(torch.device("cpu")) == 3
        assert cpus_per_task(torch.device("cuda")) == 1
    finally:
        torch.set_num_threads(before)
