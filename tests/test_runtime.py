"""What `auto` becomes on a machine, and the decision on precisions a device cannot run."""

from __future__ import annotations

import platform

import pytest
import torch

from ftkit.errors import UserError
from ftkit.models.runtime import resolve_attention, resolve_device, resolve_dtype, resolve_precision


def test_cpu_defaults():
    assert resolve_device("auto") == "cpu"
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_dtype("auto", "fp32", "lora", "cpu") == torch.float32
    assert resolve_attention("auto", "cpu", torch.float32) is None  # transformers picks sdpa


def test_fp16_on_cpu_is_an_error_not_a_fallback():
    with pytest.raises(UserError, match=r"train\.precision is fp16, which needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")


def test_bf16_runs_on_cpu_autocast():
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_bf16_on_a_gpu_without_it_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(UserError, match="does not support bfloat16"):
        resolve_precision("bf16", "cuda")
    assert resolve_precision("auto", "cuda") == "fp16"


def test_gpu_dtype_keeps_trained_weights_in_float32():
    assert resolve_dtype("auto", "bf16", "lora", "cuda") == torch.bfloat16
    assert resolve_dtype("auto", "bf16", "full", "cuda") == torch.float32
    assert resolve_dtype("float16", "fp32", "full", "cpu") == torch.float16


def test_explicit_cuda_without_gpu_is_an_error():
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        resolve_device("cuda")


def test_flash_attention_needs_cuda():
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        resolve_attention("flash_attention_2", "cpu", torch.bfloat16)
    assert resolve_attention("eager", "cpu", torch.float32) == "eager"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator settings are glibc's")
def test_cpu_allocator_settings_are_accepted_by_glibc():
    """glibc refuses out-of-range mallopt values (returns 0): every setting must be one it takes."""
    from ftkit.allocator import keep_freed_memory

    assert keep_freed_memory() is True


def test_liger_kernels_on_cuda_when_installed_and_handed_to_the_trainer(monkeypatch, tmp_path):
    import importlib.util

    from ftkit.config import load_recipe
    from ftkit.models import runtime as runtime_module
    from ftkit.stages.common import trainer_arguments

    real_find_spec = importlib.util.find_spec
    installed = {"liger_kernel"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: object() if name in installed else real_find_spec(name)
    )
    assert runtime_module.resolve_liger("cuda") is True
    assert runtime_module.resolve_liger("cpu") is False  # Triton kernels: CUDA only
    installed.clear()
    assert runtime_module.resolve_liger("cuda") is False  # not installed: not asked for

    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(
        "model: {name_or_path: m, template: chatml}\ndata: {train: d}\ntrain: {output_dir: o}\n"
    )
    recipe = load_recipe(recipe_path)
    on = runtime_module.Runtime("cuda", "bf16", torch.bfloat16, None, liger_kernels=True)
    assert trainer_arguments(recipe, on)["use_liger_kernel"] is True
    assert trainer_arguments(recipe, runtime_module.resolve_runtime(recipe))["use_liger_kernel"] is False
