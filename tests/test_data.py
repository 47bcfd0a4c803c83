"""Registry entries to tokenized examples: formats, filters, bad rows, label masks."""

from __future__ import annotations

import json

import pytest

from ftkit.config import load_recipe
from ftkit.data.formats import FORMATS, BadRow
from ftkit.data.pipeline import build_sft_data
from ftkit.data.registry import DatasetSpec, Registry
from ftkit.data.tokenize import IGNORE_INDEX, MaskOptions, encode_conversations
from ftkit.errors import UserError
from ftkit.templates import get_template
from tests.conftest import TEST_DATA

CHATML = get_template("chatml")


def recipe_for(tmp_path, dataset_dir, train="qa", **data):
    extra = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in data.items())
    path = tmp_path / "r.yaml"
    path.write_text(
        f"model: {{name_or_path: m, template: chatml}}\n"
        f"data:\n  dataset_dir: {dataset_dir}\n  train: {train}\n{extra}"
        f"train: {{output_dir: {tmp_path / 'out'}}}\n"
    )
    return load_recipe(path)


def trained_text(tokenizer, labels):
    return tokenizer.decode([t for t in labels if t != IGNORE_INDEX])


def test_alpaca_row_with_input_and_history():
    spec = DatasetSpec(name="x", file_name="f.json", columns={"history": "history"})
    example = FORMATS["alpaca"].convert(
        {"instruction": "Add.", "input": "1 and 2", "output": "3", "history": [["hi", "hello"]]}, spec
    )
    assert example == {
        "system": None,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "Add.\n1 and 2"},
            {"role": "assistant", "content": "3"},
        ],
    }


def test_numbers_are_text_to_the_model():
    example = FORMATS["alpaca"].convert(
        {"instruction": "2+2?", "output": 4}, DatasetSpec(name="x", file_name="f")
    )
    assert example["messages"][-1] == {"role": "assistant", "content": "4"}


def test_pairs_row_uses_format_strings_and_system():
    spec = DatasetSpec(
        name="x",
        file_name="f.csv",
        formatting="pairs",
        system="Be brief.",
        prompt_format="Paraphrase this: {a}",
        response_format="{b}",
    )
    assert FORMATS["pairs"].convert({"a": "One.", "b": "Uno."}, spec) == {
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Paraphrase this: One."},
            {"role": "assistant", "content": "Uno."},
        ],
    }


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


def test_registry_entry_without_usable_source(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"ms_hub_url": "org/x"}}))
    with pytest.raises(UserError, match="names only 'org/x', which ftkit does not load"):
        Registry(tmp_path).get("d")


def test_chatml_labels_train_only_the_answer_and_end_token(chatml_tokenizer):
    messages = [
        {"role": "user", "content": "What do bees make?"},
        {"role": "assistant", "content": "Bees make honey."},
    ]
    [encoded] = encode_conversations(
        chatml_tokenizer, CHATML, [{"system": "Be kind.", "messages": messages}], MaskOptions(max_length=256)
    )
    text = chatml_tokenizer.decode(encoded.input_ids)
    assert text == (
        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nWhat do bees make?<|im_end|>\n"
        "<|im_start|>assistant\nBees make honey.<|im_end|>\n"
    )
    assert trained_text(chatml_tokenizer, encoded.labels) == "Bees make honey.<|im_end|>"
    assert encoded.labels[-1] == IGNORE_INDEX  # the newline after <|im_end|> is never generated
    assert not encoded.truncated


