"""Every recipe in recipes/ passes `ftkit check` (as on a CUDA machine: some need one) and trains two
steps with its model swapped for a tiny local one of the same kind (decoder-only, T5, BART or Switch)
and each registry entry reading a local copy of its hub schema (tests/data/hub_schemas), so that its
whole path runs: formats, label maps, mixtures, template, stage, adapter, quantization, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_DATA, qa_texts

RECIPES = sorted(path.name for path in (ROOT / "recipes").glob("*.yaml"))
SOURCE_KEYS = ("hf_hub_url", "subset", "split", "revision", "folder")


def test_there_is_a_recipe_per_seed_pipeline_and_task_family():
    assert len(RECIPES) >= 14


@pytest.fixture(scope="module")
def stand_in_registry(tmp_path_factory) -> Path:
    """data/dataset_info.json with every hub entry reading its schema copy, its rows repeated to 40."""
    registry = json.loads((ROOT / "data" / "dataset_info.json").read_text())
    folder = tmp_path_factory.mktemp("stand-in-data")
    entries = {}
    for name, entry in registry.items():
        if not entry.get("hf_hub_url"):
            entries[name] = {**entry, "file_name": str(ROOT / "data" / entry["file_name"])}
            continue
        copy = entry["hf_hub_url"].replace("/", "__") + (
            f"__{entry['subset']}" if entry.get("subset") else ""
        )
        rows = (TEST_DATA / "hub_schemas" / f"{copy}.jsonl").read_text().splitlines()
        target = folder / f"{copy}.jsonl"
        target.write_text("\n".join((rows * 40)[:40]) + "\n")
        entries[name] = {**{k: v for k, v in entry.items() if k not in SOURCE_KEYS}, "file_name": target.name}
        entries[name].pop("num_samples", None)
    (folder / "dataset_info.json").write_text(json.dumps(entries))
    return folder


@pytest.fixture(scope="module")
def stand_in_models(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    from ftkit.testing import (
        BART,
        CHATML,
        T5,
        save_tiny_model,
        tiny_bart_config,
        tiny_mixtral_config,
        tiny_t5_config,
        train_tokenizer,
    )

    root = tmp_path_factory.mktemp("stand-in-models")
    t5 = train_tokenizer(qa_texts(), T5, vocab_size=400)
    bart = train_tokenizer(qa_texts(), BART, vocab_size=400)
    chatml = train_tokenizer(qa_texts(), CHATML, vocab_size=400)
    return {
        "decoder": tiny_model_dir,
        "mixtral": save_tiny_model(root / "mixtral", chatml, tiny_mixtral_config(chatml), seed=0),
        "t5": save_tiny_model(root / "t5", t5, tiny_t5_config(t5), seed=0),
        "bart": save_tiny_model(root / "bart", bart, tiny_bart_config(bart), seed=0),
        "switch": save_tiny_model(root / "switch", t5, tiny_t5_config(t5, experts=4), seed=0),
    }


def stand_in_for(model: str) -> str:
    name = model.lower()
    return next((kind for kind in ("switch", "t5", "bart", "mixtral") if kind in name), "decoder")


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_checks_and_trains_two_steps_on_stand_ins(
    tmp_path, stand_in_registry, stand_in_models, capsys, name
):
    from ftkit.cli import main
    from ftkit.config import load_recipe

    path = ROOT / "recipes" / name
    header = path.read_text().splitlines()[0]
    assert header.startswith("# ") and len(header) > 40, "a recipe starts with what it trains and on what"
    assert main(["check", str(path), "--device", "cuda", "-q"]) == 0, capsys.readouterr().err[-2000:]
    recipe = load_recipe(path)
    model = stand_in_models[stand_in_for(recipe.model.name_or_path)]
    overrides = [
        f"model.name_or_path={model}",
        "model.add_template_tokens=true",
        f"data.dataset_dir={stand_in_registry}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"train.output_dir={tmp_path / 'run'}",
        "train.max_steps=2",
        "train.precision=auto",
        "logging.report_to=[]",
    ]
    if recipe.stage == "pt":  # the stand-in corpus is small: shorter blocks fill a batch
        overrides.append("data.max_length=128")
    if recipe.data.val_size is not None:
        overrides.append("data.val_size=0.25")
    if recipe.train.optim.startswith("paged_"):  # bitsandbytes pages optimizer states on CUDA only
        overrides.append("train.optim=adamw_8bit")
    assert main(["train", str(path), *overrides]) == 0, capsys.readouterr().err[-3000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "completed" and run["global_step"] == 2
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in entry for entry in history)
