"""Built-in chat templates, one declaration each, rendering exactly what the model publishers ship.

Each family's rendering is checked character for character against the publisher's template
(tests/test_templates.py). BOS and EOS are written as the family's literal tokens, so a template used
with another family's tokenizer fails the special-token check instead of training on the wrong markers.
"""

from __future__ import annotations

from dataclasses import replace

from ftkit.templates.template import Reasoning, Template, Turn


def _chatml(role: str) -> Turn:
    return Turn(f"<|im_start|>{role}\n", "<|im_end|>", "\n")


CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")

CHATML = Template(
    name="chatml",
    description="Generic ChatML (<|im_start|>role ... <|im_end|>): no BOS, no default system prompt.",
    system=_chatml("system"),
    user=_chatml("user"),
    assistant=_chatml("assistant"),
    tool=_chatml("tool"),
    stop=("<|im_end|>",),
    special_tokens=CHATML_TOKENS,
)

QWEN2_5 = Template(
    name="qwen2_5",
    description="Qwen2.5 Instruct: ChatML with Qwen's default system prompt.",
    system=_chatml("system"),
    user=_chatml("user"),
    assistant=_chatml("assistant"),
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    stop=("<|im_end|>", "<|endoftext|>"),
    special_tokens=CHATML_TOKENS,
    aliases=("qwen2.5", "qwen2"),
)

_QWEN3_THINKING = Reasoning(keep="after_last_user", final_empty_block=True, switch="enable_thinking")

QWEN3 = Template(
    name="qwen3",
    description="Qwen3 (current revision): ChatML with <think> blocks; enable_thinking=false puts an "
    "empty block in the prompt; reasoning of answers before the last user message is dropped.",
    system=_chatml("system"),
    user=_chatml("user"),
    assistant=_chatml("assistant"),
    reasoning=_QWEN3_THINKING,
    variables={"enable_thinking": "true"},
    stop=("<|im_end|>", "<|endoftext|>"),
    special_tokens=CHATML_TOKENS,
)

QWEN3_INITIAL = replace(
    QWEN3,
    name="qwen3_initial",
    description="Qwen3 first revision (April 2025, still shipped by Qwen3-*-Base): renders text "
    "conversations like qwen3.",
)

SMOLLM2 = Template(
    name="smollm2",
    description="SmolLM2 Instruct: ChatML with SmolLM's default system prompt.",
    system=_chatml("system"),
    user=_chatml("user"),
    assistant=_chatml("assistant"),
    tool=_chatml("tool"),
    default_system="You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    stop=("<|im_end|>",),
    special_tokens=CHATML_TOKENS,
)


def _llama3(role: str, header_extra: str = "") -> Turn:
    return Turn(f"<|start_header_id|>{role}<|end_header_id|>\n\n{header_extra}", "<|eot_id|>", strip=True)


LLAMA3_TOKENS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
_DATED_SYSTEM = _llama3("system", "Cutting Knowledge Date: December 2023\nToday Date: {date_string}\n\n")

LLAMA3 = Template(
    name="llama3",
    description="Llama 3 Instruct: header tokens per turn, <|eot_id|> ends a turn, content trimmed.",
    prefix="<|begin_of_text|>",
    system=_llama3("system"),
    user=_llama3("user"),
    assistant=_llama3("assistant"),
    tool=_llama3("tool"),
    stop=("<|eot_id|>", "<|end_of_text|>"),
    special_tokens=LLAMA3_TOKENS,
)


def _llama3_dated(name: str, models: str, aliases: tuple[str, ...]) -> Template:
    """Llama 3.1 and 3.2: the same format, a system turn with the knowledge cut-off always first."""
    return Template(
        name=name,
        description=f"{models}: always opens with a system turn carrying the knowledge cut-off and "
        "date_string (default 26 Jul 2024).",
        prefix="<|begin_of_text|>",
        system=_DATED_SYSTEM,
        system_always=True,
        user=_llama3("user"),
        assistant=_llama3("assistant"),
        # The publisher's tool results: an ipython turn, the content JSON-encoded and not trimmed.
        tool=Turn("<|start_header_id|>ipython<|end_header_id|>\n\n", "<|eot_id|>", json_content=True),
        stop=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
        special_tokens=LLAMA3_TOKENS,
        variables={"date_string": "26 Jul 2024"},
        aliases=aliases,
    )


LLAMA3_1 = _llama3_dated("llama3_1", "Llama 3.1 / 3.3 Instruct", ("llama3.1", "llama3_3"))
LLAMA3_2 = _llama3_dated("llama3_2", "Llama 3.2 Instruct", ("llama3.2",))

MISTRAL_V0_3 = Template(
    name="mistral_v0_3",
    description="Mistral 7B Instruct v0.3: [INST] ... [/INST] answer</s>; a system prompt goes into the "
    "last user message of a prompt (the publisher drops it from finished conversations).",
    prefix="<s>",
    system_mode="last_user",
    system_separator="\n\n",
    user=Turn("[INST] ", "[/INST]"),
    assistant=Turn(" ", "</s>", strip=True),
    generation_prompt="",
    stop=("</s>",),
    special_tokens=("<s>", "</s>", "[INST]", "[/INST]"),
    aliases=("mistral",),
)