def test_multi_turn_masks_every_answer_or_only_the_last(chatml_tokenizer):
    messages = [
        {"role": "user", "content": "Add the numbers."},
        {"role": "assistant", "content": "1 plus 1 is 2."},
        {"role": "user", "content": "And again?"},
        {"role": "assistant", "content": "2 plus 2 is 4."},
    ]
    example = [{"system": None, "messages": messages}]
    [every] = encode_conversations(chatml_tokenizer, CHATML, example, MaskOptions(256))
    [last] = encode_conversations(chatml_tokenizer, CHATML, example, MaskOptions(256, mask_history=True))
    [everything] = encode_conversations(
        chatml_tokenizer, CHATML, example, MaskOptions(256, train_on_prompt=True)
    )
    assert trained_text(chatml_tokenizer, every.labels) == "1 plus 1 is 2.<|im_end|>2 plus 2 is 4.<|im_end|>"
    assert trained_text(chatml_tokenizer, last.labels) == "2 plus 2 is 4.<|im_end|>"
    assert everything.labels == everything.input_ids


def test_truncation_keeps_the_start_and_is_reported(chatml_tokenizer):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "A week has seven days. " * 5},
    ]
    [full] = encode_conversations(chatml_tokenizer, CHATML, [{"messages": messages}], MaskOptions(512))
    prompt_length = next(i for i, label in enumerate(full.labels) if label != IGNORE_INDEX)
    limit = prompt_length + 3
    [cut] = encode_conversations(chatml_tokenizer, CHATML, [{"messages": messages}], MaskOptions(limit))
    assert cut.truncated and len(cut.input_ids) == limit
    assert cut.input_ids == full.input_ids[:limit] and cut.labels == full.labels[:limit]
    assert sum(label != IGNORE_INDEX for label in cut.labels) == 3
    [hopeless] = encode_conversations(
        chatml_tokenizer, CHATML, [{"messages": messages}], MaskOptions(prompt_length)
    )
    assert hopeless.problem == f"the prompt alone fills data.max_length ({prompt_length} tokens)"


def test_pipeline_filters_and_doubles_bidirectional_pairs(tmp_path, chatml_tokenizer):
    recipe = recipe_for(tmp_path, TEST_DATA, train="pairs_csv")
    train, evaluation, report = build_sft_data(recipe, chatml_tokenizer, CHATML)
    [dataset] = report.datasets
    assert (dataset.rows, dataset.filtered, dataset.examples) == (3, 1, 4)
    assert evaluation is None
    answers = [trained_text(chatml_tokenizer, labels) for labels in train["labels"]]
    assert answers == [
        "On the mat sat the cat.<|im_end|>",
        "The cat sat on the mat.<|im_end|>",
        "The whole day was rainy.<|im_end|>",
        "It rained all day.<|im_end|>",
    ]
    assert report.splits["train"].trained_tokens == sum(
        1 for labels in train["labels"] for label in labels if label != IGNORE_INDEX
    )


