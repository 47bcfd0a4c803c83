"""Chat templates: character-exact renders, publisher behaviors, label masks, jinja export round trip."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from ftkit.cli import main
from ftkit.data.tokenize import IGNORE_INDEX, MaskOptions, encode_conversations, token_variables
from ftkit.errors import UserError
from ftkit.models.special_tokens import (
    attach_chat_template,
    prepare_template_tokens,
    resize_embeddings,
    stop_token_ids,
)
from ftkit.templates import Template, TemplateError, Turn, all_templates, get_template, register
from ftkit.templates.jinja import to_jinja
from ftkit.testing import FAMILY_TOKENIZERS, TokenizerSpec, train_tokenizer
from tests.template_renders import CONVERSATIONS, RENDERS, RaisesError

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "chat_templates"
CASES = [(family, key) for family, renders in RENDERS.items() for key in renders]
TEXT = "Hello! What is 2 + 2? 2 + 2 = 4. And times 3? (2 + 2) * 3 = 12. You are a helpful assistant. q a"


@cache
def family_tokenizer(family: str):
    spec: TokenizerSpec = FAMILY_TOKENIZERS[family]
    return train_tokenizer(
        [TEXT] * 20 + ["user assistant system model Paraphrase this"], spec, vocab_size=300
    )


def _case(key: str) -> tuple[list[dict], bool]:
    conversation, flag = key.split("|")
    return CONVERSATIONS[conversation], flag.endswith("true")


# ---------------------------------------------------------------- conformance with the publishers


@pytest.mark.parametrize(("family", "key"), CASES)
def test_render_matches_the_publisher(family, key):
    messages, generation_prompt = _case(key)
    expected = RENDERS[family][key]
    template = get_template(family)
    if isinstance(expected, RaisesError):
        with pytest.raises(TemplateError, match="does not support a system message"):
            template.render_text(messages, add_generation_prompt=generation_prompt, strict=False)
        return
    assert template.render_text(messages, add_generation_prompt=generation_prompt, strict=False) == expected


@pytest.mark.parametrize(("family", "key"), CASES)
def test_cli_render_prints_exactly_the_reference(family, key, tmp_path, capfdbinary):
    messages, generation_prompt = _case(key)
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(messages))
    args = ["template", "render", family, "--messages", str(path)] + [
        "--add-generation-prompt"
    ] * generation_prompt
    expected = RENDERS[family][key]
    code = main(args)
    out, err = capfdbinary.readouterr()
    if isinstance(expected, RaisesError):
        assert code == 2 and out == b"" and b"does not support a system message" in err
    else:
        assert code == 0 and out.decode("utf-8") == expected


@pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="the shared publisher fixtures are not present")
@pytest.mark.parametrize("family", sorted(RENDERS))
def test_against_the_publisher_jinja_on_more_conversations(family):
    """Runs only beside the shared fixtures: the publisher's own jinja, rendered by transformers."""
    from transformers.utils.chat_template_utils import render_jinja_template

    published = json.loads((SHARED_FIXTURES / f"{family}.json").read_text())
    tokens = {k: published.get(k) or "" for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    conversations = [
        [{"role": "user", "content": "  spaced out \n"}, {"role": "assistant", "content": "\n fine  "}],
        [
            {"role": "system", "content": ""},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
        ],
        [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
        ],
        [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "<think>\nold\n</think>\n\na1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "<think>\nnew\n</think>\n\na2"},
        ],
    ]
    template = get_template(family)
    for messages in conversations:
        if family == "deepseek_r1_distill_qwen" and "<think>" in messages[-1]["content"]:
            continue  # ftkit deliberately keeps the final answer's reasoning (documented)
        for generation_prompt in (False, True):
            try:
                expected = render_jinja_template(
                    [messages],
                    chat_template=published["chat_template"],
                    add_generation_prompt=generation_prompt,
                    date_string="26 Jul 2024",
                    **tokens,
                )[0][0]
            except Exception:
                with pytest.raises(TemplateError):
                    template.render_text(messages, add_generation_prompt=generation_prompt, strict=False)
                continue
            got = template.render_text(messages, add_generation_prompt=generation_prompt, strict=False)
            assert got == expected, (messages, generation_prompt)


def test_every_built_in_family_is_covered():
    covered = set(RENDERS) | {"alpaca", "plain"}
    assert {t.name for t in all_templates()} == covered


# ---------------------------------------------------------------- publisher behaviors


def test_llama3_1_date_header_and_variable():
    template = get_template("llama3_1")
    short = CONVERSATIONS["short"]
    assert "Today Date: 26 Jul 2024\n\n<|eot_id|>" in template.render_text(short)
    assert "Today Date: 01 Jan 2025\n\n" in template.render_text(
        short, variables={"date_string": "01 Jan 2025"}
    )
    with pytest.raises(TemplateError, match="has no variable 'enable_thinking'"):
        template.render_text(short, variables={"enable_thinking": "false"})


def test_qwen3_thinking_switch_and_dropped_history():
    template = get_template("qwen3")
    messages = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "<think>\nold\n</think>\n\na1"},
        {"role": "user", "content": "q2"},
    ]
    assert template.render_text(messages, add_generation_prompt=True) == (
        "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n"
        "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n"
    )
    off = template.render_text(messages, add_generation_prompt=True, variables={"enable_thinking": "false"})
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_mistral_system_prompt_is_not_silently_dropped_in_training():
    template = get_template("mistral_v0_3")
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert template.render_text(prompt, add_generation_prompt=True) == "<s>[INST] Be brief.\n\nHi[/INST]"
    finished = [*prompt, {"role": "assistant", "content": "Hello"}]
    assert template.render_text(finished, strict=False) == "<s>[INST] Hi[/INST] Hello</s>"  # the publisher's
    with pytest.raises(TemplateError, match="drops it from a conversation that ends with an answer"):
        template.render(finished)


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([{"role": "assistant", "content": "a"}], "role assistant cannot come first"),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "role user cannot come after user",
        ),
        ([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}], "unknown role 'robot'"),
        ([{"role": "user", "content": 3}], "content must be text"),
    ],
)
def test_malformed_conversations_are_clear_errors(messages, problem):
    with pytest.raises(TemplateError, match=problem):
        get_template("chatml").render(messages)


