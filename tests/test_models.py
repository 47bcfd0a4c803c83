"""Model side in process: adapters (LoRA, DoRA, rsLoRA, continuing an adapter, freeze), rewards, the
compact LM head."""

from __future__ import annotations

import copy

import pytest
import torch

from ftkit.answer_scores import final_number
from ftkit.config.sections.adapter import FreezeAdapter, FullAdapter, LoraAdapter
from ftkit.errors import UserError
from ftkit.models.adapters import apply_adapter, count_parameters, decoder_layers
from ftkit.models.fused_norm import PLAIN_RMS_NORMS, use_fused_rms_norm
from ftkit.stages.rewards import REWARDS, resolve_reward


@pytest.fixture
def tiny_model(chatml_tokenizer):
    from transformers import AutoModelForCausalLM

    from ftkit.testing import tiny_llama_config

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_llama_config(chatml_tokenizer, layers=3))


def test_lora_targets_every_linear_layer_but_the_head(tiny_model):
    model = apply_adapter(tiny_model, LoraAdapter(r=4))
    adapted = {name.split(".")[-4] for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    counts = count_parameters(model)
    assert 0 < counts.trainable < counts.total


def test_dora_and_rslora_are_configured(tiny_model):
    model = apply_adapter(tiny_model, LoraAdapter(r=4, alpha=8, use_dora=True, use_rslora=True))
    config = model.peft_config["default"]
    assert config.use_dora and config.use_rslora
    assert any("lora_magnitude_vector" in name for name, _ in model.named_parameters())
    ids = torch.tensor([[1, 2, 3, 4]])
    model(input_ids=ids, labels=ids).loss.backward()  # trains


def test_continuing_an_existing_adapter(tiny_model, tmp_path, chatml_tokenizer):
    from transformers import AutoModelForCausalLM

    from ftkit.testing import tiny_llama_config

    first = apply_adapter(tiny_model, LoraAdapter(r=4))
    with torch.no_grad():
        for name, parameter in first.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.01)
    first.save_pretrained(tmp_path / "adapter")
    torch.manual_seed(0)
    fresh_base = AutoModelForCausalLM.from_config(tiny_llama_config(chatml_tokenizer, layers=3))
    second = apply_adapter(fresh_base, LoraAdapter(r=4, init_from=str(tmp_path / "adapter")))
    b_values = [p for n, p in second.named_parameters() if "lora_B" in n]
    assert b_values and all(torch.allclose(p, torch.full_like(p, 0.01)) for p in b_values)
    assert all(p.requires_grad for p in b_values)
    with pytest.raises(UserError, match=r"cannot continue from adapter\.init_from"):
        apply_adapter(fresh_base, LoraAdapter(init_from=str(tmp_path / "missing")))


def test_freeze_trains_the_top_layers_and_named_modules(tiny_model):
    layers = decoder_layers(tiny_model)
    model = apply_adapter(
        tiny_model, FreezeAdapter(type="freeze", trainable_layers=1, trainable_modules=["lm_head"])
    )
    assert all(p.requires_grad for p in layers[-1].parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert model.lm_head.weight.requires_grad and not model.model.embed_tokens.weight.requires_grad
    with pytest.raises(UserError, match="no module named 'nothing'"):
        apply_adapter(tiny_model, FreezeAdapter(type="freeze", trainable_modules=["nothing"]))
    with pytest.raises(UserError, match="the model has 3 layers"):
        apply_adapter(tiny_model, FreezeAdapter(type="freeze", trainable_layers=9))


def test_full_trains_everything(tiny_model):
    tiny_model.requires_grad_(False)
    counts = count_parameters(apply_adapter(tiny_model, FullAdapter(type="full")))
    assert counts.trainable == counts.total


def test_compact_lm_head_scores_only_trained_positions(tiny_model, monkeypatch):
    """On a CPU too, TRL's fused head projects only the positions whose label is trained."""
    from trl.trainer import utils as trl_utils

    from ftkit.stages.fused_head import DenseLogProbs, use_compact_lm_head

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # both restored after the test
    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", trl_utils._ChunkedLogProbFunction)
    rows = []
    original = DenseLogProbs.apply

    def spy(hidden, *args):
        rows.append(hidden.shape[0])
        return original(hidden, *args)

    monkeypatch.setattr(DenseLogProbs, "apply", spy)
    trl_utils.add_fused_lm_head(tiny_model)
    use_compact_lm_head()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    labels = torch.tensor([[-100, -100, -100, -100, -100, 10, 11, 12]])
    out = tiny_model(input_ids=ids, labels=labels, fused_lm_head=True)
    assert rows == [3]  # three trained next-token positions, not all seven
    reference = torch.nn.functional.cross_entropy(tiny_model(input_ids=ids).logits[0, 4:7], labels[0, 5:])
    torch.testing.assert_close(out.loss, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("bias", "scale", "temperature", "losses"),
    [(False, 1.0, 1.0, (0, 1)), (True, 0.5, 0.7, (0, 1)), (False, 1.0, 1.0, (1,))],
)
def test_dense_lm_head_equals_trls_chunked_head(bias, scale, temperature, losses):
    """Every output and every gradient of the dense head is TRL's, on a head large enough to tile."""
    from trl.kernels import ChunkedLogProbFunction
    from trl.kernels.chunked_logprob import OPTIONAL_OUTPUTS

    from ftkit.stages.fused_head import DenseLogProbs

    torch.manual_seed(0)
    hidden = torch.randn(6, 16)  # both heads compute in float32
    weight = torch.randn(40, 16)
    head_bias = torch.randn(40) if bias else None
    targets = (hidden @ weight.t()).argmax(-1)  # three rows whose target is the top token, three whose is not
    targets[3:] = (targets[3:] + torch.tensor([1, 17, 39])) % 40
    weights = torch.randn(6), torch.randn(6)

    def run(function):
        inputs = [t.clone().requires_grad_() for t in (hidden, weight) + ((head_bias,) if bias else ())]
        outs = function.apply(
            inputs[0],
            inputs[1],
            inputs[2] if bias else None,
            targets,
            temperature,
            16,
            None,
            scale,
            OPTIONAL_OUTPUTS,
        )
        sum((outs[i] * weights[i]).sum() for i in losses).backward()  # (1,): a gradient through entropy only
        return [o.detach() for o in outs] + [t.grad for t in inputs]

    ours, trls = run(DenseLogProbs), run(ChunkedLogProbFunction)  # TRL's tiles: 16 of the 40 logits at a time
    for mine, theirs in zip(ours, trls, strict=True):
        torch.testing.assert_close(mine, theirs)
    assert ours[4].dtype == torch.bool and ours[4].any()  # is_top1 is a real test of some rows


# ------------------------------------------------------------------ rewards


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("so 3 + 4 = 7.\n#### 7", 7.0),
        ("The answer is \\boxed{1,250}.", 1250.0),
        ("first 3 then 42", 42.0),
        ("no digits", None),
        ("#### -2.5", -2.5),
        ("\\boxed{\\frac{1}{2}}", 0.5),
        ("so \\boxed{-\\dfrac{3}{4}}", -0.75),
        ("\\boxed{x = 5}. Check: 5*2=10", None),  # a boxed answer that is no number is not the last number
        ("<think>maybe 7</think>\n\nIt is 8.", 8.0),
    ],
)
def test_final_number(text, number):
    assert final_number(text) == number


