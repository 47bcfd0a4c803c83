"""Export: the streaming merge equals base + adapter (LoRA, rsLoRA, DoRA, QLoRA-trained), on a sharded
base, in little memory; fallback for pickle bases; metrics; generate, chat and eval through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ftkit.answer_scores import (
    accuracy,
    exact_match,
    numeric_accuracy,
    predicted_label,
    rouge,
    rouge_l,
    rouge_n,
)
from ftkit.errors import UserError
from ftkit.export import ExportRequest, export
from ftkit.merge import parse_size, read_adapter
from tests.conftest import ROOT, run_cli

TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}
"""Merged and unmerged float32 logits agree to float32 rounding: |difference| <= 1e-5 + 1e-4 * |value|."""


@pytest.fixture(scope="module")
def sharded_base(tmp_path_factory, chatml_tokenizer) -> Path:
    """A tiny Llama saved in several safetensors shards."""
    from transformers import AutoModelForCausalLM

    from ftkit.testing import tiny_llama_config

    directory = tmp_path_factory.mktemp("sharded-base")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_llama_config(chatml_tokenizer, hidden_size=64, layers=3))
    model.save_pretrained(directory, max_shard_size="60KB")
    chatml_tokenizer.save_pretrained(directory)
    assert len(list(directory.glob("model-*.safetensors"))) >= 4
    return directory


def make_adapter(base: Path, out: Path, **lora) -> Path:
    """A LoRA adapter with random (non-zero) B matrices, saved as peft saves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base)
    settings = {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "init_lora_weights": False, **lora}
    config = LoraConfig(**settings)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_magnitude_vector" in name:
                # At init DoRA's magnitude equals the weight norm, which would make it invisible to the test.
                parameter.mul_(1 + 0.2 * torch.rand_like(parameter))
    peft_model.save_pretrained(out)
    return out


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def assert_merge_matches(base: Path, adapter: Path, out: Path) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    export(ExportRequest(str(base), str(adapter), str(out), shard_size="100KB"))
    record = json.loads((out / "export.json").read_text())
    assert record["method"] == "streaming" and record["output_shards"] > 1
    ids = torch.tensor([[3, 17, 42, 8, 99, 5, 61]])
    expected = logits_of(
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval(), ids
    )
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(logits_of(merged, ids), expected, **TOLERANCE)
    return record


@pytest.mark.parametrize(
    "lora",
    [{}, {"use_rslora": True}, {"use_dora": True}, {"modules_to_save": ["lm_head"]}],
    ids=["lora", "rslora", "dora", "modules_to_save"],
)
def test_streaming_merge_equals_base_plus_adapter(tmp_path, sharded_base, lora):
    adapter = make_adapter(sharded_base, tmp_path / "adapter", **lora)
    record = assert_merge_matches(sharded_base, adapter, tmp_path / "merged")
    assert record["merged_modules"] == 21  # 7 linear layers x 3 decoder layers
    assert (tmp_path / "merged" / "model.safetensors.index.json").is_file()


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_adapted_embeddings_merge(tmp_path, sharded_base, dora):
    targets = ["embed_tokens", "q_proj", "v_proj"]
    adapter = make_adapter(sharded_base, tmp_path / "adapter", target_modules=targets, use_dora=dora)
    record = assert_merge_matches(sharded_base, adapter, tmp_path / "merged")
    assert record["merged_modules"] == 7  # the embedding and 2 projections x 3 layers


