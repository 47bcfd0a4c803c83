"""The stages that learn from judgements, end to end through the CLI: kto on unpaired feedback in
LLaMA-Factory's kto_en_demo schema, orpo, simpo and rm on ranked pairs in its dpo_en_demo schema. On
judgements a tiny model can learn in a few dozen steps (a careful answer preferred to a curt one), each
shows its own signal moving the right way; the reward model is exported, scored by `ftkit eval` and used
as a GRPO reward. Beside the shared fixtures, each stage also trains on LLaMA-Factory's own demo files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_cli
from tests.test_stages import assert_run_outputs, logged, train, write_recipe
from tests.test_templates import SHARED_FIXTURES

LORA = {"type": "lora", "r": 8, "alpha": 16, "dropout": 0.0}


LLAMAFACTORY_DATA = SHARED_FIXTURES.parent / "llamafactory_data"


@pytest.fixture(scope="module")
def judged(tmp_path_factory) -> Path:
    """A registry with ranked pairs (dpo_en_demo's schema) and labelled answers (kto_en_demo's schema)."""
    folder = tmp_path_factory.mktemp("judged")
    questions = [f"Tell me about topic number {i}." for i in range(48)]
    careful = "Here is a careful answer about topic {i}, with the details you asked for."
    pairs = [
        {
            "conversations": [{"from": "human", "value": q}],
            "chosen": {"from": "gpt", "value": careful.format(i=i)},
            "rejected": {"from": "gpt", "value": "No."},
        }
        for i, q in enumerate(questions)
    ]
    feedback = [
        {
            "messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": careful.format(i=i) if i % 2 else "No."},
            ],
            "label": bool(i % 2),
        }
        for i, q in enumerate(questions + questions)
    ]
    (folder / "pairs.json").write_text(json.dumps(pairs))
    (folder / "feedback.json").write_text(json.dumps(feedback))
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    registry = {
        "pairs": {
            "file_name": "pairs.json",
            "ranking": True,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
        },
        "feedback": {
            "file_name": "feedback.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "kto_tag": "label"},
            "tags": tags,
        },
    }
    (folder / "dataset_info.json").write_text(json.dumps(registry))
    return folder


def recipe(work: Path, stage: str, dataset: str, dataset_dir: Path, **sections: dict) -> Path:
    values = {
        "stage": stage,
        "model": {
            "name_or_path": str(ROOT / "examples/tiny-chatml"),
            "from_scratch": True,
            "template": "chatml",
        },
        "adapter": LORA,
        "data": {"dataset_dir": str(dataset_dir), "train": dataset, "max_length": 64},
        "train": {
            "output_dir": str(work / "run"),
            "max_steps": 30,
            "per_device_train_batch_size": 8,
            "learning_rate": 5.0e-3,
            "logging_steps": 5,
            "save_strategy": "no",
        },
    }
    for key, value in sections.items():
        values[key] = {**values.get(key, {}), **value}
    return write_recipe(work / f"{stage}.yaml", values)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.parametrize(
    ("stage", "dataset", "settings"),
    [
        ("kto", "feedback", {"kto": {"beta": 0.5}}),
        ("orpo", "pairs", {"orpo": {"beta": 0.5}}),
        ("simpo", "pairs", {"simpo": {"beta": 2.0, "gamma": 0.5}}),
    ],
)
def test_preference_stage_grows_the_chosen_margin(tmp_path, judged, stage, dataset, settings):
    train(recipe(tmp_path, stage, dataset, judged, **settings))
    run = assert_run_outputs(tmp_path / "run", "adapter_model.safetensors")
    assert run["stage"] == stage
    assert not (tmp_path / "run" / "ref").exists()  # TRL's reference copy of the adapter is not an output
    margins = logged(tmp_path / "run", "rewards/margins")
    assert mean(margins[-2:]) > margins[0] + 0.05, margins


def test_kto_reads_llamafactory_feedback_and_refuses_a_single_example_batch(tmp_path):
    path = recipe(tmp_path, "kto", "demo_feedback", ROOT / "data")
    preview = run_cli("data", "preview", str(path), "-n", "2")
    assert preview.returncode == 0, preview.stderr
    assert "ANSWER (desirable)" in preview.stdout or "ANSWER (undesirable)" in preview.stdout
    refused = run_cli("check", str(path), "train.per_device_train_batch_size=1")
    assert refused.returncode == 2
    assert "kto estimates its KL reference from the other answers of a batch" in refused.stderr
    wrong_data = run_cli("check", str(path), "data.train=demo_preference")
    assert wrong_data.returncode == 2
    assert "a stage that takes this one: dpo, orpo, simpo, rm" in wrong_data.stderr


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory, judged) -> Path:
    """Stage rm on a language model's body (a new score head), LoRA; eval on its training pairs."""
    work = tmp_path_factory.mktemp("rm")
    path = recipe(
        work,
        "rm",
        "pairs",
        judged,
        model={"from_scratch": False, "name_or_path": str(pretrained_lm(work))},
        data={"eval": "pairs"},
    )
    train(path)
    return path


