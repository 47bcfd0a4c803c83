"""Realistic mistakes, each through the CLI (`ftkit.cli.main`, as the `ftkit` command runs it): exit code 2,
a message naming the file, key or row and the fix, no traceback, and nothing written.

Every case is checked before any weights load: the checks that used to come after the model loaded
(rewards, the resume checkpoint, template tokens, precision, local paths) are part of the set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_DATA

SECRET = "sk-ftkit-bad-input-7f3a9c1e5b"


@dataclass
class World:
    """A tmp folder with a data copy, a tiny model, and a recipe that is valid until a case breaks it."""

    root: Path
    model: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def out(self) -> Path:
        return self.root / "run"

    def recipe(self, stage: str = "sft", **sections: dict) -> dict:
        recipe: dict = {
            "stage": stage,
            "model": {"name_or_path": str(self.model), "template": "chatml"},
            "adapter": {"type": "lora", "r": 4, "alpha": 8},
            "data": {
                "dataset_dir": str(self.data),
                "train": "qa",
                "max_length": 64,
                "cache_dir": str(self.root / "cache"),
            },
            "train": {"output_dir": str(self.out), "max_steps": 2, "per_device_train_batch_size": 2},
        }
        if stage == "grpo":
            recipe["grpo"] = {
                "reward_funcs": ["exact_match"],
                "num_generations": 2,
                "max_completion_length": 4,
            }
        for section, values in sections.items():
            recipe[section] = {**recipe.get(section, {}), **values} if isinstance(values, dict) else values
        return recipe

    def write(self, recipe: dict, name: str = "recipe.yaml") -> str:
        path = self.root / name
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return str(path)

    def register(
        self, name: str, entry: dict, content: bytes | str | None = None, file_name: str | None = None
    ) -> None:
        registry = json.loads((self.data / "dataset_info.json").read_text())
        registry[name] = entry
        (self.data / "dataset_info.json").write_text(json.dumps(registry))
        if content is not None:
            target = self.data / (file_name or entry["file_name"])
            target.write_bytes(content if isinstance(content, bytes) else content.encode())

    def fake_run(
        self,
        status: str = "completed",
        checkpoints: tuple[int, ...] = (),
        pid: int | None = None,
        **recipe_changes: dict,
    ) -> None:
        """An output_dir as a run leaves it: run.json, the resolved recipe, checkpoints, an adapter."""
        from ftkit.config import dump_recipe, load_recipe

        self.out.mkdir()
        recipe = load_recipe(self.write(self.recipe(**recipe_changes), "recorded.yaml"))
        (self.out / "recipe.resolved.yaml").write_text(dump_recipe(recipe))
        run = {"status": status, "stage": "sft", "pid": pid or 2**22 + 17, "host": os.uname().nodename}
        (self.out / "run.json").write_text(json.dumps(run))
        if status == "completed":
            (self.out / "adapter_model.safetensors").write_bytes(b"weights")
        for step in checkpoints:
            folder = self.out / f"checkpoint-{step}"
            folder.mkdir()
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def _grpo_reward(world: World, source: str, name: str) -> list:
    (world.root / f"{name}.py").write_text(source)
    return ["train", world.write(world.recipe("grpo", grpo={"reward_funcs": [{"name": f"{name}:score"}]}))]


Case = Callable[[World], list[str]]
CASES: dict[str, tuple[Case, str]] = {}


def case(name: str, expected: str) -> Callable[[Case], Case]:
    def register(function: Case) -> Case:
        CASES[name] = (function, expected)
        return function

    return register


# ------------------------------------------------------------------ finished runs and resuming
@case("resume a completed run", "holds a completed run, so there is nothing to resume")
def _(w):
    w.fake_run("completed")
    return ["train", w.write(w.recipe(train={"resume_from_checkpoint": "latest"}))]


@case(
    "resume a failed run without checkpoints", "saved no complete checkpoint, so there is nothing to resume"
)
def _(w):
    w.fake_run("failed")
    return ["train", w.write(w.recipe(train={"resume_from_checkpoint": "latest"}))]


@case("resume with another seed", "train.seed (42 -> 3)")
def _(w):
    w.fake_run("killed", checkpoints=(2,))
    return ["train", w.write(w.recipe(train={"resume_from_checkpoint": "latest", "seed": 3}))]


@case("resume with another max_length", "data.max_length (64 -> 128)")
def _(w):
    w.fake_run("failed", checkpoints=(2,))
    return ["train", w.write(w.recipe(train={"resume_from_checkpoint": "latest"}, data={"max_length": 128}))]


@case("resume with another model", "model.name_or_path")
def _(w):
    w.fake_run("failed", checkpoints=(2,))
    other = w.root / "other-model"
    shutil.copytree(w.model, other)
    return [
        "train",
        w.write(w.recipe(train={"resume_from_checkpoint": "latest"}, model={"name_or_path": str(other)})),
    ]


@case("resume a checkpoint cut short", "is not a complete checkpoint")
def _(w):
    w.fake_run("killed", checkpoints=(2,))
    (w.out / "checkpoint-4").mkdir()
    return ["train", w.write(w.recipe(train={"resume_from_checkpoint": str(w.out / "checkpoint-4")}))]


@case("resume a checkpoint that does not exist", "no such checkpoint folder")
def _(w):
    return ["train", w.write(w.recipe(train={"resume_from_checkpoint": str(w.root / "checkpoint-9")}))]


@case("resume a run that is still training", f"still training (process {os.getpid()}")
def _(w):
    w.fake_run("running", checkpoints=(2,), pid=os.getpid())
    return ["train", w.write(w.recipe(train={"resume_from_checkpoint": "latest"}))]


@case("resume a from-scratch run without its base", "base_model, which is missing or incomplete")
def _(w):
    w.fake_run("killed", checkpoints=(2,), model={"from_scratch": True})
    return [
        "train",
        w.write(w.recipe(train={"resume_from_checkpoint": "latest"}, model={"from_scratch": True})),
    ]


@case("resume another run's checkpoint into a used folder", "needs that folder empty or new")
def _(w):
    w.fake_run("failed", checkpoints=(2,))
    elsewhere = w.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("mine")
    return [
        "train",
        w.write(
            w.recipe(
                train={"output_dir": str(elsewhere), "resume_from_checkpoint": str(w.out / "checkpoint-2")}
            )
        ),
    ]


@case("train over a completed run", "already holds a completed run")
def _(w):
    w.fake_run("completed")
    return ["train", w.write(w.recipe())]


@case("train over a killed run with checkpoints", "continue it with train.resume_from_checkpoint=latest")
def _(w):
    w.fake_run("killed", checkpoints=(2,))
    return ["train", w.write(w.recipe())]


@case("overwrite a run that is still training", "still training")
def _(w):
    w.fake_run("running", pid=os.getpid())
    return ["train", w.write(w.recipe(train={"overwrite_output_dir": True}))]


# ------------------------------------------------------------------ output folders
@case("output_dir is a file", "is a file; give a folder")
def _(w):
    (w.root / "run.txt").write_text("x")
    return ["train", w.write(w.recipe(train={"output_dir": str(w.root / "run.txt")}))]


@case("output_dir under a file", "is a file, so the folder cannot be created")
def _(w):
    (w.root / "plain").write_text("x")
    return ["train", w.write(w.recipe(train={"output_dir": str(w.root / "plain" / "run")}))]


@case("output_dir not writable", "is not writable")
def _(w):
    w.out.mkdir()
    read_only(w.out)
    return ["train", w.write(w.recipe())]


@case("output_dir inside a folder that is not writable", "cannot be created")
def _(w):
    locked = w.root / "locked"
    locked.mkdir()
    read_only(locked)
    return ["train", w.write(w.recipe(train={"output_dir": str(locked / "run")}))]


@case("output_dir holds something else", "is not empty and holds no ftkit run")
def _(w):
    w.out.mkdir()
    (w.out / "notes.txt").write_text("mine")
    return ["check", w.write(w.recipe())]


@case("data cache folder not writable", "data.cache_dir")
def _(w):
    (w.root / "cache").mkdir()
    read_only(w.root / "cache")
    return ["train", w.write(w.recipe())]


# ------------------------------------------------------------------ data files
@case("empty data file", "is empty (0 bytes)")
def _(w):
    w.register("blank", {"file_name": "blank.json"}, b"")
    return ["train", w.write(w.recipe(data={"train": "blank"}))]


@case("whitespace-only data file", "holds only whitespace")
def _(w):
    w.register("spaces", {"file_name": "spaces.jsonl"}, b"\n  \n")
    return ["train", w.write(w.recipe(data={"train": "spaces"}))]


@case("data file in Latin-1 (json)", "is not UTF-8 text (byte 0xe9 at offset 19, line 1)")
def _(w):
    w.register("latin", {"file_name": "latin.json"}, b'[{"instruction": "h\xe9", "output": "x"}]')
    return ["train", w.write(w.recipe(data={"train": "latin"}))]


@case("data file in Latin-1 (csv, line 3)", "line 3")
def _(w):
    w.register(
        "latin_csv",
        {"file_name": "latin.csv", "formatting": "pairs", "prompt_format": "{a}", "response_format": "{b}"},
        b"a,b\nfine,ok\ncaf\xe9,x\n",
    )
    return ["train", w.write(w.recipe(data={"train": "latin_csv"}))]


@case("corpus in Latin-1 (txt)", "is not UTF-8 text")
def _(w):
    w.register("latin_txt", {"file_name": "latin.txt", "formatting": "text"}, b"caf\xe9\n")
    return ["train", w.write(w.recipe("pt", data={"train": "latin_txt"}, model={"template": None}))]


@case("data file missing", "does not exist")
def _(w):
    w.register("gone", {"file_name": "gone.json"})
    return ["train", w.write(w.recipe(data={"train": "gone"}))]


@case("data folder without data files", "holds no")
def _(w):
    (w.data / "empty_folder").mkdir()
    w.register("folder", {"file_name": "empty_folder"})
    return ["train", w.write(w.recipe(data={"train": "folder"}))]


@case("eval data file empty", "is empty (0 bytes)")
def _(w):
    w.register("blank_eval", {"file_name": "blank_eval.json"}, b"")
    return ["check", w.write(w.recipe(data={"eval": "blank_eval"}))]


@case("no registry in dataset_dir", "no dataset registry")
def _(w):
    (w.root / "nodata").mkdir()
    return ["train", w.write(w.recipe(data={"dataset_dir": str(w.root / "nodata")}))]


@case("registry not JSON", "not valid JSON")
def _(w):
    (w.data / "dataset_info.json").write_text("{oops")
    return ["train", w.write(w.recipe())]


@case("dataset not registered", "did you mean qa?")
def _(w):
    return ["train", w.write(w.recipe(data={"train": "qa_"}))]


@case("registry field the format ignores", "does not apply to formatting alpaca")
def _(w):
    w.register("odd", {"file_name": "qa.json", "prompt_format": "{x}"})
    return ["train", w.write(w.recipe(data={"train": "odd"}))]


# ------------------------------------------------------------------ model, tokenizer, template, device
@case("local model path missing", "no such local folder")
def _(w):
    (w.root / "outputs").mkdir()
    return ["train", w.write(w.recipe(model={"name_or_path": "outputs/pt-from-scratch"}))]


@case("relative model path missing", "no such local folder")
def _(w):
    return ["check", w.write(w.recipe(model={"name_or_path": "./models/tiny"}))]


@case("model folder without config.json", "holds no config.json")
def _(w):
    (w.root / "not-a-model").mkdir()
    return ["train", w.write(w.recipe(model={"name_or_path": str(w.root / "not-a-model")}))]


@case("model folder without weights", "no weights")
def _(w):
    folder = w.root / "config-only"
    folder.mkdir()
    shutil.copy(w.model / "config.json", folder)
    return ["train", w.write(w.recipe(model={"name_or_path": str(folder)}))]


@case("model with pickle weights only", "model.allow_pickle: true")
def _(w):
    folder = w.root / "pickled"
    folder.mkdir()
    shutil.copy(w.model / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    return ["train", w.write(w.recipe(model={"name_or_path": str(folder)}))]


@case("tokenizer path missing", "model.tokenizer")
def _(w):
    return ["train", w.write(w.recipe(model={"tokenizer": str(w.root / "tok")}))]


@case("template of another model family", "does not have as single tokens")
def _(w):
    return ["train", w.write(w.recipe(model={"template": "llama3"}))]


@case("tokenizer template without a chat template", "has no chat_template")
def _(w):
    folder = w.root / "no-template"
    shutil.copytree(w.model, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return ["train", w.write(w.recipe(model={"name_or_path": str(folder), "template": "tokenizer"}))]


@case("unknown template", "unknown chat template 'chatm'")
def _(w):
    return ["train", w.write(w.recipe(model={"template": "chatm"}))]


@case("fp16 on a machine without a GPU", "train.precision is fp16, which needs a CUDA GPU")
def _(w):
    return ["train", w.write(w.recipe(train={"precision": "fp16"}))]


@case("device cuda without a GPU", "no CUDA GPU is visible")
def _(w):
    return ["check", w.write(w.recipe(model={"device": "cuda"}))]


@case("flash attention on a CPU", "needs a CUDA GPU")
def _(w):
    return ["train", w.write(w.recipe(model={"attn_implementation": "flash_attention_2"}))]


@case("adapter to continue missing", "adapter.init_from")
def _(w):
    return ["train", w.write(w.recipe(adapter={"init_from": str(w.root / "old-adapter")}))]


# ------------------------------------------------------------------ rewards
@case("reward module that does not import", "cannot import 'no_such_rewards'")
def _(w):
    return ["train", w.write(w.recipe("grpo", grpo={"reward_funcs": ["no_such_rewards:score"]}))]


@case("reward function missing", "has no function 'score'")
def _(w):
    return _grpo_reward(w, "def other(completions, **kwargs):\n    return [0.0]\n", "rewards_missing")


@case("reward without **kwargs", "must take **kwargs")
def _(w):
    return _grpo_reward(w, "def score(completions):\n    return [0.0]\n", "rewards_strict")


@case("reward needing a param", "needs threshold")
def _(w):
    return _grpo_reward(
        w, "def score(completions, threshold, **kwargs):\n    return [0.0]\n", "rewards_param"
    )


@case("reward module failing on import", "importing 'rewards_broken' failed: ZeroDivisionError")
def _(w):
    return _grpo_reward(w, "x = 1 / 0\n", "rewards_broken")


@case("unknown built-in reward", "did you mean exact_match?")
def _(w):
    return ["train", w.write(w.recipe("grpo", grpo={"reward_funcs": ["exact_mach"]}))]


@case("reward model missing", "grpo.reward_funcs[0].model")
def _(w):
    return ["train", w.write(w.recipe("grpo", grpo={"reward_funcs": [{"model": str(w.root / "rm")}]}))]


# ------------------------------------------------------------------ recipe files
@case("DeepSpeed config missing", "is neither a preset")
def _(w):
    return ["train", w.write(w.recipe(distributed={"deepspeed": str(w.root / "ds.json")}))]


@case("DeepSpeed config not JSON", "not valid JSON")
def _(w):
    (w.root / "ds.json").write_text("{stage: 2")
    return ["train", w.write(w.recipe(distributed={"deepspeed": str(w.root / "ds.json")}))]


@case("base recipe missing", "base recipe not found")
def _(w):
    return ["train", w.write({"base": "missing.yaml", **w.recipe()})]


@case("base recipe not YAML", "not valid YAML")
def _(w):
    (w.root / "base.yaml").write_text("model: [unclosed\n")
    return ["check", w.write({"base": "base.yaml", **w.recipe()})]


@case("misspelled key", "unknown key train.learnig_rate (did you mean learning_rate?)")
def _(w):
    return ["train", w.write(w.recipe(train={"learnig_rate": 1e-4}))]


@case("secret in a key of the wrong type", "train.seed")
def _(w):
    return ["train", w.write(w.recipe(train={"seed": "${oc.env:FTKIT_TEST_API_KEY}"}))]


# ------------------------------------------------------------------ export
@case("export a truncated adapter", "is truncated or damaged")
def _(w):
    adapter = w.root / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00{}")
    return ["export", "--base", str(w.model), "--adapter", str(adapter), "--out", str(w.root / "merged")]


@case("export a folder without an adapter", "holds no LoRA adapter")
def _(w):
    (w.root / "adapter").mkdir()
    return [
        "export",
        "--base",
        str(w.model),
        "--adapter",
        str(w.root / "adapter"),
        "--out",
        str(w.root / "merged"),
    ]


@case("export a run that did not finish", "not completed")
def _(w):
    w.fake_run("failed", checkpoints=(2,))
    (w.out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    shutil.copy(w.model / "model.safetensors", w.out / "adapter_model.safetensors")
    return ["export", "--base", str(w.model), "--adapter", str(w.out), "--out", str(w.root / "merged")]


@case("export onto a file", "is a file")
def _(w):
    (w.root / "merged").write_text("x")
    return ["export", "--base", str(w.model), "--adapter", str(w.root), "--out", str(w.root / "merged")]


def read_only(path: Path) -> None:
    """Make a folder unwritable even for root (whom permission bits do not stop): immutable."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o555)


def _unlock(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_dir():
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)
            path.chmod(0o755)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def world(tmp_path, tiny_model_dir, monkeypatch):
    shutil.copytree(TEST_DATA, tmp_path / "data")
    monkeypatch.syspath_prepend(str(tmp_path))  # reward modules written by the cases
    monkeypatch.setattr("sys.dont_write_bytecode", True)  # importing them must not write __pycache__
    monkeypatch.setenv("FTKIT_TEST_API_KEY", SECRET)
    monkeypatch.chdir(tmp_path)  # relative paths in a recipe start from the working directory
    yield World(tmp_path, tiny_model_dir)
    _unlock(tmp_path)


def test_there_are_at_least_45_cases():
    assert len(CASES) >= 45


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_its_message_and_writes_nothing(name, world, capsys):
    from ftkit.cli import main

    build, expected = CASES[name]
    args = build(world)
    before = _snapshot(world.root)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert "Traceback" not in err and SECRET not in err
    assert _snapshot(world.root) == before, "something was written"