def test_quantized_base_is_refused(tmp_path, sharded_base):
    adapter = make_adapter(sharded_base, tmp_path / "adapter")
    quantized = tmp_path / "bnb-base"
    quantized.mkdir()
    for item in sharded_base.iterdir():
        (quantized / item.name).symlink_to(item)
    (quantized / "config.json").unlink()
    config = json.loads((sharded_base / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_8bit": True}
    (quantized / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"quantized \(bitsandbytes\).*full-precision"):
        export(ExportRequest(str(quantized), str(adapter), str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_export_never_replaces_its_own_inputs(tmp_path, sharded_base):
    adapter = make_adapter(sharded_base, tmp_path / "runs" / "adapter")
    for out in (adapter, tmp_path / "runs", sharded_base):
        with pytest.raises(UserError, match="would delete"):
            export(ExportRequest(str(sharded_base), str(adapter), str(out), force=True))
    assert (adapter / "adapter_config.json").is_file() and (sharded_base / "config.json").is_file()


def test_qlora_trained_adapter_merges_into_the_full_precision_base(tmp_path, sharded_base):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantized = AutoModelForCausalLM.from_pretrained(
        sharded_base,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32),
        device_map={"": "cpu"},
    )
    model = get_peft_model(
        prepare_model_for_kbit_training(quantized, use_gradient_checkpointing=False),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"),
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 300, (2, 12))
    for _ in range(3):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(tmp_path / "qlora")
    assert_merge_matches(sharded_base, tmp_path / "qlora", tmp_path / "merged")


def test_pickle_base_falls_back_to_the_whole_model_and_says_why(tmp_path, chatml_tokenizer, caplog):
    from transformers import AutoModelForCausalLM

    from ftkit.testing import tiny_llama_config

    base = tmp_path / "pickle-base"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_llama_config(chatml_tokenizer))
    model.config.save_pretrained(base)
    torch.save(model.state_dict(), base / "pytorch_model.bin")  # an older checkpoint, pickle only
    chatml_tokenizer.save_pretrained(base)
    adapter = tmp_path / "adapter"
    from peft import LoraConfig, get_peft_model

    get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False),
    ).save_pretrained(adapter)
    with pytest.raises(UserError, match="stored as pickle files, which can run code"):
        export(ExportRequest(str(base), str(adapter), str(tmp_path / "out")))  # pickle needs an opt-in
    assert not (tmp_path / "out").exists()
    with caplog.at_level("WARNING"):
        export(ExportRequest(str(base), str(adapter), str(tmp_path / "out"), allow_pickle=True))
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record["method"] == "whole model" and "pickle" in record["reason"]
    assert "cannot merge shard by shard" in caplog.text


def test_export_refuses_incomplete_or_missing_adapters(tmp_path, sharded_base):
    with pytest.raises(UserError, match="holds no LoRA adapter"):
        export(ExportRequest(str(sharded_base), str(tmp_path), str(tmp_path / "out")))
    with pytest.raises(UserError, match="not a size"):
        export(ExportRequest(str(sharded_base), str(tmp_path), str(tmp_path / "out"), shard_size="5 bananas"))
    assert parse_size("2GiB") == 2 * 2**30 and parse_size("500MB") == 500 * 10**6


def test_adapter_scaling_follows_rank_and_alpha(tmp_path, sharded_base):
    plain = read_adapter(make_adapter(sharded_base, tmp_path / "a", r=4, lora_alpha=8))
    stabilized = read_adapter(make_adapter(sharded_base, tmp_path / "b", r=4, lora_alpha=8, use_rslora=True))
    assert {m.scaling for m in plain.modules.values()} == {2.0}
    assert {m.scaling for m in stabilized.modules.values()} == {4.0}


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="peak memory is measured through Linux /proc"
)
def test_streaming_merge_memory_stays_near_one_shard(tmp_path, chatml_tokenizer):
    """Bases of ~160 MB and ~420 MB in 16 MB shards: the streaming merge's memory does not grow with the
    model (it holds about one tensor at a time), while loading the whole model costs about the model."""
    from ftkit.testing import merge_memory_growth, save_merge_base

    sizes, growth = {}, {}
    for name, layers in (("small", 10), ("large", 30)):
        base = tmp_path / name
        sizes[name] = save_merge_base(base, chatml_tokenizer, layers)
        adapter = make_adapter(base, tmp_path / f"{name}-adapter")
        growth[name] = merge_memory_growth(base, adapter, tmp_path / f"{name}-streamed", "streaming")
    whole = merge_memory_growth(tmp_path / "large", tmp_path / "large-adapter", tmp_path / "whole", "whole")
    assert sizes["large"] > 2.5 * sizes["small"] > 350
    assert growth["large"] < 0.25 * sizes["large"], (growth, sizes)
    assert growth["large"] < growth["small"] + 48, (growth, sizes)  # flat in the model's size
    assert whole > sizes["large"], (whole, sizes)


# ------------------------------------------------------------------ metrics with known answers


def test_exact_match_normalizes_case_punctuation_and_articles():
    assert exact_match(["The Paris.", "Rome", "a cat"], ["paris", "Milan", "cat!"]) == pytest.approx(2 / 3)


def test_accuracy_parses_the_first_label_named():
    labels = ["positive", "negative", "neutral"]
    assert predicted_label("It is negative, not positive.", labels) == "negative"
    assert predicted_label("non-negative", labels) is None
    assert (
        accuracy(
            ["Positive!", "negative", "I think neutral", "??"],
            ["positive", "positive", "neutral", "negative"],
            labels,
        )
        == 0.5
    )


def test_numeric_accuracy():
    assert numeric_accuracy(
        ["so it is 42", "#### 7", "none"], ["#### 42", "x = 8\n#### 8", "#### 1"]
    ) == pytest.approx(1 / 3)


