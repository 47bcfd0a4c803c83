"""Run directories and atomic outputs: nothing half-written, nothing secret, nothing clobbered."""

from __future__ import annotations

import json

import pytest

from ftkit.atomic import atomic_directory, atomic_write_text
from ftkit.config import load_recipe
from ftkit.errors import UserError
from ftkit.infer import read_conversations
from ftkit.resume import plan_start, prepare_output_dir
from ftkit.rundir import RunRecord


def _recipe(tmp_path, *overrides):
    path = tmp_path / "r.yaml"
    path.write_text(
        f"model: {{name_or_path: m, template: chatml}}\ndata: {{train: qa}}\ntrain: {{output_dir: {tmp_path / 'out'}}}\n"
    )
    return load_recipe(path, list(overrides))


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "export"
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "model.safetensors").write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_only_with_force(tmp_path):
    target = tmp_path / "export"
    with atomic_directory(target) as staging:
        (staging / "a").write_text("1")
    with pytest.raises(UserError, match="pass --force"), atomic_directory(target):
        pass
    with atomic_directory(target, force=True) as staging:
        (staging / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_atomic_write_text(tmp_path):
    atomic_write_text(tmp_path / "x" / "f.txt", "hello")
    assert (tmp_path / "x" / "f.txt").read_text() == "hello" and len(list((tmp_path / "x").iterdir())) == 1


def test_run_record_redacts_secrets_and_records_user_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "secret-value-123")
    recipe = _recipe(tmp_path)
    record = RunRecord(recipe)
    record.fail(UserError("bad row with secret-value-123 in it"))
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "failed" and run["user_error"] is True
    assert "secret-value-123" not in (tmp_path / "out" / "run.json").read_text()
    assert (tmp_path / "out" / "recipe.yaml").is_file() and (
        tmp_path / "out" / "recipe.resolved.yaml"
    ).is_file()


def test_output_dir_guard(tmp_path):
    recipe = _recipe(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="is not empty and holds no ftkit run"):
        plan_start(recipe)
    with pytest.raises(UserError, match="is not empty and holds no ftkit run"):
        plan_start(_recipe(tmp_path, "train.resume_from_checkpoint=latest"))
    (out / "notes.txt").unlink()
    RunRecord(recipe).finish("completed")
    with pytest.raises(UserError, match="already holds a completed run"):
        plan_start(recipe)
    # A completed run is never resumed: that would replace its finished adapter.
    with pytest.raises(UserError, match="holds a completed run, so there is nothing to resume"):
        plan_start(_recipe(tmp_path, "train.resume_from_checkpoint=latest"))
    prepare_output_dir(plan_start(_recipe(tmp_path, "train.overwrite_output_dir=true")))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"prompt": "hi"}\nnot json\n', ":2: not valid JSON"),
        ('{"question": "hi"}\n', 'expected {"prompt": "..."}'),
        (
            '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n',
            "must end with a user",
        ),
        ("", "holds no prompts"),
    ],
)
def test_prompt_files_are_checked(tmp_path, content, problem):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(
        UserError,
        match=problem.replace("(", r"\(")
        .replace(")", r"\)")
        .replace("{", r"\{")
        .replace("}", r"\}")
        .replace(".", r"\."),
    ):
        read_conversations(path)


def test_missing_prompt_file(tmp_path):
    with pytest.raises(UserError, match="cannot read prompts"):
        read_conversations(tmp_path / "none.jsonl")
