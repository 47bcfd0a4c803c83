"""Properties of the data path over random conversations, templates and lengths (hypothesis, bounded):

- trained tokens are the assistant turns' tokens (content and end-of-turn marker), never a token that
  lies wholly in prompt text;
- truncation never yields an example with nothing to train unless that example is reported (counted);
- packing never lets one example attend to another (logits of each packed example equal its own).
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ftkit.data.processors import ProcessOptions, process_sft
from ftkit.data.tokenize import IGNORE_INDEX, MaskOptions, encode_conversations, token_variables
from ftkit.templates import TemplateError, all_templates, get_template
from ftkit.testing import FAMILY_TOKENIZERS, train_tokenizer

BOUNDED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORPUS = "Hello! What is 2 + 2? It is 4. You are a helpful assistant. user assistant system model café 東京"
TEMPLATES = sorted(t.name for t in all_templates())

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(" \n\t"),
    min_size=1,
    max_size=24,
).filter(lambda text: text.strip() == text and bool(text))


@cache
def tokenizer_for(template: str):
    return train_tokenizer([CORPUS] * 10, FAMILY_TOKENIZERS[template], vocab_size=320)


@st.composite
def conversations(draw):
    turns = draw(st.integers(1, 3))
    messages = []
    for _ in range(turns):
        messages += [{"role": "user", "content": draw(words)}, {"role": "assistant", "content": draw(words)}]
    system = draw(st.none() | words)
    return {"system": system, "messages": messages, "tools": None}


def _render(template, tokenizer, example):
    try:
        return template.render(example["messages"], example["system"], variables=token_variables(tokenizer))
    except TemplateError:
        assume(False)  # a conversation this template refuses (e.g. a system prompt it cannot show)


@pytest.mark.parametrize("name", TEMPLATES)
@BOUNDED
@given(example=conversations(), mask_history=st.booleans())
def test_trained_tokens_are_exactly_the_answers(name, example, mask_history):
    template, tokenizer = get_template(name), tokenizer_for(name)
    segments = _render(template, tokenizer, example)
    text = "".join(s.text for s in segments)
    last_turn = max(s.turn for s in segments if s.completion)
    answers, position = [], 0
    for segment in segments:
        if segment.completion and (not mask_history or segment.turn == last_turn):
            answers.append((position, position + len(segment.text)))
        position += len(segment.text)
    [encoded] = encode_conversations(
        tokenizer, template, [example], MaskOptions(10**6, mask_history=mask_history)
    )
    assert encoded.problem is None and not encoded.truncated
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert len(offsets) == len(encoded.labels)
    for (start, end), label, token in zip(offsets, encoded.labels, encoded.input_ids, strict=True):
        overlaps = any(start < stop and max(end, start + 1) > begin for begin, stop in answers)
        inside = any(begin <= start and end <= stop for begin, stop in answers)
        if inside:
            assert label == token  # every token of an answer (and its end marker) is trained
        if label != IGNORE_INDEX:
            assert overlaps  # a trained token is never wholly prompt text
    covered = {
        char
        for (start, end), label in zip(offsets, encoded.labels, strict=True)
        if label != IGNORE_INDEX
        for char in range(start, max(end, start + 1))
    }
    for begin, stop in answers:  # answer content plus end-of-turn marker, whole
        assert set(range(begin, stop)) <= covered, text[begin:stop]


@BOUNDED
@given(example=conversations(), max_length=st.integers(4, 80), name=st.sampled_from(TEMPLATES))
def test_truncation_never_hides_an_untrainable_example(example, max_length, name):
    template, tokenizer = get_template(name), tokenizer_for(name)
    full = _render(template, tokenizer, example)
    length = len(tokenizer("".join(s.text for s in full), add_special_tokens=False)["input_ids"])
    batch = {key: [example.get(key)] for key in ("system", "messages", "tools")}
    out = process_sft(batch, tokenizer, template, ProcessOptions(MaskOptions(max_length)))
    problem, ids, labels = out["_problem"][0], out["input_ids"][0], out["labels"][0]
    if problem is not None:  # reported: the pipeline counts it (or stops with its row)
        assert ids == [] and labels == []
        return
    assert len(ids) == min(length, max_length) and out["_truncated"][0] == (length > max_length)
    assert any(label != IGNORE_INDEX for label in labels)


@pytest.fixture(scope="module", params=["sdpa", "ftkit_segments"])
def packing_model(request, chatml_tokenizer):
    """The same weights with transformers' sdpa (a block-diagonal mask over the row) and with ftkit's
    attention per example (models/attention.py), which packing and padding-free runs use on a CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftkit.models.attention import register_segmented_attention
    from ftkit.testing import tiny_llama_config

    register_segmented_attention()
    torch.manual_seed(0)
    config = tiny_llama_config(chatml_tokenizer)
    return AutoModelForCausalLM.from_config(config, attn_implementation=request.param).eval()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lengths=st.lists(st.integers(1, 24), min_size=2, max_size=6),
    seq_length=st.integers(24, 64),
    seed=st.integers(0, 1000),
)
def test_packed_examples_never_attend_to_each_other(packing_model, lengths, seq_length, seed):
    import torch
    from datasets import Dataset
    from trl import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    generator = torch.Generator().manual_seed(seed)
    vocab = packing_model.config.vocab_size
    examples = [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in lengths]
    packed = pack_dataset(Dataset.from_dict({"input_ids": examples}), seq_length, strategy="bfd")
    collate = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    seen = 0
    for row in packed:
        batch = collate([{"input_ids": row["input_ids"], "seq_lengths": row["seq_lengths"]}])
        with torch.no_grad():
            inputs = {key: value for key, value in batch.items() if key != "labels"}
            logits = packing_model(**inputs, use_cache=False).logits[0]
        start = 0
        for size in row["seq_lengths"]:
            ids = batch["input_ids"][0, start : start + size]
            with torch.no_grad():
                alone = packing_model(input_ids=ids[None], use_cache=False).logits[0]
            torch.testing.assert_close(logits[start : start + size], alone, atol=1e-5, rtol=1e-5)
            start += size
            seen += 1
    assert seen == len(examples)
