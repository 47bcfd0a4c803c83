"""`model:` which weights and tokenizer to load, and how."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool

from ftkit.config.sections.base import Section

Dtype = Literal["auto", "bfloat16", "float16", "float32"]


class QuantizationConfig(Section):
    """bitsandbytes quantization of the frozen base weights (QLoRA)."""

    bits: Literal[4, 8]
    """4 (NF4/FP4, QLoRA) or 8 (LLM.int8)."""
    quant_type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type; ignored for 8-bit."""
    double_quant: bool = True
    """Quantize the 4-bit quantization constants too (saves ~0.4 bit per parameter)."""
    compute_dtype: Dtype = "auto"
    """Dtype of the matmuls on dequantized weights; auto follows the training precision."""


class ModelConfig(Section):
    """The base model, its tokenizer, and the chat template used to format conversations."""

    name_or_path: str = Field(min_length=1)
    """Hub id (e.g. meta-llama/Llama-3.2-3B-Instruct) or local directory of a transformers model."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to load; ignored for local paths."""
    tokenizer: str | None = None
    """Tokenizer hub id or path when it differs from name_or_path."""
    template: str | None = None
    """Chat template name from the template registry (`ftkit template list`); needed by sft, grpo and dpo."""
    add_template_tokens: bool = False
    """Add the template's marker tokens the tokenizer lacks (e.g. ChatML on a base GPT-2); the embeddings are
    resized and the new rows trained. Off: such a template/tokenizer mismatch is an error."""
    from_scratch: bool = False
    """Initialize random weights from the model's config instead of loading its weights (pretraining)."""
    dtype: Dtype = "auto"
    """Dtype the weights are loaded in. auto: a frozen LoRA base on a GPU takes the half type of the training
    precision; weights that are trained stay float32 masters under mixed precision; float32 on CPU."""
    attn_implementation: Literal[
        "auto", "flash_attention_2", "flash_attention_3", "sdpa", "eager", "ftkit_segments"
    ] = "auto"
    """Attention kernel; auto picks flash attention when installed and usable, else sdpa (ftkit_segments
    when packing or padding-free: sdpa per example, not over the whole row)."""
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    """Where to train; auto picks cuda, then mps, then cpu."""
    trust_remote_code: StrictBool = False
    """Allow model code shipped in the checkpoint to run. Off by default: only enable for publishers you trust."""
    allow_pickle: StrictBool = False
    """Allow weights in pickle files (pytorch_model.bin, .pt), which can run code when loaded. Off: only
    safetensors are loaded."""
    quantization: QuantizationConfig | None = None
    """Load the base weights quantized (needs the bitsandbytes extra and a LoRA adapter)."""
