"""Registry entries to processed examples: formats, transforms, mixtures, masks, bad rows, the cache."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest

from ftkit.cli import main
from ftkit.config import load_recipe
from ftkit.data.formats import FORMATS, BadRow
from ftkit.data.pipeline import build_data
from ftkit.data.processors import process_grpo
from ftkit.data.registry import DatasetSpec, Registry
from ftkit.data.tokenize import IGNORE_INDEX
from ftkit.errors import UserError
from ftkit.stages import STAGES
from ftkit.templates import get_template
from tests.conftest import TEST_DATA

CHATML = get_template("chatml")
LLAMAFACTORY = TEST_DATA / "llamafactory"


def recipe_for(tmp_path, dataset_dir, train="qa", stage="sft", cache=False, **data):
    extra = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in data.items())
    path = tmp_path / "r.yaml"
    path.write_text(
        f"stage: {stage}\nmodel: {{name_or_path: m, template: chatml}}\n"
        f"data:\n  dataset_dir: {dataset_dir}\n  train: {json.dumps(train)}\n  cache: {json.dumps(cache)}\n"
        f"  cache_dir: {tmp_path / 'cache'}\n{extra}"
        f"train: {{output_dir: {tmp_path / 'out'}}}\n"
    )
    return load_recipe(path)


def build(recipe, tokenizer, template=CHATML):
    data = build_data(recipe, tokenizer, template)
    return data.train, data.eval, data.report


def trained(tokenizer, labels) -> str:
    return tokenizer.decode([t for t in labels if t != IGNORE_INDEX])


def write_registry(directory, entries, files):
    for name, content in files.items():
        (directory / name).write_text(content if isinstance(content, str) else json.dumps(content))
    (directory / "dataset_info.json").write_text(json.dumps(entries))


# ------------------------------------------------------------------ converters


def test_alpaca_row_with_input_and_history():
    spec = DatasetSpec(name="x", file_name="f.json", columns={"history": "history"})
    example = FORMATS["alpaca"].convert(
        {"instruction": "Add.", "input": "1 and 2", "output": "3", "history": [["hi", "hello"]]}, spec
    )
    assert example["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "Add.\n1 and 2"},
        {"role": "assistant", "content": "3"},
    ]


def test_numbers_are_text_to_the_model():
    example = FORMATS["alpaca"].convert(
        {"instruction": "2+2?", "output": 4}, DatasetSpec(name="x", file_name="f")
    )
    assert example["messages"][-1] == {"role": "assistant", "content": "4"}


def test_openai_content_parts_reasoning_and_empty_tools():
    spec = DatasetSpec(name="x", file_name="f", formatting="openai", columns={"tools": "tools"})
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello.", "reasoning_content": "\nA greeting.\n"},
        ],
        "tools": "[]",
    }
    example = FORMATS["openai"].convert(row, spec)
    assert example["messages"] == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "<think>\nA greeting.\n</think>\n\nHello."},
    ]
    assert example["tools"] is None
    tools = '[{"name": "f"}]'
    assert FORMATS["openai"].convert({**row, "tools": tools}, spec)["tools"] == tools
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
    with pytest.raises(
        BadRow, match="message 0: content part of type 'image_url'; ftkit trains on text parts only"
    ):
        FORMATS["openai"].convert({"messages": [image, row["messages"][1]]}, spec)


def test_classification_maps_labels_to_answers():
    spec = DatasetSpec(
        name="x",
        file_name="f",
        formatting="classification",
        prompt_format="Review: {text}",
        label_map={"0": "negative", "1": "positive"},
    )
    example = FORMATS["classification"].convert({"text": "Great!", "label": 1}, spec)
    assert example["messages"] == [
        {"role": "user", "content": "Review: Great!"},
        {"role": "assistant", "content": "positive"},
    ]
    with pytest.raises(BadRow, match=r"label -1 is not in label_map \(its keys: 0, 1\)"):
        FORMATS["classification"].convert({"text": "?", "label": -1}, spec)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"instruction": "q", "output": None}, "response column 'output' is missing or null"),
        ({"instruction": "q", "output": "  "}, "response column 'output' is empty"),
        ({"instruction": ["a"], "output": "a"}, "prompt column 'instruction' holds list, expected text"),
    ],
)
def test_bad_alpaca_rows_say_why(row, reason):
    with pytest.raises(BadRow, match=reason):
        FORMATS["alpaca"].convert(row, DatasetSpec(name="x", file_name="f"))


def test_registry_rejects_unknown_fields_with_suggestion(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "a.json", "colums": {}}}))
    with pytest.raises(UserError, match=r"entry 'd': unknown key colums \(did you mean columns\?\)"):
        Registry(tmp_path).get("d")


def test_registry_entry_without_usable_source():
    with pytest.raises(UserError, match="names only 'someone/somewhere', which ftkit does not load"):
        Registry(LLAMAFACTORY).get("hub_only_elsewhere")


# ------------------------------------------------------------------ a LLaMA-Factory registry, unchanged


def test_llamafactory_alpaca_with_history(tmp_path, chatml_tokenizer):
    train, _, report = build(recipe_for(tmp_path, LLAMAFACTORY, train="alpaca_demo"), chatml_tokenizer)
    texts = [chatml_tokenizer.decode(ids) for ids in train["input_ids"]]
    assert (
        texts[0]
        == "<|im_start|>user\nAdd the numbers.\n2 and 3<|im_end|>\n<|im_start|>assistant\n2 plus 3 is 5.<|im_end|>\n"
    )
    assert [trained(chatml_tokenizer, labels) for labels in train["labels"]] == [
        "2 plus 3 is 5.<|im_end|>",
        "1 plus 1 is 2.<|im_end|>4 plus 4 is 8.<|im_end|>",
    ]
    assert report.splits["train"].examples == 2


def test_llamafactory_sharegpt_with_custom_tags(tmp_path, chatml_tokenizer):
    train, _, _ = build(recipe_for(tmp_path, LLAMAFACTORY, train="sharegpt_custom"), chatml_tokenizer)
    first = chatml_tokenizer.decode(train["input_ids"][0])
    assert first.startswith("<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>")
    assert trained(chatml_tokenizer, train["labels"][0]) == "Hello!<|im_end|>Bees make honey.<|im_end|>"
    assert chatml_tokenizer.decode(train["input_ids"][1]).startswith("<|im_start|>user\nCapital of Peru?")


def test_llamafactory_ranking_becomes_prompt_chosen_rejected(tmp_path, chatml_tokenizer):
    train, _, report = build(
        recipe_for(tmp_path, LLAMAFACTORY, train="dpo_demo", stage="dpo"), chatml_tokenizer
    )
    decode = chatml_tokenizer.decode
    assert (
        decode(train["prompt_ids"][0])
        == "<|im_start|>user\nWhat is 2 plus 2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert decode(train["chosen_ids"][0]) == "2 plus 2 is 4.<|im_end|>"
    assert decode(train["rejected_ids"][0]) == "2 plus 2 is 5.<|im_end|>"
    assert decode(train["prompt_ids"][1]).endswith(
        "Hello.<|im_end|>\n<|im_start|>user\nCapital of Peru?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert report.splits["train"].examples == 2


def test_llamafactory_kto_tag_becomes_labelled_answers(tmp_path, chatml_tokenizer):
    """LLaMA-Factory's kto_en_demo entry shape as it is: messages with role/content tags, kto_tag: label."""
    train, _, report = build(
        recipe_for(tmp_path, LLAMAFACTORY, train="kto_demo", stage="kto"), chatml_tokenizer
    )
    decode = chatml_tokenizer.decode
    assert train["label"] == [True, False, True]
    assert (
        decode(train["prompt_ids"][1])
        == "<|im_start|>user\nWhat is 2 plus 2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert decode(train["completion_ids"][1]) == "It is 5.<|im_end|>"
    assert decode(train["prompt_ids"][2]).endswith(
        "Hello.<|im_end|>\n<|im_start|>user\nCapital of Peru?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert decode(train["completion_ids"][2]) == "Lima.<|im_end|>"
    assert report.splits["train"].examples == 3


@pytest.mark.parametrize(
    ("dataset", "stage", "message"),
    [
        (
            "dpo_demo",
            "sft",
            "holds a chosen and a rejected answer per prompt .* stage sft trains on conversations",
        ),
        (
            "dpo_demo",
            "kto",
            "stage kto trains on single answers labelled .* takes this one: dpo, orpo, simpo, rm",
        ),
        ("kto_demo", "sft", "holds single answers labelled desirable or not .* takes this one: kto"),
        ("kto_demo", "dpo", "stage dpo trains on a chosen and a rejected answer"),
        ("alpaca_demo", "rm", "holds conversations ending with the answer .* stage rm trains on a chosen"),
    ],
)
def test_a_stage_refuses_data_of_another_kind(tmp_path, chatml_tokenizer, dataset, stage, message):
    with pytest.raises(UserError, match=message):
        build(recipe_for(tmp_path, LLAMAFACTORY, train=dataset, stage=stage), chatml_tokenizer)


@pytest.mark.parametrize("value", ["maybe", 2, None])
def test_a_feedback_label_that_is_not_a_boolean_is_a_bad_row(tmp_path, chatml_tokenizer, value):
    rows = [
        {
            "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
            "label": value,
        }
    ]
    (tmp_path / "kto.json").write_text(json.dumps(rows))
    entry = {"file_name": "kto.json", "formatting": "openai", "columns": {"kto_tag": "label"}}
    (tmp_path / "dataset_info.json").write_text(json.dumps({"fb": entry}))
    with pytest.raises(UserError, match=r"row 1: kto_tag column 'label' holds .*expected true or false"):
        build(recipe_for(tmp_path, tmp_path, train="fb", stage="kto"), chatml_tokenizer)


def test_llamafactory_pretraining_text_and_txt_folders(tmp_path, chatml_tokenizer):
    recipe = recipe_for(tmp_path, LLAMAFACTORY, train=["c4_style", "text_folder"], stage="pt", max_length=16)
    train, _, report = build(recipe, chatml_tokenizer, template=None)
    stream = [token for block in train["input_ids"] for token in block]
    assert chatml_tokenizer.decode(stream) == (
        "Bees make honey in the summer.<|im_end|>A week has seven days.<|im_end|>"
        "First line of the first file.<|im_end|>Second line after an empty one.<|im_end|>"
        "Only line of the second file.<|im_end|>"
    )
    assert (
        all(len(block) == 16 for block in train["input_ids"][:-1]) and train["labels"] == train["input_ids"]
    )
    assert report.datasets[1].filtered == {"empty text": 1}


# ------------------------------------------------------------------ ftkit's extensions


def test_pairs_where_and_bidirectional_counts(tmp_path, chatml_tokenizer):
    train, evaluation, report = build(recipe_for(tmp_path, TEST_DATA, train="pairs_csv"), chatml_tokenizer)
    [dataset] = report.datasets
    assert (dataset.rows, dataset.filtered, dataset.examples) == (3, {"where": 1}, 4)
    assert evaluation is None
    assert [trained(chatml_tokenizer, labels) for labels in train["labels"]] == [
        "On the mat sat the cat.<|im_end|>",
        "The cat sat on the mat.<|im_end|>",
        "The whole day was rainy.<|im_end|>",
        "It rained all day.<|im_end|>",
    ]
    assert chatml_tokenizer.decode(train["input_ids"][0]).startswith(
        "<|im_start|>system\nRewrite the sentence.<|im_end|>\n<|im_start|>user\nParaphrase this: The cat sat on the mat.<|im_end|>"
    )


def test_dedup_and_length_filters_are_counted(tmp_path, chatml_tokenizer):
    rows = [
        {"instruction": "What do bees make?", "output": "Bees make honey."},
        {"instruction": "What do bees make?", "output": "Bees make honey."},
        {"instruction": "Hi", "output": "Bees make honey."},
        {"instruction": "What do bees make?", "output": "Bees make honey. " * 10},
        {"instruction": "How many days in a week?", "output": "A week has seven days."},
    ]
    write_registry(
        tmp_path,
        {"d": {"file_name": "d.json", "dedup": True, "min_chars": 5, "max_chars": 80}},
        {"d.json": rows},
    )
    train, _, report = build(recipe_for(tmp_path, tmp_path, train="d"), chatml_tokenizer)
    assert report.datasets[0].filtered == {
        "shorter than min_chars=5": 1,
        "longer than max_chars=80": 1,
        "duplicate": 1,
    }
    assert [trained(chatml_tokenizer, labels) for labels in train["labels"]] == [
        "Bees make honey.<|im_end|>",
        "A week has seven days.<|im_end|>",
    ]


def test_max_samples_counts_rows_kept_by_where(tmp_path, chatml_tokenizer):
    rows = [{"sentence1": f"s{i}", "sentence2": f"t{i}", "label": i % 2} for i in range(10)]
    entry = {
        "file_name": "p.json",
        "formatting": "pairs",
        "prompt_format": "{sentence1}",
        "response_format": "{sentence2}",
        "where": {"label": 1},
        "num_samples": 3,
    }
    write_registry(tmp_path, {"p": entry}, {"p.json": rows})
    train, _, _ = build(recipe_for(tmp_path, tmp_path, train="p"), chatml_tokenizer)
    assert [trained(chatml_tokenizer, labels) for labels in train["labels"]] == [
        "t1<|im_end|>",
        "t3<|im_end|>",
        "t5<|im_end|>",
    ]


def test_weighted_mixture_is_seeded_and_honors_weights(tmp_path, chatml_tokenizer):
    many = [{"instruction": f"a{i}", "output": "A"} for i in range(600)]
    few = [{"instruction": f"b{i}", "output": "B"} for i in range(600)]
    write_registry(
        tmp_path,
        {"a": {"file_name": "a.json"}, "b": {"file_name": "b.json"}},
        {"a.json": many, "b.json": few},
    )
    refs = [{"name": "a", "weight": 3}, {"name": "b", "weight": 1}]
    train, _, report = build(recipe_for(tmp_path, tmp_path, train=refs, max_length=32), chatml_tokenizer)
    sources = Counter(train["_dataset"])
    share = sources["a"] / len(train)
    assert 0.70 < share < 0.80  # 3:1 weights
    assert report.datasets[0].used == sources["a"] and report.datasets[0].examples == 600
    assert report.datasets[0].used == 600 and report.datasets[1].used < 600  # stopped when `a` ran out
    again, _, _ = build(recipe_for(tmp_path, tmp_path, train=refs, max_length=32), chatml_tokenizer)
    assert again["_row"] == train["_row"] and again["_dataset"] == train["_dataset"]  # seeded


def test_mixture_until_all_exhausted_repeats_the_smaller(tmp_path, chatml_tokenizer):
    write_registry(
        tmp_path,
        {"a": {"file_name": "a.json"}, "b": {"file_name": "b.json"}},
        {
            "a.json": [{"instruction": f"a{i}", "output": "A"} for i in range(40)],
            "b.json": [{"instruction": f"b{i}", "output": "B"} for i in range(5)],
        },
    )
    refs = [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]
    _, _, report = build(
        recipe_for(tmp_path, tmp_path, train=refs, mix_stop="all_exhausted"), chatml_tokenizer
    )
    assert report.datasets[0].used == 40 and report.datasets[1].used > 5


def test_concatenation_without_weights(tmp_path, chatml_tokenizer):
    train, _, report = build(recipe_for(tmp_path, TEST_DATA, train=["qa", "pairs_csv"]), chatml_tokenizer)
    assert Counter(train["_dataset"]) == {"qa": 28, "pairs_csv": 4}
    assert [d.used for d in report.datasets] == [None, None]


def test_multi_turn_mask_history_and_truncation(tmp_path, chatml_tokenizer):
    recipe = recipe_for(tmp_path, LLAMAFACTORY, train="sharegpt_custom", mask_history=True)
    train, _, _ = build(recipe, chatml_tokenizer)
    assert trained(chatml_tokenizer, train["labels"][0]) == "Bees make honey.<|im_end|>"
    full, _, _ = build(recipe_for(tmp_path, LLAMAFACTORY, train="sharegpt_custom"), chatml_tokenizer)
    limit = len(full["input_ids"][0]) - 2
    cut, _, report = build(
        recipe_for(tmp_path, LLAMAFACTORY, train="sharegpt_custom", max_length=limit), chatml_tokenizer
    )
    assert (
        cut["input_ids"][0] == full["input_ids"][0][:limit] and cut["labels"][0] == full["labels"][0][:limit]
    )
    assert report.splits["train"].truncated == 1


def test_val_size_splits_train_and_max_samples_limits(tmp_path, chatml_tokenizer):
    train, evaluation, report = build(
        recipe_for(tmp_path, TEST_DATA, val_size=0.25, max_samples=20), chatml_tokenizer
    )
    assert (len(train), len(evaluation)) == (15, 5)
    assert report.splits["eval"].examples == 5


def test_system_precedence_row_then_data_system(tmp_path, chatml_tokenizer):
    rows = [
        {"instruction": "q", "output": "a", "sys": "row system"},
        {"instruction": "q", "output": "a", "sys": ""},
    ]
    write_registry(tmp_path, {"d": {"file_name": "d.json", "columns": {"system": "sys"}}}, {"d.json": rows})
    train, _, _ = build(recipe_for(tmp_path, tmp_path, train="d", system="recipe system"), chatml_tokenizer)
    texts = [chatml_tokenizer.decode(ids) for ids in train["input_ids"]]
    assert texts[0].startswith("<|im_start|>system\nrow system<|im_end|>")
    assert texts[1].startswith("<|im_start|>system\nrecipe system<|im_end|>")


def test_stats_report_lengths(tmp_path, chatml_tokenizer):
    _, _, report = build(recipe_for(tmp_path, TEST_DATA), chatml_tokenizer)
    split = report.splits["train"]
    assert set(split.lengths) == {"p50", "p90", "p99", "max"} and split.lengths["p50"] <= split.lengths["max"]
    assert split.trained_tokens < split.tokens


def test_shipped_demo_files_load_in_every_format(tmp_path, chatml_tokenizer):
    from tests.conftest import ROOT

    data_dir = ROOT / "data"
    for name, stage in [
        ("demo_sft", "sft"),
        ("demo_chat_sharegpt", "sft"),
        ("demo_chat_openai", "sft"),
        ("demo_preference", "dpo"),
        ("demo_text", "pt"),
        ("demo_paraphrase", "sft"),
        ("demo_sentiment", "sft"),
        ("demo_math", "sft"),
    ]:
        train, _, report = build(
            recipe_for(tmp_path, data_dir, train=name, stage=stage, max_length=512),
            chatml_tokenizer,
            None if stage == "pt" else CHATML,
        )
        assert report.datasets[0].examples >= 96 and len(train) > 0, name
        assert report.splits["train"].skipped == {}, name


# ------------------------------------------------------------------ bad data: exit 2, with the row


@pytest.mark.parametrize(
    ("entry", "rows", "message"),
    [
        (
            {"file_name": "d.json"},
            [{"instruction": "q", "output": "a"}, {"instruction": "q", "output": ""}],
            "dataset 'd' (d.json), row 2: response column 'output' is empty",
        ),
        (
            {"file_name": "d.json"},
            [{"instruction": "q", "output": "a"}, {"instruction": {"x": 1}, "output": "a"}],
            "row 2: prompt column 'instruction' holds dict, expected text",
        ),
        (
            {"file_name": "d.json", "formatting": "sharegpt"},
            [
                {
                    "conversations": [
                        {"from": "gpt", "value": "a"},
                        {"from": "human", "value": "q"},
                        {"from": "gpt", "value": "b"},
                    ]
                }
            ],
            "row 1: message 0: role assistant cannot come first",
        ),
        (
            {"file_name": "d.json", "formatting": "sharegpt"},
            [
                {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
                {"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]},
            ],
            "row 2: message 1: role 'robot' is not one of human, gpt",
        ),
        (
            {"file_name": "d.json", "formatting": "sharegpt"},
            [{"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": "a"}]}],
            "row 1: message 0: empty content",
        ),
        (
            {"file_name": "d.json"},
            [{"instruction": "q", "out": "a"}],
            "row 1: no assistant answer to train on",
        ),
        (
            {"file_name": "d.json", "columns": {"response": "answer"}},
            [{"instruction": "q", "out": "a"}],
            "has no column 'answer'",
        ),
    ],
)
def test_malformed_data_exits_2_naming_the_row(tmp_path, entry, rows, message, capsys, tiny_model_dir):
    write_registry(tmp_path, {"d": entry}, {"d.json": rows})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {tiny_model_dir}, template: chatml}}\n"
        f"data: {{dataset_dir: {tmp_path}, train: d, cache: false}}\ntrain: {{output_dir: {tmp_path / 'o'}}}\n"
    )
    assert main(["data", "stats", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_invalid_json_file_is_a_user_error(tmp_path, chatml_tokenizer):
    write_registry(tmp_path, {"d": {"file_name": "d.json"}}, {"d.json": "[{not json"})
    with pytest.raises(UserError, match=r"cannot read d\.json"):
        build(recipe_for(tmp_path, tmp_path, train="d"), chatml_tokenizer)


def test_skipped_rows_are_counted(tmp_path, chatml_tokenizer):
    rows = [
        {"instruction": "q1", "output": "a1"},
        {"instruction": "q2", "output": ""},
        {"instruction": "q3", "output": "a3"},
    ]
    write_registry(tmp_path, {"bad": {"file_name": "bad.json"}}, {"bad.json": rows})
    train, _, report = build(
        recipe_for(tmp_path, tmp_path, train="bad", on_bad_rows="skip"), chatml_tokenizer
    )
    assert len(train) == 2 and report.datasets[0].skipped == {"response column 'output' is empty": 1}


def test_where_matching_nothing_and_all_rows_bad_are_errors(tmp_path, chatml_tokenizer):
    entry = {
        "file_name": "d.csv",
        "formatting": "pairs",
        "prompt_format": "{s}",
        "response_format": "{t}",
        "where": {"label": 1},
    }
    write_registry(
        tmp_path,
        {"d": entry, "bad": {"file_name": "bad.json"}},
        {"d.csv": "s,t,label\na,b,0\n", "bad.json": [{"instruction": "q", "output": ""}]},
    )
    with pytest.raises(UserError, match=r"no row matches where=\{'label': 1\} \(of 1 rows\)"):
        build(recipe_for(tmp_path, tmp_path, train="d"), chatml_tokenizer)
    with pytest.raises(UserError, match="no example is left"):
        build(recipe_for(tmp_path, tmp_path, train="bad", on_bad_rows="skip"), chatml_tokenizer)


def test_fields_the_format_ignores_are_errors(tmp_path, chatml_tokenizer):
    entry = {"file_name": "d.json", "columns": {"messages": "conversations"}, "prompt_format": "{x}"}
    write_registry(tmp_path, {"d": entry}, {"d.json": [{"instruction": "q", "output": "a"}]})
    with pytest.raises(
        UserError, match=r"columns\.messages, prompt_format does not apply to formatting alpaca"
    ):
        build(recipe_for(tmp_path, tmp_path, train="d"), chatml_tokenizer)


def test_val_size_that_leaves_nothing_is_an_error(tmp_path, chatml_tokenizer):
    with pytest.raises(UserError, match="must leave at least one example on each side"):
        build(recipe_for(tmp_path, TEST_DATA, val_size=0.999), chatml_tokenizer)


# ------------------------------------------------------------------ the cache


@pytest.fixture
def counting_processor(monkeypatch):
    calls = Counter()
    original = STAGES["sft"]

    def counted(batch, *args, **kwargs):
        calls["rows"] += len(batch["messages"])
        return original.process(batch, *args, **kwargs)

    monkeypatch.setitem(STAGES, "sft", replace(original, process=counted))
    return calls


def test_cache_serves_unchanged_inputs_and_invalidates_on_change(
    tmp_path, chatml_tokenizer, counting_processor
):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(6)]
    write_registry(data_dir, {"d": {"file_name": "d.json"}}, {"d.json": rows})

    def run(tokenizer=chatml_tokenizer, template=CHATML, **data):
        return build_data(recipe_for(tmp_path, data_dir, train="d", cache=True, **data), tokenizer, template)

    first = run()
    assert counting_processor["rows"] == 6 and first.report.cache["hit"] is False
    second = run()
    assert counting_processor["rows"] == 6, "a second run with unchanged inputs must not tokenize again"
    assert second.report.cache["hit"] is True and second.train["input_ids"] == first.train["input_ids"]
    assert second.report.splits["train"].examples == 6

    run(max_length=64)  # an option
    assert counting_processor["rows"] == 12
    run(template=get_template("qwen2_5"))  # the template
    assert counting_processor["rows"] == 18
    from ftkit.testing import CHATML as CHATML_SPEC
    from ftkit.testing import train_tokenizer

    run(tokenizer=train_tokenizer(["other text entirely"] * 5, CHATML_SPEC, vocab_size=300))  # the tokenizer
    assert counting_processor["rows"] == 24
    (data_dir / "d.json").write_text(json.dumps(rows[:5]))  # the data
    assert len(run().train) == 5 and counting_processor["rows"] == 29
    run()
    assert counting_processor["rows"] == 29


def test_cli_stats_twice_is_served_from_the_cache(tmp_path, tiny_model_dir, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {tiny_model_dir}, template: chatml}}\n"
        f"data: {{dataset_dir: {TEST_DATA}, train: qa, cache_dir: {tmp_path / 'cache'}}}\n"
        f"train: {{output_dir: {tmp_path / 'o'}}}\n"
    )
    assert main(["data", "stats", str(recipe)]) == 0
    assert "cache: written" in capsys.readouterr().out
    assert main(["data", "stats", str(recipe), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cache"]["hit"] is True and report["splits"]["train"]["examples"] == 28


def test_cli_preview_json_and_text(tmp_path, tiny_model_dir, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {tiny_model_dir}, template: chatml}}\n"
        f"data: {{dataset_dir: {TEST_DATA}, train: pairs_csv, cache: false}}\ntrain: {{output_dir: {tmp_path / 'o'}}}\n"
    )
    assert main(["data", "preview", str(recipe), "-n", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and rows[0]["dataset"] == "pairs_csv" and rows[0]["row"] == 1
    assert len(rows[0]["input_ids"]) == len(rows[0]["labels"]) and IGNORE_INDEX in rows[0]["labels"]
    assert rows[0]["text"].endswith("On the mat sat the cat.<|im_end|>\n")
    assert main(["data", "preview", str(recipe), "-n", "1"]) == 0
    assert "[[On the mat sat the cat.<|im_end|>]]" in capsys.readouterr().out


def test_datasets_command_lists_and_flags_invalid_entries(capsys):
    assert main(["datasets", "--dir", str(LLAMAFACTORY)]) == 0
    out = capsys.readouterr().out
    assert "alpaca_demo" in out and "sharegpt_custom" in out and "sharegpt ranking" in out
    assert "hub_only_elsewhere" in out and "INVALID" in out


def test_classification_end_to_end_trains_the_label_word(tmp_path, chatml_tokenizer):
    from tests.conftest import ROOT

    train, _, _ = build(
        recipe_for(tmp_path, ROOT / "data", train="demo_sentiment", max_samples=4), chatml_tokenizer
    )
    answers = {trained(chatml_tokenizer, labels) for labels in train["labels"]}
    assert answers <= {"positive<|im_end|>", "negative<|im_end|>"} and answers
    assert "Review: The" in chatml_tokenizer.decode(train["input_ids"][0])


def test_multiprocess_tokenization_gives_the_same_data(tmp_path, chatml_tokenizer):
    single, _, _ = build(recipe_for(tmp_path, TEST_DATA), chatml_tokenizer)
    parallel, _, _ = build(recipe_for(tmp_path, TEST_DATA, num_proc=2), chatml_tokenizer)
    assert parallel["input_ids"] == single["input_ids"] and parallel["labels"] == single["labels"]


@pytest.mark.parametrize("adds_bos", [False, True], ids=["plain", "adds-bos"])
def test_grpo_prompts_get_exactly_one_bos(adds_bos):
    """TRL tokenizes GRPO prompts with the tokenizer's special tokens: the rendered BOS must not double."""
    from tokenizers.processors import TemplateProcessing

    from ftkit.data.processors import ProcessOptions
    from ftkit.data.tokenize import MaskOptions
    from ftkit.testing import FAMILY_TOKENIZERS, train_tokenizer

    tokenizer = train_tokenizer(["what is two plus two"] * 10, FAMILY_TOKENIZERS["llama3"], vocab_size=300)
    bos = tokenizer.bos_token
    if adds_bos:
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
        )
    batch = {
        "system": [None],
        "messages": [[{"role": "user", "content": "two plus two"}, {"role": "assistant", "content": "4"}]],
        "tools": [None],
    }
    out = process_grpo(batch, tokenizer, get_template("llama3"), ProcessOptions(MaskOptions(64)))
    [prompt] = out["prompt"]
    assert prompt.startswith(bos) is not adds_bos and out["reference"] == ["4"]
    assert tokenizer(prompt)["input_ids"].count(tokenizer.bos_token_id) == 1  # as TRL will tokenize it


# ------------------------------------------------------------------ template variables


def test_template_vars_from_the_recipe_and_from_each_row(tmp_path):
    """data.template_vars reaches the template (Qwen3 without thinking: the empty block is prompt, not
    trained); a row's own variables (columns.template_vars) win."""
    from ftkit.testing import FAMILY_TOKENIZERS, train_tokenizer

    tokenizer = train_tokenizer(
        ["Add one and one. Two. think"] * 10, FAMILY_TOKENIZERS["qwen3"], vocab_size=300
    )
    rows = [
        {"instruction": "Add one and one.", "output": "Two."},
        {"instruction": "Add one and one.", "output": "Two.", "vars": {"enable_thinking": True}},
    ]
    entry = {"file_name": "d.json", "columns": {"template_vars": "vars"}}
    write_registry(tmp_path, {"d": entry}, {"d.json": rows})
    recipe = recipe_for(tmp_path, tmp_path, train="d", template_vars={"enable_thinking": False})
    assert recipe.data.template_vars == {"enable_thinking": "false"}
    train, _, _ = build(recipe, tokenizer, get_template("qwen3"))
    off = tokenizer.decode(train[0]["input_ids"])
    empty_block = "<think>\n\n</think>\n\n"
    assert off.endswith(f"<|im_start|>assistant\n{empty_block}Two.<|im_end|>\n")
    assert trained(tokenizer, train[0]["labels"]) == "Two.<|im_end|>"  # the block belongs to the prompt
    assert trained(tokenizer, train[1]["labels"]) == f"{empty_block}Two.<|im_end|>"  # thinking on: trained

    write_registry(tmp_path, {"d": {"file_name": "d.json"}}, {"d.json": rows[:1]})
    wrong = recipe_for(tmp_path, tmp_path, train="d", template_vars={"enable_thinkin": False})
    with pytest.raises(UserError, match="has no variable 'enable_thinkin'"):
        build(wrong, tokenizer, get_template("qwen3"))
