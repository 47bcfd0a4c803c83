"""Encoder-decoder models (T5, BART, Switch Transformers) through the same recipe as decoder-only ones:
detected from the model's config, the prompt encoded and the answer decoded; LoRA training, export to
equal logits, generation and eval; decoder-only options refused at `ftkit check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_DATA, qa_texts


@pytest.fixture(scope="module")
def encoder_decoders(tmp_path_factory) -> dict[str, Path]:
    from ftkit.testing import BART, T5, save_tiny_model, tiny_bart_config, tiny_t5_config, train_tokenizer

    root = tmp_path_factory.mktemp("seq2seq")
    t5 = train_tokenizer(qa_texts(), T5, vocab_size=400)
    bart = train_tokenizer(qa_texts(), BART, vocab_size=400)
    return {
        "t5": save_tiny_model(root / "t5", t5, tiny_t5_config(t5), seed=0),
        "bart": save_tiny_model(root / "bart", bart, tiny_bart_config(bart), seed=0),
        "switch": save_tiny_model(root / "switch", t5, tiny_t5_config(t5, experts=4), seed=0),
    }


def write_recipe(work: Path, model: Path, **extra: object) -> Path:
    recipe = {
        "model": {"name_or_path": str(model)},
        "adapter": {"type": "lora", "r": 8, "alpha": 16},
        "data": {"dataset_dir": str(TEST_DATA), "train": "qa", "eval": "qa", "max_length": 48},
        "train": {
            "output_dir": str(work / "run"),
            "max_steps": 30,
            "learning_rate": 1.0e-2,
            "per_device_train_batch_size": 8,
            "logging_steps": 1,
            "save_strategy": "no",
        },
        "eval": {"metrics": ["loss"]},
        **extra,
    }
    path = work / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def losses(run: Path) -> list[float]:
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


@pytest.mark.parametrize("name", ["t5", "bart", "switch"])
def test_encoder_decoder_trains_with_lora_and_exports_to_equal_logits(
    tmp_path, encoder_decoders, capsys, name
):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ftkit.cli import main

    base = encoder_decoders[name]
    recipe = write_recipe(tmp_path, base)
    assert main(["check", str(recipe), "-q"]) == 0
    assert "supervised fine-tuning of an encoder-decoder model" in capsys.readouterr().out
    assert main(["train", str(recipe)]) == 0
    run = tmp_path / "run"
    trained = losses(run)
    assert sum(trained[-5:]) / 5 < sum(trained[:5]) / 5 - 0.15, trained
    assert json.loads((run / "adapter_config.json").read_text())["task_type"] == "SEQ_2_SEQ_LM"
    assert main(["export", str(recipe)]) == 0

    tokenizer = AutoTokenizer.from_pretrained(run / "merged")
    inputs = tokenizer(["How many legs does a spider have?"], return_tensors="pt")
    decoder = torch.tensor([[tokenizer.pad_token_id if name != "bart" else tokenizer.eos_token_id, 5, 9, 11]])
    merged = AutoModelForSeq2SeqLM.from_pretrained(run / "merged").eval()
    adapted = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(base), run).eval()
    with torch.no_grad():
        expected = adapted(**inputs, decoder_input_ids=decoder).logits
        got = merged(**inputs, decoder_input_ids=decoder).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    if name == "t5":  # generation, eval and chat on the trained run
        prompts = tmp_path / "prompts.jsonl"
        prompts.write_text(json.dumps({"prompt": "How many legs does a spider have?"}) + "\n")
        answers = tmp_path / "answers.jsonl"
        assert main(["generate", str(recipe), "--input", str(prompts), "--output", str(answers)]) == 0
        assert json.loads(answers.read_text())["response"].strip()
        assert main(["eval", str(recipe), "--compare-base"]) == 0
        results = json.loads((run / "eval_results.json").read_text())
        assert results["fine_tuned"]["loss"] < results["base"]["loss"] - 0.5


def test_the_prompt_is_encoded_and_the_answer_decoded(tmp_path, encoder_decoders, capsys):
    from ftkit.cli import main

    recipe = write_recipe(tmp_path, encoder_decoders["t5"])
    assert main(["data", "preview", str(recipe), "-n", "1"]) == 0
    assert (
        "INPUT: What color is the sky on a clear day?\nTARGET: The sky is blue.</s>"
        in capsys.readouterr().out
    )
    # With a template, the encoder reads the template's prompt.
    assert (
        main(["data", "preview", str(recipe), "model.template=alpaca", "data.max_length=512", "-n", "1"]) == 0
    )
    shown = capsys.readouterr().out
    assert (
        "### Instruction:\nWhat color is the sky on a clear day?\n\n### Response:\n\nTARGET: The sky is blue.</s>"
        in shown
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.packing=true", "data.packing works with decoder-only models"),
        ("stage=pt", "stage pt trains decoder-only models. Use stage sft"),
        ("stage=dpo", "stage dpo trains decoder-only models"),
    ],
)
def test_decoder_only_options_are_refused_for_encoder_decoder_models(
    tmp_path, encoder_decoders, capsys, override, message
):
    from ftkit.cli import main

    recipe = write_recipe(tmp_path, encoder_decoders["t5"])
    assert main(["check", str(recipe), override, "-q"]) == 2
    err = capsys.readouterr().err
    assert "is an encoder-decoder model (its config says is_encoder_decoder)" in err and message in err
