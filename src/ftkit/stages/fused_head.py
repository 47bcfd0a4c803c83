"""Score the LM head only where labels are trained, and fast on a CPU.

TRL's trainers compute per-token log-probabilities with a fused LM head (`add_fused_lm_head`): the
hidden states are projected through the head in tiles, without materializing the logits. On Triton
devices it projects only the positions whose label is trained and folds each tile in one kernel.
Elsewhere it projects every position, prompt tokens included (to keep tile shapes fixed for compilers
such as Neuron's), and folds the tiles with a dozen full-size torch passes, then recomputes the tiles
in backward. With a real vocabulary that was a fifth of a CPU training step (bench/training.py).

ftkit keeps TRL's head and its contract (same arguments, same outputs and gradients) and changes two
choices where no fixed shapes are needed: the trained positions only, and, when the logits of those
positions are small enough to keep (`DENSE_LIMIT`), one log-softmax whose probabilities are kept for backward
instead of tiled online statistics. Larger problems, softcapped logits and autocast keep TRL's kernel.
"""

from __future__ import annotations

from typing import Any

import torch

_NEEDS_FIXED_SHAPES = ("xla", "neuron", "hpu")
# Kept probabilities, in elements (tokens x vocabulary): 64 MiB in fp32. TRL's own CPU path allocates
# a tile of up to 4096 x 32768 elements per call, so this never raises a step's peak above TRL's.
DENSE_LIMIT = 1 << 24


def _compact_unless_compiled(device: torch.device) -> bool:
    return device.type not in _NEEDS_FIXED_SHAPES


class DenseLogProbs(torch.autograd.Function):
    """TRL's `ChunkedLogProbFunction` for small problems: the logits once, their softmax kept for backward.

    Returns (log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1), each None unless requested in
    `outputs` (log_probs always); gradients flow to the hidden states, the head's weight and bias, through
    log_probs and entropy.
    """

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        temperature: float,
        chunk_size: int,
        final_logit_softcapping: float | None = None,
        logit_scale: float = 1.0,
        outputs: tuple[str, ...] = (),
    ) -> tuple[torch.Tensor | None, ...]:
        del chunk_size, final_logit_softcapping  # one tile; softcapped heads never come here
        ctx.set_materialize_grads(False)
        scale = logit_scale / temperature
        logits = hidden.float() @ weight.float().t()
        if bias is not None:
            logits.add_(bias.float())
        if scale != 1.0:
            logits.mul_(scale)
        mean_logits = logits.mean(-1) if "mean_logits" in outputs else None
        log_p = torch.log_softmax(logits, dim=-1)
        del logits
        log_probs = log_p.gather(1, targets.unsqueeze(1)).squeeze(1)
        probs = log_p.exp()
        entropy = -torch.linalg.vecdot(probs, log_p) if "entropy" in outputs else None
        log_sum_sq_probs = torch.logsumexp(2 * log_p, dim=-1) if "log_sum_sq_probs" in outputs else None
        is_top1 = log_p.argmax(-1) == targets if "is_top1" in outputs else None
        ctx.save_for_backward(hidden, weight, bias, targets, probs, entropy)
        ctx.scale = scale
        ctx.mark_non_differentiable(*(x for x in (log_sum_sq_probs, mean_logits, is_top1) if x is not None))
        return log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1

    @staticmethod
    def backward(
        ctx: Any, grad_log_probs: torch.Tensor | None, grad_entropy: torch.Tensor | None, *_: Any
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, bias, targets, probs, entropy = ctx.saved_tensors
        grad = torch.zeros_like(probs) if grad_log_probs is None else None
        if grad_log_probs is not None:  # d log p_t / d z_j = 1[j = t] - p_j
            g = grad_log_probs.float().unsqueeze(1)
            grad = probs * g.neg()
            grad.scatter_add_(1, targets.unsqueeze(1), g)
        if (
            grad_entropy is not None
        ):  # d entropy / d z_j = -p_j (log p_j + entropy), and p log p -> 0 as p -> 0
            term = torch.xlogy(probs, probs).addcmul_(probs, entropy.unsqueeze(1))
            grad.addcmul_(term, grad_entropy.float().unsqueeze(1), value=-1.0)
        if ctx.scale != 1.0:
            grad.mul_(ctx.scale)
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_hidden = (grad @ weight.float()).to(hidden.dtype) if needs_hidden else None
        grad_weight = (grad.t() @ hidden.float()).to(weight.dtype) if needs_weight else None
        grad_bias = grad.sum(0).to(bias.dtype) if needs_bias else None
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None, None


class _LogProbsForDevice:
    """Stands in for TRL's `ChunkedLogProbFunction` in its fused head: the dense path where it applies."""

    def __init__(self, chunked: Any, uses_triton: Any) -> None:
        self.chunked = chunked
        self.uses_triton = uses_triton

    def apply(self, hidden: torch.Tensor, weight: torch.Tensor, *args: Any) -> Any:
        dense = (
            not self.uses_triton(hidden.device)
            and hidden.shape[0] * weight.shape[0] <= DENSE_LIMIT
            and (len(args) < 5 or args[4] is None)  # no logit softcapping
            and not torch.is_autocast_enabled(hidden.device.type)
        )
        return (DenseLogProbs if dense else self.chunked).apply(hidden, weight, *args)


def use_compact_lm_head() -> None:
    """Make TRL's fused LM head compact (trained positions only) and dense on small CPU problems."""
    import trl.trainer.utils as trl_utils
    from trl.kernels import ChunkedLogProbFunction
    from trl.kernels.chunked_logprob import _use_triton

    # only decides compactness; the kernel choice is separate
    trl_utils._use_triton = _compact_unless_compiled
    trl_utils._ChunkedLogProbFunction = _LogProbsForDevice(ChunkedLogProbFunction, _use_triton)