def _gemma(role: str) -> Turn:
    return Turn(f"<start_of_turn>{role}\n", "<end_of_turn>", "\n", strip=True)


GEMMA_TOKENS = ("<bos>", "<start_of_turn>", "<end_of_turn>")

GEMMA2 = Template(
    name="gemma2",
    description="Gemma / Gemma 2 instruct: user and model turns, no system role (a system message is an error).",
    prefix="<bos>",
    system_mode="unsupported",
    user=_gemma("user"),
    assistant=_gemma("model"),
    stop=("<end_of_turn>", "<eos>"),
    special_tokens=GEMMA_TOKENS,
    aliases=("gemma",),
)

GEMMA3 = Template(
    name="gemma3",
    description="Gemma 3 instruct: like Gemma 2, with the system prompt folded into the first user turn.",
    prefix="<bos>",
    system_mode="first_user",
    system_separator="\n\n",
    user=_gemma("user"),
    assistant=_gemma("model"),
    stop=("<end_of_turn>", "<eos>"),
    special_tokens=GEMMA_TOKENS,
)


def _phi3(role: str) -> Turn:
    return Turn(f"<|{role}|>\n", "<|end|>", "\n")


PHI3_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>")

PHI3 = Template(
    name="phi3",
    description="Phi-3 mini instruct: <|role|> turns ended by <|end|>; a finished conversation ends with EOS.",
    system=_phi3("system"),
    user=_phi3("user"),
    assistant=_phi3("assistant"),
    suffix="<|endoftext|>",
    stop=("<|end|>", "<|endoftext|>"),
    special_tokens=PHI3_TOKENS,
)

PHI3_5 = Template(
    name="phi3_5",
    description="Phi-3.5 mini instruct: Phi-3's format; an empty system prompt renders nothing.",
    system=_phi3("system"),
    skip_empty_system=True,
    user=_phi3("user"),
    assistant=_phi3("assistant"),
    suffix="<|endoftext|>",
    stop=("<|end|>", "<|endoftext|>"),
    special_tokens=PHI3_TOKENS,
    aliases=("phi3.5",),
)


def _phi4(role: str) -> Turn:
    return Turn(f"<|im_start|>{role}<|im_sep|>", "<|im_end|>")


PHI4 = Template(
    name="phi4",
    description="Phi-4: ChatML markers with <|im_sep|> after the role and no newline between turns.",
    system=_phi4("system"),
    user=_phi4("user"),
    assistant=_phi4("assistant"),
    stop=("<|im_end|>",),
    special_tokens=("<|im_start|>", "<|im_sep|>", "<|im_end|>"),
)

DEEPSEEK_R1_DISTILL_QWEN = Template(
    name="deepseek_r1_distill_qwen",
    description="DeepSeek-R1 distills (Qwen and Llama): system text right after BOS, <｜User｜>/<｜Assistant｜>; "
    "the prompt opens <think>; earlier reasoning is dropped, the final answer's is trained.",
    prefix="<｜begin▁of▁sentence｜>",
    system=Turn(""),
    user=Turn("<｜User｜>"),
    assistant=Turn("<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
    reasoning=Reasoning(keep="final", prompt_opens_block=True, lstrip_answer=False),
    stop=("<｜end▁of▁sentence｜>",),
    special_tokens=("<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
    aliases=("deepseek_r1",),
)

ALPACA = Template(
    name="alpaca",
    description="Alpaca instruction format (### Instruction / ### Response) for base models; answers end with EOS.",
    system=Turn("", "", "\n\n"),
    default_system="Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.",
    user=Turn("### Instruction:\n", "", "\n\n"),
    assistant=Turn("### Response:\n", "{eos_token}", "\n\n"),
    stop=("{eos_token}",),
    base_models=("gpt2", "EleutherAI/gpt-j-6b", "any base model"),
)

PLAIN = Template(
    name="plain",
    description="No chat markup: system, prompt and answer on their own lines, the answer ends with EOS "
    "(base models such as GPT-2 or GPT-J that publish no template).",
    system=Turn("", "", "\n"),
    user=Turn("", "", "\n"),
    assistant=Turn("", "{eos_token}", "\n"),
    stop=("{eos_token}",),
    base_models=("gpt2", "EleutherAI/gpt-j-6b", "any base model"),
)

BUILTINS: tuple[Template, ...] = (
    CHATML,
    QWEN2_5,
    QWEN3,
    QWEN3_INITIAL,
    SMOLLM2,
    LLAMA3,
    LLAMA3_1,
    LLAMA3_2,
    MISTRAL_V0_3,
    GEMMA2,
    GEMMA3,
    PHI3,
    PHI3_5,
    PHI4,
    DEEPSEEK_R1_DISTILL_QWEN,
    ALPACA,
    PLAIN,
)
"""The built-in templates, in the order `ftkit template list` shows them (the registry loads them)."""
