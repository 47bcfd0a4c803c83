"""`ftkit import llamafactory`: every LLaMA-Factory example config (tests/data/llamafactory_examples, copied
from its repository) that uses what ftkit has becomes a recipe that passes `ftkit check`; the others are
refused with the reason, and every key is either carried over or noted."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import TEST_DATA, run_cli

EXAMPLES = TEST_DATA / "llamafactory_examples"
TRAINING = sorted(
    str(path.relative_to(EXAMPLES))
    for path in EXAMPLES.rglob("*.yaml")
    if path.parts[-2] in ("train_lora", "train_qlora", "train_full", "galore", "pissa", "llama_pro")
)
NOT_TRAINING = {
    "merge_lora/qwen3_lora_sft.yaml": "not a training config (export_dir): a merge config",
    "inference/qwen3_lora_sft.yaml": "not a training config (infer_backend): an inference config",
    "accelerate/fsdp_config.yaml": "not a LLaMA-Factory training config: it has no stage",
}


def test_every_example_is_accounted_for():
    assert len(TRAINING) + len(NOT_TRAINING) == len(list(EXAMPLES.rglob("*.yaml"))) == 12


@pytest.mark.parametrize("name", TRAINING)
def test_training_example_imports_to_a_recipe_that_passes_check(tmp_path, tiny_model_dir, name):
    source = EXAMPLES / name
    recipe = tmp_path / "recipe.yaml"
    result = run_cli("import", "llamafactory", str(source), "-o", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    from ftkit.importers.llamafactory import import_config

    conversion = import_config(source)
    noted = {note.split(":")[0] for note in conversion.notes}
    for key in yaml.safe_load(source.read_text()):  # converted by a declared rule, or noted
        assert key in conversion.converted or key in noted, key
    assert "\n".join(f"#   {note}" for note in conversion.notes) in recipe.read_text()
    # Local stand-ins for the hub model and LLaMA-Factory's data folder; the stand-in's ChatML tokenizer
    # learns another family's template markers.
    foreign = conversion.recipe["model"].get("template") not in (None, "tokenizer", "chatml")
    checked = run_cli(
        "check",
        str(recipe),
        f"model.name_or_path={tiny_model_dir}",
        *(["model.add_template_tokens=true"] if foreign else []),
        f"data.dataset_dir={EXAMPLES / 'data'}",
        f"train.output_dir={tmp_path / 'out'}",
        "-q",
    )
    assert checked.returncode == 0, checked.stderr[-3000:]


@pytest.mark.parametrize(("name", "reason"), sorted(NOT_TRAINING.items()))
def test_other_configs_are_refused_with_the_reason(name, reason):
    result = run_cli("import", "llamafactory", str(EXAMPLES / name))
    assert result.returncode == 2 and reason in result.stderr


def test_conversions_reproduce_llamafactory_behavior():
    from ftkit.importers.llamafactory import convert

    dpo = convert(
        {
            "stage": "dpo",
            "finetuning_type": "lora",
            "lora_rank": 16,
            "pref_beta": 0.2,
            "pref_loss": "simpo",
            "simpo_gamma": 1.0,
            "dataset": "dpo_en_demo",
            "template": "llama3",
            "deepspeed": "examples/deepspeed/ds_z3_config.json",
            "quantization_bit": 4,
            "neat_packing": True,
            "report_to": "swanlab",
        }
    )
    recipe = dpo.recipe
    assert recipe["stage"] == "simpo" and recipe["simpo"] == {"beta": 0.2, "gamma": 1.0}
    assert recipe["adapter"]["alpha"] == 32 and recipe["adapter"]["dropout"] == 0.0
    assert recipe["model"] == {"template": "llama3", "quantization": {"bits": 4}}
    assert recipe["distributed"]["deepspeed"] == "zero3" and recipe["data"]["packing"] is True
    assert recipe["train"]["gradient_checkpointing"] is True
    notes = "\n".join(dpo.notes)
    for expected in (
        "dpo with pref_loss: simpo is ftkit's stage simpo",
        "neat packing",
        "swanlab not carried over",
        "2 x lora_rank = 32",
    ):
        assert expected in notes, expected
    ppo = run_cli_convert({"stage": "ppo"})
    assert "ftkit has no stage ppo" in ppo


def run_cli_convert(config: dict) -> str:
    from ftkit.errors import UserError
    from ftkit.importers.llamafactory import convert

    with pytest.raises(UserError) as caught:
        convert(config)
    return str(caught.value)