def test_registry_rejects_duplicates_and_suggests_names():
    with pytest.raises(ValueError, match="registered twice"):
        register(Template(name="chatml", description="", user=Turn(""), assistant=Turn("")))
    with pytest.raises(UserError, match=r"unknown chat template 'lama3' \(did you mean llama3\?\)"):
        get_template("lama3")
    assert get_template("llama3.2").name == "llama3_2"


def test_template_list_names_every_template(capsys):
    assert main(["template", "list"]) == 0
    out = capsys.readouterr().out
    for template in all_templates():
        assert template.name in out
    assert "tokenizer" in out and "date_string=26 Jul 2024" in out


# ---------------------------------------------------------------- label masks


def trained(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX])


def encode(family, messages, system=None, **options):
    tokenizer = family_tokenizer(family)
    example = {"system": system, "messages": messages}
    [encoded] = encode_conversations(
        tokenizer, get_template(family), [example], MaskOptions(**{"max_length": 512, **options})
    )
    return tokenizer, encoded


SHORT = CONVERSATIONS["short"]
MULTI = CONVERSATIONS["full"][1:]


@pytest.mark.parametrize(
    ("family", "single", "multi"),
    [
        ("chatml", "2 + 2 = 4.<|im_end|>", "2 + 2 = 4.<|im_end|>(2 + 2) * 3 = 12.<|im_end|>"),
        ("llama3_2", "2 + 2 = 4.<|eot_id|>", "2 + 2 = 4.<|eot_id|>(2 + 2) * 3 = 12.<|eot_id|>"),
        ("gemma3", "2 + 2 = 4.<end_of_turn>", "2 + 2 = 4.<end_of_turn>(2 + 2) * 3 = 12.<end_of_turn>"),
        # The space after [/INST] merges with the first word: the boundary token is trained.
        ("mistral_v0_3", " 2 + 2 = 4.</s>", " 2 + 2 = 4.</s> (2 + 2) * 3 = 12.</s>"),
        ("phi3", "2 + 2 = 4.<|end|>", "2 + 2 = 4.<|end|>(2 + 2) * 3 = 12.<|end|>"),
        (
            "qwen3",
            "<think>\n\n</think>\n\n2 + 2 = 4.<|im_end|>",
            "2 + 2 = 4.<|im_end|><think>\n\n</think>\n\n(2 + 2) * 3 = 12.<|im_end|>",
        ),
    ],
)
def test_masks_train_answers_and_their_end_token(family, single, multi):
    tokenizer, encoded = encode(family, SHORT)
    assert trained(tokenizer, encoded) == single
    tokenizer, encoded = encode(family, MULTI)
    assert trained(tokenizer, encoded) == multi
    # Everything else is masked: the rendered text is the whole sequence, in one tokenization.
    text = get_template(family).render_text(MULTI, variables=token_variables(tokenizer))
    assert encoded.input_ids == tokenizer.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("family", ["chatml", "llama3_2", "gemma3"])
