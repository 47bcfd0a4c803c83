"""Attention that costs each example its own length when several examples share one row.

Packing and padding-free batches put a batch's examples end to end in one sequence and separate them by
their position_ids. Flash attention's varlen kernels (CUDA) attend within each example natively; with
sdpa or eager, transformers instead builds a block-diagonal mask over the whole sequence, so attention
costs the square of the batch's total length (4 x 512 tokens: 2048 squared) instead of the sum of each
example's square, and it is most of a packed step on a CPU. This attention runs one causal sdpa call per
example (the boundaries are the collator's `cu_seq_lens_q`) and otherwise behaves exactly as sdpa: a
padded batch gets transformers' sdpa with its mask.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

SEGMENTED = "ftkit_segments"
"""The attn_implementation name ftkit registers."""


def segmented_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    # Grouped-query attention inside the kernel: the key/value heads are not copied per query head.
    grouped = getattr(module, "num_key_value_groups", 1) > 1
    edges = bounds.tolist()
    if edges[-1] < query.shape[2]:  # padding after the last example (pad_to_multiple_of): its own piece
        edges.append(query.shape[2])
    pieces = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            dropout_p=dropout,
            scale=scaling,
            is_causal=end - start > 1,
            enable_gqa=grouped,
        ).transpose(1, 2)
        for start, end in pairwise(edges)
        if end > start
    ]
    # Concatenating the (batch, length, heads, dim) pieces makes the contiguous output in one copy.
    return torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0].contiguous(), None


def register_segmented_attention() -> str:
    """Make `ftkit_segments` an attn_implementation transformers knows (its masks are sdpa's)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(SEGMENTED, segmented_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(SEGMENTED, sdpa_mask)
    return SEGMENTED