def pretrained_lm(work: Path) -> Path:
    """A causal LM checkpoint (random weights) with no score head: what a reward model starts from."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    source = ROOT / "examples/tiny-chatml"
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
    model.save_pretrained(work / "lm")
    AutoTokenizer.from_pretrained(source).save_pretrained(work / "lm")
    return work / "lm"


def test_reward_model_ranks_its_pairs_and_is_scored_by_eval(reward_run):
    out = reward_run.parent / "run"
    run = assert_run_outputs(out, "adapter_model.safetensors")
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    assert logged(out, "accuracy")[-1] > 0.5
    result = run_cli("eval", str(reward_run), "--compare-base")
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((out / "eval_results.json").read_text())
    assert scores["metrics"] == ["rm"]
    # The base's score head is random: it may rank these pairs by chance, but not by a trained margin.
    assert scores["fine_tuned"]["reward_accuracy"] > 0.9
    assert scores["fine_tuned"]["reward_margin"] > scores["base"]["reward_margin"] + 0.5
    assert "reward_accuracy" in result.stdout and run["stage"] == "rm"


def test_reward_model_exports_to_the_same_scores_and_does_not_chat(reward_run):
    from transformers import AutoModelForSequenceClassification

    from ftkit.models.loader import load_merged
    from ftkit.runfiles import recorded_base

    out = reward_run.parent / "run"
    exported = run_cli("export", str(reward_run))
    assert exported.returncode == 0, exported.stderr[-3000:]
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged")
    adapter_model, tokenizer = load_merged(recorded_base(out), out)
    ids = tokenizer(
        ["<|im_start|>user\nWhat is 2 plus 3?<|im_end|>\n<|im_start|>assistant\n5<|im_end|>"],
        return_tensors="pt",
    )
    with torch.inference_mode():
        assert torch.allclose(merged(**ids).logits, adapter_model(**ids).logits, atol=1e-5)
    record = json.loads((out / "merged" / "export.json").read_text())
    assert record["method"] == "whole model"  # the score head is not in the base checkpoint to stream
    prompts = out.parent / "prompts.jsonl"
    prompts.write_text('{"prompt": "hello"}\n')
    chat = run_cli("generate", str(reward_run), "--input", str(prompts))
    assert chat.returncode == 2 and "reward model (stage rm): it scores text" in chat.stderr


def test_a_trained_reward_model_is_a_grpo_reward(tmp_path, reward_run):
    out = reward_run.parent / "run"
    path = recipe(
        tmp_path,
        "grpo",
        "demo_math",
        ROOT / "data",
        model={"from_scratch": False, "name_or_path": str(out.parent / "lm")},
        data={"max_length": 128},
        grpo={
            "reward_funcs": [{"model": str(out)}],
            "num_generations": 4,
            "max_completion_length": 8,
            "beta": 0.0,
        },
        train={"max_steps": 2, "per_device_train_batch_size": 4, "logging_steps": 1},
    )
    result = train(path)
    assert "completions scored with '<|im_end|>' appended" in result.stderr
    assert len(logged(tmp_path / "run", "rewards/model_run/mean")) == 2


@pytest.mark.skipif(
    not LLAMAFACTORY_DATA.is_dir(), reason="LLaMA-Factory's demo data (shared fixtures) is not present"
)
@pytest.mark.parametrize(
    ("stage", "dataset"),
    [("kto", "kto_en_demo"), ("orpo", "dpo_en_demo"), ("simpo", "dpo_en_demo"), ("rm", "dpo_en_demo")],
)
def test_stage_trains_on_llamafactory_demo_data_unchanged(tmp_path, stage, dataset):
    """LLaMA-Factory's dataset_info.json and demo files, read as they are."""
    path = recipe(
        tmp_path,
        stage,
        dataset,
        LLAMAFACTORY_DATA,
        # The tiny tokenizer spends many tokens on these long English texts: long multi-turn rows are
        # skipped and counted, not silently dropped.
        data={"max_length": 1024, "on_bad_rows": "skip"},
        train={"max_steps": 3, "per_device_train_batch_size": 4, "logging_steps": 1},
    )
    train(path)
    run = assert_run_outputs(tmp_path / "run", "adapter_model.safetensors")
    rows = len(json.loads((LLAMAFACTORY_DATA / f"{dataset}.json").read_text()))
    split = run["data"]["splits"]["train"]
    assert split["examples"] > rows // 2
    assert split["examples"] + sum(split["skipped"].values()) == rows


@pytest.mark.parametrize(("stage", "dataset"), [("kto", "feedback"), ("rm", "pairs")])
def test_kill_and_resume_continues_the_same_run(tmp_path, judged, stage, dataset):
    """KTO's shuffled order and KL pairs, and a reward model's new head, come back exactly on resume."""
    from tests.pause_at import kill, start_paused

    settings = {"max_steps": 4, "logging_steps": 1, "save_strategy": "steps", "save_steps": 2}
    path = recipe(tmp_path, stage, dataset, judged, train=settings)
    whole = tmp_path / "whole"
    train(path, f"train.output_dir={whole}")
    killed = tmp_path / "run"
    kill(
        start_paused(tmp_path, "transformers.trainer:Trainer.training_step", 4, "before", "train", str(path))
    )
    assert (killed / "checkpoint-2" / "trainer_state.json").is_file()
    result = train(path, "train.resume_from_checkpoint=latest")
    assert "checkpoint-2" in result.stderr
    assert logged(killed, "loss") == pytest.approx(logged(whole, "loss"), rel=1e-5)


def test_kto_warns_about_unbalanced_or_one_sided_feedback(caplog):
    from ftkit.stages.kto import check_balance

    check_balance([True] * 30 + [False] * 10, 1.0, 1.0)
    assert (
        "30 desirable and 10 undesirable answers with weights 1 and 1: set kto.desirable_weight between 0.33 and 0.44"
        in caplog.text
    )
    caplog.clear()
    check_balance([True] * 10 + [False] * 10, 1.0, 1.0)
    check_balance([True] * 10 + [False] * 30, 3.0, 1.0)
    assert caplog.text == ""
    check_balance([True] * 5, 1.0, 1.0)
    assert "the training data has no undesirable answers" in caplog.text