def _bad_dataset(tmp_path):
    rows = [
        {"instruction": "q1", "output": "a1"},
        {"instruction": "q2", "output": ""},
        {"instruction": "q3", "output": "a3"},
    ]
    (tmp_path / "bad.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"bad": {"file_name": "bad.json"}}))


def test_bad_row_is_an_error_naming_dataset_and_row(tmp_path, chatml_tokenizer):
    _bad_dataset(tmp_path)
    recipe = recipe_for(tmp_path, tmp_path, train="bad")
    with pytest.raises(UserError) as caught:
        build_sft_data(recipe, chatml_tokenizer, CHATML)
    assert str(caught.value).startswith("dataset 'bad' (bad.json), row 2: response column 'output' is empty.")
    assert "on_bad_rows: skip" in str(caught.value)


def test_bad_rows_skipped_and_counted(tmp_path, chatml_tokenizer):
    _bad_dataset(tmp_path)
    recipe = recipe_for(tmp_path, tmp_path, train="bad", on_bad_rows="skip")
    train, _, report = build_sft_data(recipe, chatml_tokenizer, CHATML)
    assert len(train) == 2
    assert dict(report.datasets[0].skipped) == {"response column 'output' is empty": 1}


def test_missing_column_is_reported_before_conversion(tmp_path, chatml_tokenizer):
    (tmp_path / "d.json").write_text(json.dumps([{"question": "q", "answer": "a"}]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.json"}}))
    with pytest.raises(
        UserError, match=r"has no column 'instruction', 'output'; its columns are question, answer"
    ):
        build_sft_data(recipe_for(tmp_path, tmp_path, train="d"), chatml_tokenizer, CHATML)


def test_val_size_splits_train_and_max_samples_limits(tmp_path, chatml_tokenizer):
    recipe = recipe_for(tmp_path, TEST_DATA, val_size=0.25, max_samples=20)
    train, evaluation, report = build_sft_data(recipe, chatml_tokenizer, CHATML)
    assert (len(train), len(evaluation)) == (15, 5)
    assert report.splits["eval"].examples == 5


def test_where_matching_nothing_is_an_error(tmp_path, chatml_tokenizer):
    (tmp_path / "d.csv").write_text("sentence1,sentence2,label\na,b,0\n")
    entry = {
        "file_name": "d.csv",
        "formatting": "pairs",
        "prompt_format": "{sentence1}",
        "response_format": "{sentence2}",
        "where": {"label": 1},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": entry}))
    with pytest.raises(UserError, match=r"no row matches where=\{'label': 1\} \(of 1 rows\)"):
        build_sft_data(recipe_for(tmp_path, tmp_path, train="d"), chatml_tokenizer, CHATML)


def test_every_row_skipped_is_an_error(tmp_path, chatml_tokenizer):
    (tmp_path / "bad.json").write_text(json.dumps([{"instruction": "q", "output": ""}]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"bad": {"file_name": "bad.json"}}))
    with pytest.raises(UserError, match="every row was skipped as bad"):
        build_sft_data(
            recipe_for(tmp_path, tmp_path, train="bad", on_bad_rows="skip"), chatml_tokenizer, CHATML
        )


def test_fields_the_format_ignores_are_errors(tmp_path, chatml_tokenizer):
    (tmp_path / "d.json").write_text(json.dumps([{"instruction": "q", "output": "a"}]))
    entry = {"file_name": "d.json", "columns": {"messages": "conversations"}, "prompt_format": "{x}"}
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": entry}))
    with pytest.raises(
        UserError, match=r"columns\.messages, prompt_format does not apply to formatting alpaca"
    ):
        build_sft_data(recipe_for(tmp_path, tmp_path, train="d"), chatml_tokenizer, CHATML)


def test_explicit_column_must_exist(tmp_path, chatml_tokenizer):
    (tmp_path / "d.json").write_text(json.dumps([{"instruction": "q", "output": "a"}]))
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"d": {"file_name": "d.json", "columns": {"system": "sys"}}})
    )
    with pytest.raises(UserError, match="has no column 'sys'"):
        build_sft_data(recipe_for(tmp_path, tmp_path, train="d"), chatml_tokenizer, CHATML)


def test_val_size_that_leaves_nothing_is_an_error(tmp_path, chatml_tokenizer):
    with pytest.raises(UserError, match="must leave at least one example on each side"):
        build_sft_data(recipe_for(tmp_path, TEST_DATA, val_size=0.999), chatml_tokenizer, CHATML)


def test_system_precedence_row_then_data_system_then_template(tmp_path, chatml_tokenizer):
    rows = [
        {"instruction": "q", "output": "a", "sys": "row system"},
        {"instruction": "q", "output": "a", "sys": ""},
    ]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"d": {"file_name": "d.json", "columns": {"system": "sys"}}})
    )
    train, _, _ = build_sft_data(
        recipe_for(tmp_path, tmp_path, train="d", system="recipe system"), chatml_tokenizer, CHATML
    )
    texts = [chatml_tokenizer.decode(ids) for ids in train["input_ids"]]
    assert texts[0].startswith("<|im_start|>system\nrow system<|im_end|>")
    assert texts[1].startswith("<|im_start|>system\nrecipe system<|im_end|>")