def test_builtin_rewards_score_with_the_reference():
    references = ["#### 12", "#### 13", "no number", None]
    assert REWARDS["numeric_match"].function(["it is 12", "12?", "12", "12"], references) == [
        1.0,
        0.0,
        None,
        None,
    ]
    assert REWARDS["label_match"].function(
        ["Positive.", "positive", "x"], ["positive", "negative", None]
    ) == [1.0, 0.0, None]
    assert REWARDS["exact_match"].function([" a  b ", "a"], ["a b", "b"]) == [1.0, 0.0]
    thought = "<think>\nThe review sounds happy.\n</think>\n\n"
    assert REWARDS["label_match"].function([thought + "positive"], ["positive"]) == [1.0]
    assert REWARDS["exact_match"].function([thought + "a b"], ["a b"]) == [1.0]
    assert resolve_reward("format_match", {"pattern": r"^<think>.*</think>"})(
        ["<think>x</think> y", "y"]
    ) == [1.0, 0.0]
    assert resolve_reward("length_penalty", {"max_chars": 10})(["", "12345", "x" * 50]) == [-0.0, -0.5, -1.0]


def test_reward_resolution_errors():
    with pytest.raises(UserError, match=r"unknown reward 'exact' \(did you mean exact_match\?\)"):
        resolve_reward("exact", {})
    with pytest.raises(UserError, match="missing"):
        resolve_reward("format_match", {})
    with pytest.raises(UserError, match="not accepted"):
        resolve_reward("exact_match", {"x": 1})
    with pytest.raises(UserError, match="cannot import 'no_such_module'"):
        resolve_reward("no_such_module:score", {})
    assert resolve_reward("tests.user_rewards:brevity", {"scale": 2})(["abcd"], reference=["r"]) == [-1.0]


# ------------------------------------------------------------------ fused RMSNorm


@pytest.mark.parametrize("name", sorted(PLAIN_RMS_NORMS))
def test_every_listed_rms_norm_is_the_plain_formula(name):
    """The one-kernel norm is each listed transformers class's own function, values and gradients."""
    import importlib

    family = name.removesuffix("RMSNorm").lower()
    module_name = {"deepseekv3": "deepseek_v3", "qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe"}.get(
        family, family
    )
    modeling = importlib.import_module(f"transformers.models.{module_name}.modeling_{module_name}")
    torch.manual_seed(0)
    original = getattr(modeling, name)(16, eps=1e-5)
    with torch.no_grad():
        original.weight.mul_(torch.rand(16) + 0.5)
    holder = torch.nn.Sequential(copy.deepcopy(original))
    assert use_fused_rms_norm(holder) == 1 and use_fused_rms_norm(holder) == 0  # swapped once
    x = torch.randn(3, 5, 16, requires_grad=True)
    expected, fused = original(x), holder[0](x)
    torch.testing.assert_close(fused, expected)
    grads = torch.autograd.grad(fused.square().sum(), (x, holder[0].weight))
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, original.weight))
    for mine, theirs in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(mine, theirs)
    half = x.detach().bfloat16()  # not float32: the class's own forward, unchanged
    assert torch.equal(holder[0].bfloat16()(half), original.bfloat16()(half))
