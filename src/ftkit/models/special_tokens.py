"""The chat template's marker tokens and the tokenizer: check them, or add them when the recipe says so.

A template whose markers are not single tokens of the tokenizer belongs to another model family (the
llama3 template on a Qwen tokenizer): that is an error before anything trains. Teaching a base model a
new format (ChatML on GPT-2) is done explicitly with `model.add_template_tokens: true`: the markers are
added as special tokens, the embeddings resized (new rows start at the mean embedding) and
trained (with LoRA, the embedding and output matrices join modules_to_save).
"""

from __future__ import annotations

import logging
from typing import Any

from ftkit.errors import UserError
from ftkit.templates import ChatTemplate, token_variables

log = logging.getLogger(__name__)


def missing_tokens(template: ChatTemplate, tokenizer: Any) -> list[str]:
    """Template markers that the tokenizer does not encode as one token."""
    return [t for t in template.special_tokens if len(tokenizer.encode(t, add_special_tokens=False)) != 1]


def prepare_template_tokens(template: ChatTemplate, tokenizer: Any, add: bool) -> list[int]:
    """Check the template's markers against the tokenizer; with `add`, add the missing ones.

    Returns the ids of the tokens added (empty when the tokenizer already had them all).
    """
    missing = missing_tokens(template, tokenizer)
    if not missing:
        return []
    if not add:
        raise UserError(
            f"template {template.name} writes {', '.join(missing)}, which this tokenizer does not have as "
            "single tokens: the template belongs to another model family. Pick this model's template "
            "(`ftkit template list`), or set model.add_template_tokens: true to teach the model the new markers."
        )
    tokenizer.add_tokens(missing, special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(missing)
    log.info("added %d template tokens to the tokenizer: %s (ids %s)", len(missing), ", ".join(missing), ids)
    return ids


def resize_embeddings(model: Any, tokenizer: Any, new_ids: list[int] | None = None) -> bool:
    """Grow the embedding (and output) matrices to the tokenizer's size when tokens were added to it: now
    (`new_ids`, from prepare_template_tokens; none added, nothing to do) or by the training that saved the
    tokenizer (`new_ids` None: a base loaded beside its trained tokenizer). New rows start at the mean.
    Whether it grew them."""
    before = model.get_input_embeddings().weight.shape[0]
    if (new_ids is not None and not new_ids) or len(tokenizer) <= before:
        return False
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    log.info(
        "resized the embeddings from %d to %d rows for the added template tokens", before, len(tokenizer)
    )
    return True


def embedding_module_names(model: Any) -> list[str]:
    """Names of the input embedding and (when not tied to it) the output projection."""
    wanted = [model.get_input_embeddings()]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not wanted[0].weight:
        wanted.append(output)
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(module)].rsplit(".", 1)[-1] for module in wanted if id(module) in names]


def stop_token_ids(tokenizer: Any, template: ChatTemplate | None) -> list[int]:
    """Ids that end generation: the template's stop markers that are single tokens, then eos."""
    ids: list[int] = []
    for stop in template.stop_strings(token_variables(tokenizer)) if template else []:
        encoded = tokenizer.encode(stop, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def attach_chat_template(tokenizer: Any, template: ChatTemplate) -> None:
    """Give the tokenizer the jinja equivalent of `template`, so `apply_chat_template` on a saved model
    renders what training rendered (a `tokenizer` template keeps the tokenizer's own)."""
    from ftkit.templates.jinja import to_jinja
    from ftkit.templates.registry import TOKENIZER

    if template.name != TOKENIZER:
        tokenizer.chat_template = to_jinja(template)
