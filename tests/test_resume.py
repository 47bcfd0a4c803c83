"""No finished model is lost, and a resume continues exactly the recorded run or refuses: the two
data-loss reports reproduced through the CLI, and the recipe and data compared on resume."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import yaml

from tests.conftest import TEST_DATA, run_cli
from tests.pause_at import kill, start_paused


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recipe_file(work: Path, base: Path, from_scratch: bool = False, **train: object) -> Path:
    data = work / "data"
    if not data.exists():
        shutil.copytree(TEST_DATA, data)
    recipe = {
        "stage": "sft",
        "model": {"name_or_path": str(base), "template": "chatml", "from_scratch": from_scratch},
        "adapter": {"type": "lora", "r": 4, "alpha": 8},
        "data": {"dataset_dir": str(data), "train": "qa", "max_length": 64},
        "train": {
            "output_dir": str(work / "run"),
            "per_device_train_batch_size": 4,
            "logging_steps": 1,
            **train,
        },
    }
    path = work / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_resuming_a_completed_run_without_checkpoints_keeps_its_adapter(tmp_path, tiny_model_dir):
    recipe = recipe_file(tmp_path, tiny_model_dir, max_steps=3, save_strategy="no")
    assert run_cli("train", str(recipe)).returncode == 0
    run = tmp_path / "run"
    before = {path.name: digest(path) for path in run.iterdir() if path.is_file()}

    for command in ("check", "train"):
        result = run_cli(command, str(recipe), "train.resume_from_checkpoint=latest")
        assert result.returncode == 2, result.stderr[-2000:]
        assert f"{run} holds a completed run, so there is nothing to resume" in result.stderr
        assert f"adapter.init_from={run}" in result.stderr and "overwrite_output_dir=true" in result.stderr
    # The completed run's own message no longer suggests resuming it.
    result = run_cli("train", str(recipe))
    assert result.returncode == 2 and "resume_from_checkpoint" not in result.stderr
    assert {path.name: digest(path) for path in run.iterdir() if path.is_file()} == before


def test_a_from_scratch_base_is_reused_on_resume_and_the_recipe_is_compared(tmp_path, tiny_model_dir):
    recipe = recipe_file(tmp_path, tiny_model_dir, from_scratch=True, max_steps=4, save_steps=2)
    run = tmp_path / "run"
    kill(
        start_paused(
            tmp_path, "transformers.trainer:Trainer.training_step", 3, "before", "train", str(recipe)
        )
    )
    base = digest(run / "base_model" / "model.safetensors")
    recorded = (run / "run.json").read_bytes()

    refusals = {
        "train.seed=7": "train.seed (42 -> 7)",
        "data.max_length=32": "data.max_length (64 -> 32)",
        "adapter.r=8": "adapter.r (4 -> 8)",
        "train.learning_rate=0.1": "train.learning_rate (0.0002 -> 0.1)",
    }
    for override, listed in refusals.items():
        result = run_cli("train", str(recipe), "train.resume_from_checkpoint=latest", override)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "differs from the run recorded" in result.stderr and listed in result.stderr
    original = (tmp_path / "data" / "qa.json").read_bytes()
    (tmp_path / "data" / "qa.json").write_text(json.dumps(json.loads(original)[:-1]))
    result = run_cli("train", str(recipe), "train.resume_from_checkpoint=latest")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the training data changed since the recorded run (dataset qa differ)" in result.stderr
    (tmp_path / "data" / "qa.json").write_bytes(original)
    assert (run / "run.json").read_bytes() == recorded  # refused before anything was written
    assert digest(run / "base_model" / "model.safetensors") == base

    result = run_cli("train", str(recipe), "train.resume_from_checkpoint=latest", "train.logging_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming with changed train.logging_steps (1 -> 2)\n" in result.stderr
    assert "loading the base the run saved" in result.stderr
    assert digest(run / "base_model" / "model.safetensors") == base
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_a_run_killed_before_its_first_checkpoint_never_blocks_the_rerun(tmp_path, tiny_model_dir):
    recipe = recipe_file(tmp_path, tiny_model_dir, max_steps=3, save_steps=100)
    kill(
        start_paused(
            tmp_path, "transformers.trainer:Trainer.training_step", 2, "before", "train", str(recipe)
        )
    )
    result = run_cli("train", str(recipe), "train.resume_from_checkpoint=latest")
    assert result.returncode == 2
    assert (
        "the killed run in" in result.stderr
        and "saved no complete checkpoint, so there is nothing to resume" in result.stderr
    )
    result = run_cli("train", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replacing the killed run in" in result.stderr and "before its first checkpoint" in result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "completed"


def test_a_run_recorded_before_new_settings_and_with_every_stage_section_still_resumes(
    tmp_path, tiny_model_dir
):
    """Older ftkit versions wrote every stage's section into recipe.resolved.yaml, and settings added since
    are absent there: neither is a change that refuses the resume."""
    import yaml

    from ftkit.config import load_recipe
    from ftkit.resume import _comparable, _flatten, recipe_changes

    recipe = load_recipe(recipe_file(tmp_path, tiny_model_dir))
    recorded = recipe.model_dump(mode="json")  # every stage's section, as older versions wrote
    del recorded["adapter"]["loftq_iterations"]  # a setting added later
    current = _flatten(recipe.resolved_values())
    assert (
        recipe_changes(_comparable(yaml.safe_load(yaml.safe_dump(recorded)), current, recipe), current) == []
    )
    changed = load_recipe(
        recipe_file(tmp_path, tiny_model_dir),
        ["adapter.loftq_iterations=3", "adapter.init=loftq", "model.quantization.bits=4"],
    )
    current = _flatten(changed.resolved_values())
    keys = {change.key for change in recipe_changes(_comparable(recorded, current, changed), current)}
    assert {"adapter.loftq_iterations", "adapter.init", "model.quantization.bits"} <= keys
    assert "model.quantization.quant_type" in keys  # a section the recorded run did not have at all
