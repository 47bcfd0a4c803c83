"""Tokenizer and model loading from a hub id or a local path, as the recipe and runtime say."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ftkit.config.sections.model import ModelConfig
from ftkit.errors import UserError
from ftkit.models.runtime import Runtime

log = logging.getLogger(__name__)


def _hub_hint(name: str) -> str:
    if Path(name).exists() or name.startswith((".", "/")):
        return ""
    return " If it is a hub id, check the spelling, your network and HF_TOKEN (gated models need access)."


def load_tokenizer(model: ModelConfig) -> Any:
    from transformers import AutoTokenizer

    name = model.tokenizer or model.name_or_path
    revision = None if model.tokenizer else model.revision  # the revision names a commit of the model repo
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name, revision=revision, trust_remote_code=model.trust_remote_code
        )
    except OSError as exc:
        raise UserError(f"cannot load the tokenizer of {name!r}: {exc}.{_hub_hint(name)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        log.info(
            "tokenizer has no pad token; padding with eos %r (padding is never trained)", tokenizer.eos_token
        )
    return tokenizer


def quantization_config(model: ModelConfig, runtime: Runtime) -> Any:
    """bitsandbytes settings for QLoRA, or None."""
    quant = model.quantization
    if quant is None:
        return None
    from transformers import BitsAndBytesConfig

    from ftkit.models.runtime import DTYPES, HALF

    if quant.compute_dtype == "auto":
        compute = HALF.get(runtime.precision, DTYPES["float32"])
    else:
        compute = DTYPES[quant.compute_dtype]
    try:
        return BitsAndBytesConfig(
            load_in_4bit=quant.bits == 4,
            load_in_8bit=quant.bits == 8,
            bnb_4bit_quant_type=quant.quant_type,
            bnb_4bit_use_double_quant=quant.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
    except ImportError as exc:
        raise UserError(
            f"model.quantization needs bitsandbytes: pip install 'ftkit[bitsandbytes]' ({exc})"
        ) from None


def load_model(model: ModelConfig, runtime: Runtime, seed: int) -> Any:
    """The causal LM in the runtime's dtype and attention, on the CPU (the trainer or caller places it);
    random weights with model.from_scratch."""
    from transformers import AutoConfig, AutoModelForCausalLM

    name = model.name_or_path
    common = {"dtype": runtime.dtype, "trust_remote_code": model.trust_remote_code}
    if runtime.attn_implementation:
        common["attn_implementation"] = runtime.attn_implementation
    try:
        if model.from_scratch:
            config = AutoConfig.from_pretrained(
                name, revision=model.revision, trust_remote_code=model.trust_remote_code
            )
            torch.manual_seed(seed)
            loaded = AutoModelForCausalLM.from_config(config, **common)
            log.info("initialized %s with random weights from its config (seed %d)", name, seed)
        else:
            loaded = AutoModelForCausalLM.from_pretrained(
                name, revision=model.revision, use_safetensors=True, **common
            )
    except OSError as exc:
        raise UserError(f"cannot load model {name!r}: {exc}.{_hub_hint(name)}") from None
    except ValueError as exc:
        raise UserError(f"cannot load model {name!r}: {exc}") from None
    return loaded


def _device_index(runtime: Runtime) -> Any:
    # Under torchrun the trainer arguments have already selected this process's GPU.
    return torch.cuda.current_device() if runtime.device == "cuda" else runtime.device


def attention_backend(model: Any) -> str:
    """The attention kernel the loaded model actually uses."""
    config = getattr(model, "config", None)
    return str(getattr(config, "_attn_implementation", None) or "eager")