def test_exact_labels_with_system_history_and_prompt_options(family):
    tokenizer, every = encode(family, MULTI, system="Be exact.")
    _, last = encode(family, MULTI, system="Be exact.", mask_history=True)
    _, everything = encode(family, MULTI, system="Be exact.", train_on_prompt=True)
    ids = every.input_ids
    assert last.input_ids == ids and everything.input_ids == ids
    assert everything.labels == ids
    # mask_history keeps exactly the last answer's labels and masks the first one.
    final = [i for i, label in enumerate(every.labels) if label != IGNORE_INDEX]
    kept = [i for i, label in enumerate(last.labels) if label != IGNORE_INDEX]
    assert kept == final[len(final) - len(kept) :] and 0 < len(kept) < len(final)
    assert tokenizer.decode([ids[i] for i in kept]).startswith("(2 + 2) * 3 = 12.")
    assert "Be exact." in tokenizer.decode(ids) and "Be exact." not in trained(tokenizer, every)


def test_gemma_system_is_trained_nowhere_but_rendered_in_the_first_user_turn():
    tokenizer, encoded = encode("gemma3", SHORT, system="Sys")
    assert tokenizer.decode(encoded.input_ids).startswith("<bos><start_of_turn>user\nSys\n\nHello!")
    assert trained(tokenizer, encoded) == "2 + 2 = 4.<end_of_turn>"


def test_deepseek_final_reasoning_is_trained_after_the_prompt_opening():
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>\nlet me see\n</think>\n\nA"},
    ]
    tokenizer, encoded = encode("deepseek_r1_distill_qwen", messages)
    assert tokenizer.decode(encoded.input_ids).endswith(
        "<｜Assistant｜><think>\nlet me see\n</think>\n\nA<｜end▁of▁sentence｜>"
    )
    assert trained(tokenizer, encoded) == "let me see\n</think>\n\nA<｜end▁of▁sentence｜>"


def test_qwen3_thinking_off_moves_the_empty_block_into_the_prompt():
    tokenizer = family_tokenizer("qwen3")
    [encoded] = encode_conversations(
        tokenizer,
        get_template("qwen3"),
        [{"messages": SHORT}],
        MaskOptions(512),
        {"enable_thinking": "false"},
    )
    assert trained(tokenizer, encoded) == "2 + 2 = 4.<|im_end|>"


def test_truncation_is_reported_and_keeps_the_start():
    _, full = encode("llama3_2", MULTI)
    limit = len(full.input_ids) - 3
    _, cut = encode("llama3_2", MULTI, max_length=limit)
    assert cut.truncated and cut.input_ids == full.input_ids[:limit] and cut.labels == full.labels[:limit]


def test_tokenizer_template_derives_the_same_masks_as_the_built_in():
    tokenizer = family_tokenizer("chatml")
    attach_chat_template(tokenizer, get_template("chatml"))
    jinja_template = get_template("tokenizer", tokenizer)
    options = MaskOptions(512)
    for messages in (SHORT, MULTI, CONVERSATIONS["full"]):
        [built_in] = encode_conversations(
            tokenizer, get_template("chatml"), [{"messages": messages}], options
        )
        [derived] = encode_conversations(tokenizer, jinja_template, [{"messages": messages}], options)
        assert derived.input_ids == built_in.input_ids and derived.labels == built_in.labels
    assert jinja_template.stop_strings() == ["<|im_end|>"]