def test_rouge_known_values():
    # 4 of 6 predicted unigrams appear in the 5-word reference: P=4/6, R=4/5 -> F1 = 8/11.
    assert rouge_n("the cat sat on a mat", "the cat is on mat", 1) == pytest.approx(8 / 11)
    # Bigrams: (the cat) is shared of 5 and 4 -> P=1/5, R=1/4 -> F1 = 2/9.
    assert rouge_n("the cat sat on a mat", "the cat is on mat", 2) == pytest.approx(2 / 9)
    # Longest common subsequence: the cat on mat (4) -> same as ROUGE-1 here.
    assert rouge_l("the cat sat on a mat", "the cat is on mat") == pytest.approx(8 / 11)
    assert rouge(["a b"], ["a b"]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge_n("", "a", 1) == 0.0


# ------------------------------------------------------------------ generate, chat, eval through the CLI


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> list[str]:
    """The quickstart recipe, trained briefly into a temporary folder (with eval data held out)."""
    out = tmp_path_factory.mktemp("quick") / "run"
    overrides = [
        f"train.output_dir={out}",
        "train.max_steps=60",
        "data.eval=null",
        "data.val_size=16",
        "eval.metrics=[loss,perplexity,exact_match,accuracy,rouge]",
        "eval.max_new_tokens=16",
    ]
    result = run_cli("train", "examples/quickstart.yaml", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    return overrides


def test_generate_samples_with_temperature(tmp_path, quick):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "What is 6 plus 3?"}\n' * 3)
    out = tmp_path / "answers.jsonl"
    result = run_cli(
        "generate",
        "examples/quickstart.yaml",
        *quick,
        "--input",
        str(prompts),
        "--output",
        str(out),
        "--temperature",
        "1.5",
        "--top-p",
        "0.9",
        "--seed",
        "3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 3


def test_chat_streams_answers_and_resets(quick):
    process = subprocess.run(
        [sys.executable, "-m", "ftkit", "chat", "examples/quickstart.yaml", *quick, "--max-new-tokens", "12"],
        input="What is 6 plus 3?\n/reset\nWhich day comes after Friday?\n/exit\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    out = process.stdout
    assert out.count("model> ") == 2 and "(new conversation)" in out and "/reset" in out.splitlines()[0]
    assert "<|im_end|>" not in out


def test_eval_compares_with_the_base_model(quick):
    result = run_cli("eval", "examples/quickstart.yaml", *quick, "--compare-base")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fine-tuned" in result.stdout and "improvement" in result.stdout
    out = Path(quick[0].split("=", 1)[1])
    results = json.loads((out / "eval_results.json").read_text())
    assert results["examples"] == 16
    for key in ("loss", "perplexity", "exact_match", "accuracy", "rouge1", "rouge2", "rougeL"):
        assert key in results["fine_tuned"] and key in results["base"]
    assert results["fine_tuned"]["loss"] < results["base"]["loss"]
    assert results["fine_tuned"]["perplexity"] == pytest.approx(
        2.718281828 ** results["fine_tuned"]["loss"], rel=1e-6
    )
    assert results["improvement"]["loss"].startswith("+")


def test_eval_without_eval_data_is_a_user_error(quick):
    overrides = [o for o in quick if not o.startswith("data.val_size")]
    result = run_cli("eval", "examples/quickstart.yaml", *overrides)
    assert result.returncode == 2 and "needs eval data" in result.stderr


def test_export_flags_override_the_recipe(tmp_path, quick):
    out = tmp_path / "elsewhere"
    result = run_cli("export", "examples/quickstart.yaml", *quick, "--out", str(out), "--shard-size", "200KB")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list(out.glob("model-*.safetensors"))) > 1
    assert json.loads((out / "export.json").read_text())["method"] == "streaming"


def test_cli_export_with_flags_casts_and_shards(tmp_path, sharded_base):
    from safetensors import safe_open

    adapter = make_adapter(sharded_base, tmp_path / "adapter")
    out = tmp_path / "bf16"
    result = run_cli(
        "export",
        "--base",
        str(sharded_base),
        "--adapter",
        str(adapter),
        "--out",
        str(out),
        "--dtype",
        "bfloat16",
        "--shard-size",
        "80KB",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1
    with safe_open(str(shards[0]), framework="pt") as handle:
        assert all(handle.get_tensor(name).dtype == torch.bfloat16 for name in handle.keys())  # noqa: SIM118
    again = run_cli("export", "--base", str(sharded_base), "--adapter", str(adapter), "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    assert not list(tmp_path.glob(".bf16*"))  # no temporary sibling left behind
