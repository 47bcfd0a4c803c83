"""The dataset catalog (data/dataset_info.json): every hub entry converts rows shaped like its hub
dataset (tests/data/hub_schemas, written locally with the hub's column names and types), and
`ftkit datasets` lists every entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_DATA, run_cli

SCHEMAS = TEST_DATA / "hub_schemas"
REGISTRY = json.loads((ROOT / "data" / "dataset_info.json").read_text())
HUB_ENTRIES = sorted(name for name, entry in REGISTRY.items() if entry.get("hf_hub_url"))


def schema_copy(entry: dict) -> Path:
    name = entry["hf_hub_url"].replace("/", "__") + (f"__{entry['subset']}" if entry.get("subset") else "")
    return SCHEMAS / f"{name}.jsonl"


def converted(name: str) -> list[dict]:
    from ftkit.data.pipeline import check_columns, convert_batch
    from ftkit.data.registry import Registry

    spec = Registry(ROOT / "data").get(name)
    rows = [json.loads(line) for line in schema_copy(REGISTRY[name]).read_text().splitlines()]
    columns = list(rows[0])
    check_columns(spec, columns)
    batch = {column: [row[column] for row in rows] for column in columns}
    out = convert_batch({**batch, "_row": list(range(len(rows)))}, spec)
    problems = [problem for problem in out["_problem"] if problem]
    assert not problems, problems
    kept = [i for i, dropped in enumerate(out["_filter"]) if dropped is None]
    return [{key: out[key][i] for key in ("system", "messages", "text", "group")} for i in kept]


@pytest.mark.parametrize("name", HUB_ENTRIES)
def test_every_hub_entry_converts_its_schema_copy(name):
    assert schema_copy(REGISTRY[name]).is_file(), f"no local schema copy for {name}"
    examples = converted(name)
    assert examples
    for example in examples:
        if REGISTRY[name]["formatting"] == "text":
            assert example["text"]
        else:
            assert [m["role"] for m in example["messages"]] == ["user", "assistant"]
            assert all(m["content"].strip() for m in example["messages"])


def _turns(example: dict) -> tuple[str, str]:
    return example["messages"][0]["content"], example["messages"][1]["content"]


def test_seed_entries_build_the_examples_the_seeds_train_on():
    # Financial PhraseBank: a 3-class label map, the same at every agreement level.
    for name in ("financial_phrasebank", "financial_phrasebank_50agree"):
        assert [_turns(e)[1] for e in converted(name)] == ["negative", "neutral", "positive"]
    # FiQA sentiment: the score in [-1, 1] is binned into a label.
    assert [_turns(e)[1] for e in converted("fiqa_sentiment")] == ["negative", "neutral", "positive"]
    assert "about Bank" in _turns(converted("fiqa_sentiment")[0])[0]
    # MMLU: generative multiple choice, the choices lettered, the answer a letter.
    prompt, answer = _turns(converted("mmlu_test")[0])
    assert prompt == (
        "What is the chemical symbol for gold?\n\nA. Ag\nB. Au\nC. Gd\nD. Go\n\n"
        "Answer with the letter of the correct choice."
    )
    assert answer == "B" and converted("mmlu_test")[0]["group"] == "high_school_chemistry"
    # MMLU-Pro: up to ten choices.
    second = converted("mmlu_pro")[1]
    assert _turns(second)[0].count("\n") == 13 and "J. Imports" in _turns(second)[0]
    assert _turns(second)[1] == "B" and second["group"] == "economics"
    assert [_turns(e)[1] for e in converted("glue_qqp")] == ["duplicate", "not_duplicate"]
    assert [_turns(e)[1] for e in converted("glue_wnli")] == ["entailment", "not_entailment"]
    assert _turns(converted("adaptllm_finance_headline")[0])[1] == "Yes"
    assert _turns(converted("finance_alpaca")[1]) == (
        "Compute the simple interest.\nPrincipal 1000, rate 5%, 2 years",
        "1000 x 0.05 x 2 = 100.",
    )
    assert _turns(converted("finance_math")[0])[1].endswith("The answer is 1000.0.")
    assert _turns(converted("bigcodebench")[0])[1] == (
        "```python\nimport math\ndef task_func(n):\n    return round(math.sqrt(n), 2)\n\n```"
    )
    contests = converted("code_contests_test")
    assert [e["group"] for e in contests] == ["A", "MEDIUM"] and contests[0]["system"].startswith("You are")
    assert _turns(contests[0])[1] == "a, b = map(int, input().split())\nprint(a + b)"
    assert converted("sec_reports")[0]["text"] == "Our revenues depend on a small number of customers."
    assert converted("common_corpus")[0]["text"] == "Once upon a time there lived a quiet miller."


def test_ftkit_datasets_lists_every_entry():
    result = run_cli("datasets")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert set(REGISTRY) <= listed, set(REGISTRY) - listed


@pytest.mark.parametrize(
    ("train", "stage", "reason"),
    [
        ("demo_text", "pt", "demo_text holds a text corpus"),
        ("wikitext2", "pt", "wikitext2 holds a text corpus"),
        ("demo_sentiment", "sft", "classification (a label prompt, the label as the answer)"),
        ("[samsum, fiqa_qa]", "sft", "samsum, fiqa_qa hold answers to prompts"),
        ("demo_preference", "dpo", "preference pairs"),
        ("demo_feedback", "kto", "labelled answers"),
    ],
)
def test_stage_auto_is_chosen_from_the_datasets_and_check_says_why(tmp_path, capsys, train, stage, reason):
    from ftkit.cli import main

    recipe = tmp_path / "auto.yaml"
    recipe.write_text(
        f"stage: auto\nmodel: {{name_or_path: {ROOT / 'examples' / 'tiny-chatml'}, template: chatml, "
        f"from_scratch: true}}\ndata: {{dataset_dir: {ROOT / 'data'}, train: {train}}}\n"
        f"train: {{output_dir: {tmp_path / 'run'}}}\n"
    )
    assert main(["check", str(recipe)]) == 0, capsys.readouterr().err
    shown = capsys.readouterr().out
    assert f"stage: {stage}\n" in shown and "chosen by stage auto: " in shown and reason in shown


def test_stage_auto_refuses_datasets_of_different_tasks(tmp_path, capsys):
    from ftkit.cli import main

    recipe = tmp_path / "auto.yaml"
    recipe.write_text(
        f"stage: auto\nmodel: {{name_or_path: {ROOT / 'examples' / 'tiny-chatml'}, template: chatml}}\n"
        f"data: {{dataset_dir: {ROOT / 'data'}, train: [demo_text, demo_sft]}}\ntrain: {{output_dir: {tmp_path}}}\n"
    )
    assert main(["check", str(recipe)]) == 2
    assert (
        "stage auto: the training datasets need different stages (demo_text: a text corpus (stage pt); "
        "demo_sft: answers to prompts" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("train", "rewards"),
    [
        ("gsm8k", ["numeric_match"]),
        ("glue_sst2", ["label_match"]),
        ("[bigcodebench, code_contests_test]", ["code_structure"]),
        ("[gsm8k, financial_sentiment]", ["numeric_match", "label_match"]),
    ],
)
def test_grpo_rewards_come_from_the_datasets_task_when_the_recipe_names_none(
    tmp_path, capsys, train, rewards
):
    from ftkit.cli import main
    from ftkit.config import load_recipe

    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(
        f"stage: grpo\nmodel: {{name_or_path: {ROOT / 'examples' / 'tiny-chatml'}, template: chatml, "
        f"from_scratch: true}}\ndata: {{dataset_dir: {ROOT / 'data'}, train: {train}}}\n"
        f"train: {{output_dir: {tmp_path / 'run'}, per_device_train_batch_size: 8}}\n"
    )
    assert [reward.name for reward in load_recipe(recipe).grpo.reward_funcs] == rewards
    assert main(["check", str(recipe), "-q"]) == 0
    assert "chosen by grpo.reward_funcs from the datasets: " + rewards[0] in capsys.readouterr().out


def test_grpo_without_rewards_anywhere_says_where_to_declare_them(tmp_path, capsys):
    from ftkit.cli import main

    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(
        f"stage: grpo\nmodel: {{name_or_path: {ROOT / 'examples' / 'tiny-chatml'}, template: chatml}}\n"
        f"data: {{dataset_dir: {ROOT / 'data'}, train: samsum}}\ntrain: {{output_dir: {tmp_path}}}\n"
    )
    assert main(["check", str(recipe), "-q"]) == 2
    assert "or declare the task's rewards in the training dataset's registry entry" in capsys.readouterr().err
