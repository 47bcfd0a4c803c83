"""LoftQ (adapter.init: loftq): a QLoRA adapter that starts where it cancels the base's quantization error.

For each adapted linear layer with full-precision weight W, LoftQ alternates

    Q = dequantize(quantize(W - B A))      (B A = 0 at first)
    B, A = the rank-r SVD of W - Q

so that Q + B A is close to W: the quantized model with its adapter starts near the original model
instead of at the quantized one. Q's values lie on the quantization grid, so quantizing Q again when the
run loads it in 4 or 8 bits gives Q back. The trained adapter therefore belongs to Q, not to W: the run
keeps Q as its base (`base_model/` in the output directory, recorded in run.json), and `ftkit export`,
eval and chat use that base. Merging a LoftQ adapter into the original weights would add the
quantization correction twice.

peft has this initialization (init_lora_weights="loftq") but computes it on CUDA only, fixes its own
quantization settings, and leaves the adapter's scaling (alpha / r) out, so that with alpha != r the
start is not Q + B A. ftkit computes it with bitsandbytes' quantizers on the weights' own device, with
the recipe's quantization settings, and divides B by the scaling.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ftkit.atomic import atomic_directory

if TYPE_CHECKING:
    from ftkit.config.sections.model import QuantizationConfig

log = logging.getLogger(__name__)
BLOCKSIZE = 64
"""bitsandbytes' 4-bit block size, which transformers uses when it loads a model in 4 bits."""


def quantized(weight: torch.Tensor, quant: QuantizationConfig) -> torch.Tensor:
    """The weight as bitsandbytes stores it for this quantization, back in full precision."""
    import bitsandbytes.functional as bnb

    full = weight.float()
    if quant.bits == 4:
        packed, state = bnb.quantize_4bit(
            full, blocksize=BLOCKSIZE, compress_statistics=quant.double_quant, quant_type=quant.quant_type
        )
        return bnb.dequantize_4bit(packed, state).float()
    rows, scales, _ = bnb.int8_vectorwise_quant(full)
    return bnb.int8_vectorwise_dequant(rows, scales).float()


@torch.no_grad()
def loftq_factors(
    weight: torch.Tensor, rank: int, quant: QuantizationConfig, iterations: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q, B, A with Q + B A close to `weight` (B: out x rank, A: rank x in), all float32."""
    target = weight.float()
    low_rank = torch.zeros_like(target)
    for _ in range(iterations):
        base = quantized(target - low_rank, quant)
        u, s, vh = torch.linalg.svd(target - base, full_matrices=False)
        root = s[:rank].sqrt()
        b, a = u[:, :rank] * root, root[:, None] * vh[:rank]
        low_rank = b @ a
    return base, b, a


@torch.no_grad()
def initialize(
    model: torch.nn.Module, quant: QuantizationConfig, iterations: int, device: str = "cpu"
) -> int:
    """Replace every LoRA layer's base weight by Q and its adapter by the LoftQ factors; returns how many
    layers. The layers' outputs are then Q x + B A x (the scaling is divided out of B). The factors are
    computed on `device` (the run's: an SVD per layer is slow on a CPU), one layer at a time."""
    from peft.tuners.lora import LoraLayer

    layers = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer) or "default" not in module.lora_A:
            continue
        base_layer = module.get_base_layer()
        if not isinstance(base_layer, torch.nn.Linear):
            continue  # embeddings keep the default start
        weight = base_layer.weight
        base, b, a = loftq_factors(weight.to(device), module.r["default"], quant, iterations)
        lora_a, lora_b = module.lora_A["default"].weight, module.lora_B["default"].weight
        weight.copy_(base.to(weight))
        lora_a.copy_(a.to(lora_a))
        lora_b.copy_((b / module.scaling["default"]).to(lora_b))
        layers += 1
    return layers


def prepare_loftq_base(
    model: torch.nn.Module,
    tokenizer: Any,
    quant: QuantizationConfig,
    iterations: int,
    base_dir: Path,
    adapter_dir: Path,
    device: str = "cpu",
) -> None:
    """Run LoftQ on `model` (full precision, LoRA attached with the default start) and save what the run
    trains from: the base with Q in place of each adapted weight (`base_dir`) and the initial adapter
    (`adapter_dir`). `model` is unloaded (its LoRA layers removed) on the way."""
    layers = initialize(model, quant, iterations, device)
    rank = model.peft_config["default"].r
    model.peft_config["default"].base_model_name_or_path = str(base_dir.resolve())
    with atomic_directory(adapter_dir, force=True) as staging:
        model.save_pretrained(staging)
    base = model.unload()
    with atomic_directory(base_dir, force=True) as staging:
        base.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    kind = f"{quant.bits}-bit" + (f" {quant.quant_type}" if quant.bits == 4 else "")
    log.info(
        "LoftQ: %d layers start at their %s quantization plus a rank-%s correction (%d iteration%s); "
        "the quantized base the adapter belongs to is saved in %s",
        layers,
        kind,
        rank,
        iterations,
        "" if iterations == 1 else "s",
        base_dir,
    )
