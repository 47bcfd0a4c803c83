"""A LoRA linear layer whose training step does less work than peft's, with the same result.

peft computes `base(x) + B(A(dropout(x))) * scaling`: on a CPU the dropout draws one Mersenne-Twister
number per element, then the mask, the 1/(1-p) and the scaling are each a pass over a full-size tensor,
and autograd keeps the dropped-out copy of the input for every adapted layer. On a 32M-parameter Llama
with LoRA on all linear layers that is about a third of a step (bench/training.py). This layer computes
the same function with a hand-written backward:

- the dropout mask comes from 64-bit draws split into four 16-bit uniforms (an independent Bernoulli
  mask per element, p resolved to 1/65536), drawn by a fast generator seeded from torch's (gradient
  checkpointing recomputes the same mask because it replays torch's generator);
- the 1/(1-p) and the scaling multiply the rank-r product, not the full-size output;
- the update is added inside the output's matmul (addmm); backward keeps the dropped-out input (as
  peft's autograd does), the rank-r product and a one-byte mask, so that it redoes neither.

It runs only where that is exactly peft's computation: one active vanilla LoRA adapter on a frozen
`nn.Linear`, not merged, not disabled, same dtype everywhere, no autocast. Anything else (DoRA, several
adapters, quantized bases, mixed dtypes) takes peft's own forward unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from peft.tuners.lora.layer import Linear as PeftLoraLinear
from torch import nn

RESOLUTION = 1 << 16


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A boolean mask, True with probability 1 - round(p * 65536) / 65536, independently per element.

    The bits come from numpy's SFC64 generator seeded by one draw from torch's generator: seeded by
    `torch.manual_seed`, restored with a checkpoint's RNG state and replayed by activation checkpointing
    like any torch draw, and about twice as fast on a CPU as torch's Mersenne Twister.
    """
    count = shape.numel()
    seed = int(torch.randint(0, 1 << 62, (1,)))
    bits = np.random.SFC64(seed).random_raw((count + 3) // 4)
    uniforms = torch.from_numpy(bits.view(np.int16)[:count]).view(shape)
    return (uniforms >= round(p * RESOLUTION) - RESOLUTION // 2).to(device)


class _LoraLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        lora_a: torch.Tensor,
        lora_b: torch.Tensor,
        scale: float,
        keep: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The output, and the dropped-out input and rank-r product backward reuses (not differentiable)."""
        flat = x.reshape(-1, x.shape[-1])
        dropped = flat if keep is None else flat * keep
        low = (dropped @ lora_a.t()).mul_(scale)
        out = flat @ weight.t() if bias is None else torch.addmm(bias, flat, weight.t())
        out.addmm_(low, lora_b.t())
        return out.view(*x.shape[:-1], out.shape[-1]), dropped, low

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        x, weight, _bias, lora_a, lora_b, scale, keep = inputs
        _out, dropped, low = output
        ctx.scale = scale
        ctx.input_shape = x.shape
        # The dropped-out input (the input itself without dropout) and the rank-r product: backward
        # reuses them instead of redoing the mask and the product.
        ctx.save_for_backward(dropped, low, weight, lora_a, lora_b, keep)
        ctx.mark_non_differentiable(dropped, low)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        dropped, low, weight, lora_a, lora_b, keep = ctx.saved_tensors
        grad = grad_out.reshape(-1, grad_out.shape[-1])
        grad_b = grad.t() @ low
        grad_low = (grad @ lora_b).mul_(ctx.scale)
        grad_a = grad_low.t() @ dropped
        grad_x = None
        if ctx.needs_input_grad[0]:
            through_lora = grad_low @ lora_a
            if keep is not None:
                through_lora.mul_(keep)
            grad_x = torch.addmm(through_lora, grad, weight).view(ctx.input_shape)
        return grad_x, None, None, grad_a, grad_b, None, None


def lora_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    lora_a: torch.Tensor,
    lora_b: torch.Tensor,
    scale: float,
    keep: torch.Tensor | None,
) -> torch.Tensor:
    """`x W^T + b + ((x * keep) A^T B^T) * scale`; gradients for x, A and B only (the base is frozen)."""
    return _LoraLinearFunction.apply(x, weight, bias, lora_a, lora_b, scale, keep)[0]


def _partitioned(weight: torch.Tensor) -> bool:
    # ZeRO-3 gathers a weight when its own module is called, and a DTensor is a shard: both need peft's path.
    return hasattr(weight, "ds_id") or type(weight).__name__ == "DTensor"


class FastLoraLinear(PeftLoraLinear):
    """peft's LoRA Linear with a faster training forward/backward where it is exactly peft's computation."""

    def _fast_path(self, x: torch.Tensor, kwargs: dict[str, Any]) -> bool:
        if kwargs or self.disable_adapters or self.merged or len(self.active_adapters) != 1:
            return False
        name = self.active_adapters[0]
        if name not in self.lora_A or name in self.lora_variant or self.use_dora.get(name, False):
            return False
        base = self.base_layer
        if type(base) is not nn.Linear or base.weight.requires_grad or _partitioned(base.weight):
            return False
        if base.bias is not None and base.bias.requires_grad:
            return False
        dropout = self.lora_dropout[name]
        if not isinstance(dropout, (nn.Dropout, nn.Identity)) or torch.is_autocast_enabled(x.device.type):
            return False
        dtypes = {x.dtype, base.weight.dtype, self.lora_A[name].weight.dtype, self.lora_B[name].weight.dtype}
        return len(dtypes) == 1 and x.dtype.is_floating_point

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if args or not self._fast_path(x, kwargs):
            return super().forward(x, *args, **kwargs)
        name = self.active_adapters[0]
        dropout = self.lora_dropout[name]
        p = dropout.p if isinstance(dropout, nn.Dropout) and dropout.training else 0.0
        keep = None
        scale = float(self.scaling[name])
        if p > 0.0:
            flat_shape = torch.Size((x.numel() // x.shape[-1], x.shape[-1]))
            if x.device.type == "cpu":
                keep = keep_mask(flat_shape, p, x.device)
            else:  # CUDA's Philox draws are cheap: torch's own Bernoulli
                keep = torch.empty(flat_shape, device=x.device).bernoulli_(1.0 - p).bool()
            scale /= 1.0 - p
        base = self.base_layer
        lora_a, lora_b = self.lora_A[name].weight, self.lora_B[name].weight
        return lora_linear(x, base.weight, base.bias, lora_a, lora_b, scale, keep)


def use_fast_lora(model: nn.Module) -> int:
    """Give every peft LoRA Linear of `model` the fast training path; returns how many layers."""
    swapped = 0
    for module in model.modules():
        if type(module) is PeftLoraLinear:
            module.__class__ = FastLoraLinear
            swapped += 1
    return swapped
