"""End to end through the CLI, as a user runs it: train a tiny model with LoRA, export, generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_DATA, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir) -> Path:
    """One short SFT run shared by the tests of this module; returns the recipe path."""
    work = tmp_path_factory.mktemp("e2e")
    recipe = work / "recipe.yaml"
    recipe.write_text(
        f"""\
stage: sft
model: {{name_or_path: {tiny_model_dir}, template: chatml}}
adapter: {{type: lora, r: 8, alpha: 16, dropout: 0.0, modules_to_save: [lm_head]}}
data: {{dataset_dir: {TEST_DATA}, train: qa, val_size: 4, max_length: 64}}
train:
  output_dir: {work / "run"}
  max_steps: 24
  per_device_train_batch_size: 8
  learning_rate: 1.0e-2
  logging_steps: 4
  eval_steps: 12
  save_steps: 12
"""
    )
    result = run_cli("train", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    return recipe


def test_train_writes_every_output(trained):
    run_dir = trained.parent / "run"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "completed"
    assert run["device"] == "cpu" and run["precision"] == "fp32"
    assert run["attn_implementation"] == "sdpa"
    assert 0 < run["parameters"]["trainable"] < run["parameters"]["total"]
    assert run["data"]["splits"]["train"]["examples"] == 24 and run["data"]["splits"]["eval"]["examples"] == 4
    assert run["global_step"] == 24
    for name in (
        "recipe.yaml",
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "trainer_state.json",
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-24"]
    assert not list(run_dir.glob(".*tmp*"))


def test_training_lowers_the_loss(trained):
    state = json.loads((trained.parent / "run" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    eval_losses = [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]
    assert len(losses) >= 5 and len(eval_losses) == 2
    assert losses[-1] < 0.6 * losses[0]


def test_second_train_into_the_same_output_dir_is_refused(trained):
    result = run_cli("train", str(trained))
    assert result.returncode == 2
    assert "already holds a completed run" in result.stderr
    assert "overwrite_output_dir" in result.stderr


def test_export_merges_into_a_model_with_equal_logits(trained, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = run_cli("export", str(trained))
    assert result.returncode == 0, result.stderr[-3000:]
    merged_dir = trained.parent / "run" / "merged"
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in merged_dir.iterdir()
    }

    ids = torch.tensor([[1, 5, 9, 20, 33, 7]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with_adapter = PeftModel.from_pretrained(base, trained.parent / "run").eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        expected = with_adapter(ids).logits
        got = merged(ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)

    again = run_cli("export", str(trained))
    assert again.returncode == 2 and "--force" in again.stderr


def test_exported_tokenizer_renders_the_trained_template(trained):
    from transformers import AutoTokenizer, GenerationConfig

    from ftkit.templates import get_template

    merged_dir = trained.parent / "run" / "merged"
    if not merged_dir.exists():
        assert run_cli("export", str(trained)).returncode == 0
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    expected = get_template("chatml").render_text(messages, add_generation_prompt=True)
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == expected
    stops = GenerationConfig.from_pretrained(merged_dir).eos_token_id
    assert tokenizer.convert_ids_to_tokens(stops) == ["<|im_end|>"]


def test_generate_prints_answers(trained, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"prompt": "What do bees make?"}\n{"messages": [{"role": "user", "content": "Add the numbers."}]}\n'
    )
    out = tmp_path / "answers.jsonl"
    result = run_cli(
        "generate", str(trained), "--input", str(prompts), "--output", str(out), "--max-new-tokens", "8"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in rows] == ["What do bees make?", "Add the numbers."]
    assert all(isinstance(r["response"], str) for r in rows)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_template_tokens_added_to_a_base_tokenizer(tmp_path, tied):
    """ChatML taught to a model whose tokenizer lacks its markers: tokens added, rows trained, merged
    shard by shard into a model whose logits equal base + adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftkit.testing import GPT2, save_tiny_model, tiny_llama_config, train_tokenizer
    from tests.conftest import qa_texts

    tokenizer = train_tokenizer(qa_texts(), GPT2, vocab_size=300)
    config = tiny_llama_config(tokenizer)
    config.tie_word_embeddings = tied
    base = save_tiny_model(tmp_path / "base", tokenizer, config)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {base}, template: chatml, add_template_tokens: true}}\n"
        f"adapter: {{r: 4, alpha: 8}}\n"
        f"data: {{dataset_dir: {TEST_DATA}, train: qa, max_length: 64}}\n"
        f"train: {{output_dir: {tmp_path / 'run'}, max_steps: 3, per_device_train_batch_size: 4}}\n"
    )
    result = run_cli("train", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "added 2 template tokens" in result.stderr
    assert run_cli("export", str(recipe)).returncode == 0
    merged = tmp_path / "run" / "merged"
    assert (
        AutoModelForCausalLM.from_pretrained(merged).get_input_embeddings().weight.shape[0]
        == len(tokenizer) + 2
    )
    exported = AutoTokenizer.from_pretrained(merged)
    assert exported.convert_tokens_to_ids("<|im_end|>") == len(tokenizer) + 1
    rendered = exported.apply_chat_template(
        [{"role": "user", "content": "Q"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert json.loads((merged / "export.json").read_text())["method"] == "streaming"
    unmerged = AutoModelForCausalLM.from_pretrained(base)
    unmerged.resize_token_embeddings(len(exported))
    unmerged = PeftModel.from_pretrained(unmerged, tmp_path / "run").eval()
    ids = torch.tensor([[len(tokenizer), 5, 17, len(tokenizer) + 1, 9]])
    with torch.no_grad():
        expected = unmerged(input_ids=ids).logits
        actual = AutoModelForCausalLM.from_pretrained(merged).eval()(input_ids=ids).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_quickstart_recipe_runs_from_scratch(tmp_path):
    """The shipped quickstart (random init + LoRA), shortened: trains, keeps its base, exports."""
    out = tmp_path / "quick"
    overrides = [f"train.output_dir={out}", "train.max_steps=6", "train.logging_steps=2"]
    result = run_cli("train", "examples/quickstart.yaml", *overrides, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "base_model" / "model.safetensors").is_file()
    assert json.loads((out / "run.json").read_text())["base_model"] == "base_model"
    result = run_cli("export", "examples/quickstart.yaml", *overrides, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "merged" / "model.safetensors").is_file()