def test_tokenizer_template_trains_the_end_marker_after_trailing_whitespace():
    tokenizer = family_tokenizer("chatml")
    tokenizer.chat_template = (  # ChatML as Qwen2.5 publishes it: content rendered as given
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    segments = get_template("tokenizer", tokenizer).render(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo\n"}]
    )
    assert [s.text for s in segments if s.completion] == ["yo\n<|im_end|>"]


# ---------------------------------------------------------------- tokens and export


def test_template_of_another_family_is_caught():
    with pytest.raises(UserError, match="belongs to another model family"):
        prepare_template_tokens(get_template("llama3"), family_tokenizer("chatml"), add=False)


def test_adding_template_tokens_resizes_and_trains_their_rows():
    from ftkit.config.sections.adapter import LoraAdapter
    from ftkit.models.adapters import apply_adapter
    from ftkit.testing import GPT2, tiny_llama_config

    tokenizer = train_tokenizer([TEXT] * 5, GPT2, vocab_size=280)
    before = len(tokenizer)
    added = prepare_template_tokens(get_template("chatml"), tokenizer, add=True)
    assert len(added) == 2 and len(tokenizer) == before + 2
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(tiny_llama_config(tokenizer))  # sized for the grown tokenizer
    model.resize_token_embeddings(before)  # as a checkpoint saved before the tokens existed
    resize_embeddings(model, tokenizer, added)
    assert model.get_input_embeddings().weight.shape[0] == before + 2
    wrapped = apply_adapter(model, LoraAdapter(r=2), added)
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad and "modules_to_save" in n}
    assert any("embed_tokens" in n for n in trainable) and any("lm_head" in n for n in trainable)


TOOL_RESULT = [
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": "Checking."},
    {"role": "tool", "content": '{"t": 20}'},
    {"role": "assistant", "content": "It is 20."},
]


@pytest.mark.parametrize(
    ("name", "tool_turn"),
    [
        ("llama3", '<|start_header_id|>tool<|end_header_id|>\n\n{"t": 20}<|eot_id|>'),
        # Llama 3.1's template JSON-encodes a tool result given as text.
        ("llama3_1", '<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"t\\": 20}"<|eot_id|>'),
        ("smollm2", '<|im_start|>tool\n{"t": 20}<|im_end|>\n'),
        ("chatml", '<|im_start|>tool\n{"t": 20}<|im_end|>\n'),
    ],
)
def test_tool_results_render_as_the_publisher_does(name, tool_turn):
    rendered = get_template(name).render_text(TOOL_RESULT)
    assert tool_turn in rendered


@pytest.mark.parametrize("name", sorted(t.name for t in all_templates()))
def test_exported_tokenizer_renders_like_ftkit(name, tmp_path):
    """apply_chat_template on a saved tokenizer == ftkit's rendering, for every built-in template."""
    from transformers import AutoTokenizer

    tokenizer = family_tokenizer(name)
    attach_chat_template(tokenizer, get_template(name))
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    template = get_template(name)
    conversations = [SHORT, MULTI, [{"role": "user", "content": " padded "}]]
    if template.tool is not None:
        conversations.append(TOOL_RESULT)
    if template.system_mode not in ("unsupported", "last_user"):
        conversations.append(CONVERSATIONS["full"])
    variable_sets = [{}]
    if "date_string" in template.variables:
        variable_sets.append({"date_string": "01 Jan 2025"})
    if "enable_thinking" in template.variables:
        variable_sets.append({"enable_thinking": False})
    for messages in conversations:
        for variables in variable_sets:
            for generation_prompt in (False, True):
                if messages[-1]["role"] == "user" and not generation_prompt:
                    continue
                ours = template.render_text(
                    messages,
                    add_generation_prompt=generation_prompt,
                    variables={
                        **token_variables(reloaded),
                        **{k: str(v).lower() if isinstance(v, bool) else v for k, v in variables.items()},
                    },
                    strict=False,
                )
                theirs = reloaded.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=generation_prompt, **variables
                )
                assert theirs == ours, (messages, variables, generation_prompt)


def test_stop_tokens_end_at_the_turn_marker():
    tokenizer = family_tokenizer("gemma3")
    ids = stop_token_ids(tokenizer, get_template("gemma3"))
    assert tokenizer.convert_ids_to_tokens(ids) == ["<end_of_turn>", "<eos>"]


def test_to_jinja_is_plain_text():
    assert "{%" in to_jinja(get_template("qwen3")) and "\n" not in to_jinja(get_template("chatml"))
