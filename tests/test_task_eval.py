"""Task reports of `ftkit eval`: classification (accuracy, macro-F1, per-label precision/recall, the
confusion matrix, answers naming no label) and code generation (generation and parse rates by
difficulty), for the tuned and the base model."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from ftkit.task_reports import classification_report, code_report, extract_code
from tests.conftest import ROOT, TEST_DATA, run_cli


def test_classification_report_on_known_answers():
    answers = ["Positive.", "  negative ", "It is NEUTRAL, I think", "no idea", "positive"]
    references = ["positive", "negative", "negative", "neutral", "negative"]
    report = classification_report(answers, references, ["negative", "neutral", "positive"])
    assert report["accuracy"] == pytest.approx(2 / 5)
    assert report["unmatched"] == 1.0
    assert report["per_label"]["negative"] == {
        "precision": 1.0,
        "recall": pytest.approx(1 / 3),
        "f1": 0.5,
        "support": 3,
    }
    assert (
        report["per_label"]["positive"]["precision"] == 0.5
        and report["per_label"]["positive"]["recall"] == 1.0
    )
    assert report["per_label"]["neutral"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["macro_f1"] == pytest.approx((0.5 + 0.0 + 2 / 3) / 3)
    assert report["confusion_matrix"] == {
        "labels": ["negative", "neutral", "positive"],
        "predicted": ["negative", "neutral", "positive", "(no label)"],
        "rows": [[1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 1, 0]],
    }


def test_code_report_counts_code_and_what_parses_by_group():
    answers = [
        "Here it is:\n```python\nprint(int(input()) * 2)\n```",
        "```python\ndef f(:\n    pass\n```",
        "I cannot solve this.",
        "import sys\nprint(sys.stdin.read())",
    ]
    assert extract_code(answers[2]) is None and extract_code(answers[3]) == answers[3]
    report = code_report(answers, ["EASY", "EASY", "HARD", "HARD"])
    assert report["generation_rate"] == 0.75 and report["parse_rate"] == 0.5
    assert report["by_group"] == {
        "EASY": {"generation_rate": 1.0, "parse_rate": 0.5, "examples": 2.0},
        "HARD": {"generation_rate": 0.5, "parse_rate": 0.5, "examples": 2.0},
    }


def test_eval_reports_classification_for_base_and_tuned(tmp_path, tiny_model_dir):
    recipe = {
        "stage": "sft",
        "model": {"name_or_path": str(tiny_model_dir), "template": "chatml"},
        "adapter": {"type": "lora", "r": 8, "alpha": 16},
        "data": {
            "dataset_dir": str(ROOT / "data"),
            "train": "demo_sentiment",
            "val_size": 12,
            "max_length": 256,
        },
        "train": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 40,
            "learning_rate": 1.0e-2,
            "per_device_train_batch_size": 8,
            "save_strategy": "no",
        },
        "eval": {"metrics": ["classification"], "max_new_tokens": 8},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert run_cli("train", str(path)).returncode == 0
    result = run_cli("eval", str(path), "--compare-base")
    assert result.returncode == 0, result.stderr[-3000:]
    for shown in ("accuracy", "macro_f1", "unmatched", "base classification: confusion matrix",
                  "fine-tuned classification: confusion matrix", "precision"):  # fmt: skip
        assert shown in result.stdout, result.stdout
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    for model in ("base", "fine_tuned"):
        scores = results[model]
        matrix = scores["classification"]["confusion_matrix"]
        assert matrix["labels"] == ["negative", "positive"]
        assert sum(map(sum, matrix["rows"])) == results["examples"] == 12
        hits = sum(matrix["rows"][i][i] for i in range(2))
        assert scores["accuracy"] == pytest.approx(hits / 12)
        assert scores["unmatched"] == sum(row[-1] for row in matrix["rows"])
    # Trained on the labels, the tuned model names one in its answers; the random base never does.
    assert results["base"]["unmatched"] == 12 and results["fine_tuned"]["unmatched"] < 6
    assert results["fine_tuned"]["accuracy"] > 0.5 and results["improvement"]["unmatched"].startswith("+")


def test_eval_reports_code_rates_by_difficulty(tmp_path, tiny_model_dir):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(TEST_DATA / "hub_schemas" / "deepmind__code_contests.jsonl", data / "contests.jsonl")
    entry = json.loads((ROOT / "data" / "dataset_info.json").read_text())["code_contests_test"]
    entry = {key: value for key, value in entry.items() if key not in ("hf_hub_url", "split")}
    (data / "dataset_info.json").write_text(
        json.dumps({"contests": {**entry, "file_name": "contests.jsonl"}})
    )
    recipe = {
        "model": {"name_or_path": str(tiny_model_dir), "template": "chatml"},
        "data": {"dataset_dir": str(data), "train": "contests", "eval": "contests", "max_length": 256},
        "train": {"output_dir": str(tmp_path / "run")},
        "eval": {"metrics": ["code"], "max_new_tokens": 8},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run_cli("eval", str(path), "--model", str(tiny_model_dir), "--compare-base")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "generation_rate" in result.stdout and "parse_rate" in result.stdout
    assert "fine-tuned code: group" in result.stdout and "base code: group" in result.stdout
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert sorted(results["fine_tuned"]["code"]["by_group"]) == ["A", "MEDIUM"]


def test_code_structure_reward_scores_parsing_code():
    from ftkit.stages.rewards import REWARDS

    scores = REWARDS["code_structure"].function(
        [
            "```python\nprint(1)\n```",
            "```python\ndef f(:\n```",
            "no code here",
            [{"role": "assistant", "content": "import os"}],
        ]
    )
    assert scores == [1.0, 0.25, 0.0, 1.0]
