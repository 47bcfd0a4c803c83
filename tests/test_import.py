"""`ftkit import llamafactory`: every LLaMA-Factory example config (tests/data/llamafactory_examples, copied
from its repository) that uses what ftkit has becomes a recipe that passes `ftkit check`; the others are
refused with the reason, and every key is either carried over or noted."""

from __future__ import annotations

import json

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


# axolotl: configs written in axolotl's schema (tests/data/axolotl_examples); their inline datasets become
# a registry beside the recipe, and every row format converts.
AXOLOTL = TEST_DATA / "axolotl_examples"
AXOLOTL_CONFIGS = {
    # config: (stage, registry entry of its first dataset without file_name, text the preview shows)
    "llama3_lora_chat.yml": (
        "sft",
        {
            "formatting": "openai",
            "columns": {"messages": "messages"},
            "tags": {"role_tag": "role", "content_tag": "content"},
        },
        "[[blue<|eot_id|>]]",
    ),
    "qwen_full_sharegpt.yml": (
        "sft",
        {
            "formatting": "openai",
            "columns": {"messages": "conversations"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        },
        "[[You are welcome.<|im_end|>]]",
    ),
    "mistral_qlora_alpaca.yml": ("sft", {"formatting": "alpaca"}, "[[Paris<|im_end|>]]"),
    "completion_pt.yml": (
        "pt",
        {"formatting": "text", "columns": {"text": "text"}},
        "[[Here is a fact: the capital",
    ),
    "dpo_intel.yml": (
        "dpo",
        {
            "formatting": "alpaca",
            "ranking": True,
            "columns": {"prompt": "question", "chosen": "chosen", "rejected": "rejected", "system": "system"},
            "split": "train",
        },
        "CHOSEN: Paris",
    ),
    "kto_ultra.yml": (
        "kto",
        {
            "formatting": "alpaca",
            "columns": {"prompt": "prompt", "response": "completion", "kto_tag": "label"},
        },
        "ANSWER (desirable): Paris",
    ),
    "orpo_prompt_pairs.yml": (
        "orpo",
        {
            "formatting": "alpaca",
            "ranking": True,
            "columns": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"},
        },
        "CHOSEN:  Paris</s>",
    ),
}


def test_every_axolotl_config_is_accounted_for():
    assert sorted([*AXOLOTL_CONFIGS, "input_output.yml"]) == sorted(p.name for p in AXOLOTL.glob("*.yml"))


@pytest.mark.parametrize("name", sorted(AXOLOTL_CONFIGS))
def test_axolotl_config_imports_to_a_recipe_whose_rows_convert(tmp_path, tiny_model_dir, capsys, name):
    from ftkit.cli import main
    from ftkit.importers.axolotl import import_config

    stage, entry, shown = AXOLOTL_CONFIGS[name]
    source, recipe = AXOLOTL / name, tmp_path / "recipes" / "imported.yaml"
    assert main(["import", "axolotl", str(source), "-o", str(recipe)]) == 0
    written = yaml.safe_load(recipe.read_text())
    conversion = import_config(source)
    noted = {note.split(":")[0].split("[")[0].split(".")[0] for note in conversion.notes}
    for key in yaml.safe_load(source.read_text()):
        assert key in conversion.converted or key in noted, key
    assert written["stage"] == stage
    assert written["data"]["dataset_dir"] == str(tmp_path / "recipes" / "imported_data")
    registry = json.loads((tmp_path / "recipes" / "imported_data" / "dataset_info.json").read_text())
    first = registry[written["data"]["train"][0]]
    assert (tmp_path / "recipes" / "imported_data" / first.pop("file_name")).is_file()
    assert first == entry
    foreign = written["model"].get("template") not in (None, "tokenizer", "chatml")
    stand_in = [
        f"model.name_or_path={tiny_model_dir}",
        "model.attn_implementation=auto",
        *(["model.add_template_tokens=true"] if foreign else []),
        f"train.output_dir={tmp_path / 'out'}",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    capsys.readouterr()
    assert main(["check", str(recipe), *stand_in, "-q"]) == 0, capsys.readouterr().err[-2000:]
    assert main(["data", "preview", str(recipe), *stand_in, "-n", "1"]) == 0
    assert shown in capsys.readouterr().out


def test_axolotl_llama3_lora_settings_carry_over(tmp_path):
    from ftkit.importers.axolotl import import_config

    recipe = import_config(AXOLOTL / "llama3_lora_chat.yml").recipe
    assert recipe["model"] == {
        "name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
        "quantization": {"bits": 8},
        "template": "llama3",
        "attn_implementation": "flash_attention_2",
    }
    assert recipe["adapter"] == {
        "type": "lora",
        "r": 16,
        "alpha": 32,
        "dropout": 0.05,
        "target_modules": "all-linear",
    }
    assert recipe["data"]["val_size"] == 0.25 and recipe["data"]["max_length"] == 512
    assert recipe["train"]["optim"] == "adamw_8bit" and recipe["train"]["save_strategy"] == "epoch"
    assert recipe["logging"] == {"report_to": ["wandb"], "project": "chat-lora"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["input_output.yml", "-o", "r.yaml"],
            "type input_output: its segments carry their own train/mask flags",
        ),
        (["llama3_lora_chat.yml"], "declares its datasets inline: give -o RECIPE.yaml"),
    ],
)
def test_axolotl_configs_ftkit_cannot_take_are_refused(tmp_path, capsys, args, message):
    from ftkit.cli import main

    config, *rest = args
    rest = [str(tmp_path / item) if item.endswith(".yaml") else item for item in rest]
    assert main(["import", "axolotl", str(AXOLOTL / config), *rest]) == 2
    assert message in capsys.readouterr().err
