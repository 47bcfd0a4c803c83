"""Tokenizer and model loading from a hub id or a local path, as the recipe and runtime say."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ftkit.config.sections.model import ModelConfig
from ftkit.errors import UserError
from ftkit.models.attention import SEGMENTED, register_segmented_attention
from ftkit.models.heads import CAUSAL_LM, Head, head_of_adapter, head_of_model
from ftkit.models.runtime import Runtime, torch_dtype

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


@dataclass
class TokenizerBundle:
    tokenizer: Any
    template: Any
    """The chat template (None without model.template: stage pt reads plain text)."""
    new_token_ids: list[int]
    """Template tokens added to the tokenizer (model.add_template_tokens)."""


def load_tokenizer_and_template(model: ModelConfig) -> TokenizerBundle:
    """The tokenizer, the recipe's chat template checked against it (markers added when allowed), and
    the template attached to the tokenizer so that saved tokenizers render as training did."""
    from ftkit.models.special_tokens import attach_chat_template, prepare_template_tokens
    from ftkit.templates import get_template

    tokenizer = load_tokenizer(model)
    if not model.template:  # stages that need one are refused without it when the recipe is validated
        return TokenizerBundle(tokenizer, None, [])
    template = get_template(model.template, tokenizer)
    new_token_ids = prepare_template_tokens(template, tokenizer, model.add_template_tokens)
    attach_chat_template(tokenizer, template)
    return TokenizerBundle(tokenizer, template, new_token_ids)


def quantization_config(model: ModelConfig, runtime: Runtime) -> Any:
    """bitsandbytes settings for QLoRA, or None."""
    quant = model.quantization
    if quant is None:
        return None
    from transformers import BitsAndBytesConfig

    from ftkit.models.runtime import HALF, torch_dtype

    name = HALF.get(runtime.precision, "float32") if quant.compute_dtype == "auto" else quant.compute_dtype
    compute = torch_dtype(name)
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


def load_model(model: ModelConfig, runtime: Runtime, seed: int, head: Head = CAUSAL_LM) -> Any:
    """The model with `head` (a causal LM, or a reward model's score head on the same body) in the
    runtime's dtype and attention, on the CPU (the trainer or caller places it); random weights with
    model.from_scratch."""
    from transformers import AutoConfig

    model_class = head.model_class()
    name = model.name_or_path
    if model.trust_remote_code:
        log.warning("model.trust_remote_code is on: code shipped with %s runs in this process", name)
    common = {"dtype": runtime.dtype, "trust_remote_code": model.trust_remote_code, **head.config}
    if runtime.attn_implementation == SEGMENTED:
        register_segmented_attention()
    if runtime.attn_implementation:
        common["attn_implementation"] = runtime.attn_implementation
    try:
        if model.from_scratch:
            config = AutoConfig.from_pretrained(
                name, revision=model.revision, trust_remote_code=model.trust_remote_code
            )
            torch.manual_seed(seed)
            for key, value in head.config.items():
                setattr(config, key, value)
            loaded = model_class.from_config(
                config, **{k: v for k, v in common.items() if k not in head.config}
            )
            log.info("initialized %s with random weights from its config (seed %d)", name, seed)
        else:
            quantized = quantization_config(model, runtime)
            if quantized is not None:
                # bitsandbytes quantizes while loading, on the device the weights are loaded to.
                common |= {"quantization_config": quantized, "device_map": _device_index(runtime)}
            with quiet_new_head(head):
                loaded = model_class.from_pretrained(
                    name,
                    revision=model.revision,
                    use_safetensors=None if model.allow_pickle else True,
                    **common,
                )
            if quantized is not None:
                log.info("%s loaded in %d-bit (bitsandbytes %s)", name, model.quantization.bits, _kind(model))
            if head.new_head:
                log.info("%s: a %s head, newly initialized, on the pretrained body", name, head.name)
    except OSError as exc:
        raise UserError(f"cannot load model {name!r}: {exc}.{_hub_hint(name)}") from None
    except ValueError as exc:
        raise UserError(f"cannot load model {name!r}: {exc}") from None
    return loaded


@contextlib.contextmanager
def quiet_new_head(head: Head) -> Iterator[None]:
    """transformers reports a new head's weights as missing from the checkpoint, which is expected for a
    reward model built on a language model (the adapter or the training supplies them)."""
    if not head.new_head:
        yield
        return
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _device_index(runtime: Runtime) -> Any:
    # Under torchrun the trainer arguments have already selected this process's GPU.
    return torch.cuda.current_device() if runtime.device == "cuda" else runtime.device


def loaded_bits(model: Any) -> int | None:
    """4 or 8 when the loaded weights are bitsandbytes-quantized (what the run records), else None."""
    if getattr(model, "is_loaded_in_4bit", False):
        return 4
    return 8 if getattr(model, "is_loaded_in_8bit", False) else None


def _kind(model: ModelConfig) -> str:
    quant = model.quantization
    if quant is None or quant.bits == 8:
        return "LLM.int8"
    return quant.quant_type + (", double quantization" if quant.double_quant else "")


def attention_backend(model: Any) -> str:
    """The attention kernel the loaded model actually uses."""
    config = getattr(model, "config", None)
    return str(getattr(config, "_attn_implementation", None) or "eager")


def trained_tokenizer(adapter: Path, base: str) -> Any:
    """The tokenizer saved with a trained adapter (with the template tokens training added), else the base's."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        str(adapter) if (adapter / "tokenizer_config.json").is_file() else base
    )


def load_merged(
    base: str,
    adapter: str | Path,
    dtype: str = "auto",
    revision: str | None = None,
    allow_pickle: bool = False,
) -> tuple[Any, Any]:
    """Base and LoRA adapter loaded on the CPU and merged with peft: the model (with the head the adapter
    was trained with), and the trained tokenizer."""
    from peft import PeftModel

    from ftkit.models.special_tokens import resize_embeddings

    head = head_of_adapter(adapter)
    try:
        with quiet_new_head(head):
            model = head.model_class().from_pretrained(
                base,
                dtype="auto" if dtype == "auto" else torch_dtype(dtype),
                revision=revision,
                use_safetensors=None if allow_pickle else True,
                **head.config,
            )
    except OSError as exc:
        raise UserError(f"cannot load the base model {base!r}: {exc}") from None
    tokenizer = trained_tokenizer(Path(adapter), base)
    resize_embeddings(model, tokenizer)  # the adapter holds the rows of the tokens training added
    if head.new_head and model.config.pad_token_id is None:
        # A score is read at the last token before the padding: batches need the pad token's id.
        model.config.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload(), tokenizer


def load_model_dir(path: str) -> tuple[Any, Any]:
    """A saved model (with the head its config names) and its tokenizer."""
    from transformers import AutoTokenizer

    from ftkit.models.sources import looks_like_path

    if looks_like_path(path) and not Path(path).is_dir():
        raise UserError(f"model {path}: no such local folder")
    try:
        model = head_of_model(path).model_class().from_pretrained(path, use_safetensors=True)
        return model, AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise UserError(f"cannot load a model from {path}: {exc}") from None
