"""ftkit's LoRA training path computes exactly peft's function and gradients (models/lora_fast.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from ftkit.models.lora_fast import FastLoraLinear, keep_mask, lora_linear, use_fast_lora


class TwoLinears(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(8, 6, bias=True)
        self.down = nn.Linear(6, 5, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.tanh(self.up(x)))


def _pair(**lora: object) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["up", "down"], init_lora_weights=False, **lora)
    reference = get_peft_model(TwoLinears(), config)
    fast = copy.deepcopy(reference)
    return reference, fast


def _step(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    x = x.clone().requires_grad_()
    out = model(x)
    out.square().sum().backward()
    return out.detach(), x.grad, [p.grad for p in model.parameters() if p.requires_grad]


def test_without_dropout_outputs_and_gradients_equal_peft() -> None:
    reference, fast = _pair(lora_dropout=0.0)
    assert use_fast_lora(fast) == 2
    assert all(type(m) is FastLoraLinear for m in fast.modules() if hasattr(m, "lora_A"))
    x = torch.randn(2, 3, 8)
    out, grad_x, grads = _step(reference.train(), x)
    fast_out, fast_grad_x, fast_grads = _step(fast.train(), x)
    torch.testing.assert_close(fast_out, out)
    torch.testing.assert_close(fast_grad_x, grad_x)
    for mine, theirs in zip(fast_grads, grads, strict=True):
        torch.testing.assert_close(mine, theirs)


def test_with_dropout_the_function_and_its_gradients_are_lora_on_the_masked_input() -> None:
    torch.manual_seed(1)
    x = torch.randn(5, 7, dtype=torch.double, requires_grad=True)
    weight, bias = torch.randn(4, 7, dtype=torch.double), torch.randn(4, dtype=torch.double)
    lora_a = torch.randn(3, 7, dtype=torch.double, requires_grad=True)
    lora_b = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    keep = keep_mask(torch.Size((5, 7)), 0.3, x.device)
    assert 0 < int(keep.sum()) < keep.numel()
    out = lora_linear(x, weight, bias, lora_a, lora_b, 1.7, keep)
    expected = x @ weight.t() + bias + (torch.where(keep, x, 0.0) @ lora_a.t() @ lora_b.t()) * 1.7
    torch.testing.assert_close(out, expected)
    assert torch.autograd.gradcheck(
        lambda x, a, b: lora_linear(x, weight, bias, a, b, 1.7, keep), (x, lora_a, lora_b)
    )


def test_the_dropout_mask_drops_p_of_the_elements_and_repeats_under_a_seed() -> None:
    torch.manual_seed(7)
    first = keep_mask(torch.Size((1000, 1000)), 0.05, torch.device("cpu"))
    torch.manual_seed(7)
    again = keep_mask(torch.Size((1000, 1000)), 0.05, torch.device("cpu"))
    assert torch.equal(first, again)
    dropped = 1.0 - first.double().mean().item()
    assert abs(dropped - 0.05) < 0.0015  # seven standard deviations of a million Bernoulli(0.05) draws
    # The rows are not copies of each other (the 16-bit uniforms come from independent 64-bit draws).
    assert not torch.equal(first[0], first[1])


def test_training_with_dropout_scales_the_kept_inputs() -> None:
    reference, fast = _pair(lora_dropout=0.5)
    use_fast_lora(fast)
    layer, reference_layer = fast.base_model.model.up, reference.base_model.model.up
    x = torch.randn(64, 8)
    with torch.no_grad():
        evaluated = layer.eval()(x)
        torch.testing.assert_close(evaluated, reference_layer.eval()(x))
        layer.train()
        torch.manual_seed(3)
        draws = torch.stack([layer(x) for _ in range(400)])
    # Dropout is on in training (draws differ from eval and from each other) and inverted: the mean of a
    # linear layer's output over masks is the eval output.
    assert not torch.allclose(draws[0], evaluated) and not torch.allclose(draws[0], draws[1])
    assert (draws.mean(0) - evaluated).abs().mean() < 0.05 * evaluated.abs().mean()


@pytest.mark.parametrize("case", ["merged", "disabled", "dora"])
def test_what_the_fast_path_does_not_cover_takes_peft_s_forward(case: str) -> None:
    reference, fast = _pair(lora_dropout=0.0, use_dora=case == "dora")
    use_fast_lora(fast)
    x = torch.randn(4, 8)
    if case == "merged":
        reference.merge_adapter()
        fast.merge_adapter()
    if case == "disabled":
        with reference.disable_adapter(), fast.disable_adapter():
            torch.testing.assert_close(fast(x), reference(x))
        return
    torch.testing.assert_close(fast.train()(x), reference.train()(x))
