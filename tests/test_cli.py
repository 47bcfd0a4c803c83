"""The ftkit command as a user meets it: exit codes, messages, lazy imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftkit import __version__
from ftkit.cli import main
from tests.conftest import ROOT, run_cli

TYPO_RECIPE = """\
model: {name_or_path: some/model, template: chatml}
data: {train: qa}
train:
  output_dir: {out}
  learnig_rate: 1.0e-4
"""


def _heavy_modules_after(code: str) -> list[str]:
    probe = textwrap.dedent(
        f"""
        import sys
        from ftkit.cli import main
        try:
            {code}
        except SystemExit:
            pass
        print("MODULES=" + ",".join(m for m in ("torch", "transformers", "datasets", "peft", "trl") if m in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("MODULES="))
    return [m for m in line.removeprefix("MODULES=").split(",") if m]


def test_version_and_help_do_not_import_torch():
    assert _heavy_modules_after("main(['--version'])") == []
    assert _heavy_modules_after("main(['--help'])") == []
    assert _heavy_modules_after("main(['train', '--help'])") == []


def test_check_does_not_import_torch():
    assert _heavy_modules_after("main(['check', 'recipes/llama32_3b_paraphrase.yaml', '-q'])") == []
    assert _heavy_modules_after("main(['check', 'examples/quickstart.yaml', '-q'])") == []


def test_version_output(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"ftkit {__version__}"


@pytest.mark.parametrize("command", ["train", "check"])
def test_typo_exits_2_with_did_you_mean_and_writes_nothing(tmp_path, command):
    out = tmp_path / "run"
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(TYPO_RECIPE.replace("{out}", str(out)))
    result = run_cli(command, str(recipe))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{recipe}:5: unknown key train.learnig_rate (did you mean learning_rate?)" in result.stderr
    assert not out.exists()


def test_missing_recipe_file_exits_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err


def test_unknown_dataset_exits_2_with_suggestion(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {tmp_path}, template: chatml}}\n"
        f"data: {{dataset_dir: {ROOT / 'tests/data'}, train: qaa}}\ntrain: {{output_dir: {tmp_path / 'o'}}}\n"
    )
    (tmp_path / "config.json").write_text("{}")
    assert main(["check", str(recipe), "-q"]) == 2
    err = capsys.readouterr().err
    assert "dataset 'qaa' is not in" in err and "did you mean qa?" in err


def test_paraphrase_recipe_checks_offline():
    result = run_cli("check", "recipes/llama32_3b_paraphrase.yaml", "--device", "cuda")  # a GPU recipe
    assert result.returncode == 0, result.stderr
    assert "meta-llama/Llama-3.2-3B-Instruct (hub id; unverified offline" in result.stdout
    assert "paws_paraphrase: pairs from hub google-research-datasets/paws" in result.stdout
    assert "run_name: llama32-3b-paraphrase-lora" in result.stdout  # the resolved recipe is printed
    assert "batch 4x4=16" in result.stdout


def test_unexpected_failure_exits_1_with_traceback(monkeypatch, capsys):
    import ftkit.check

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ftkit.check, "check", explode)
    assert main(["check", "whatever.yaml"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train"])
    assert exited.value.code == 2


def test_every_shipped_recipe_and_example_is_valid():
    recipes = sorted([*Path(ROOT, "recipes").glob("*.yaml"), *Path(ROOT, "examples").glob("*.yaml")])
    assert recipes
    from ftkit.config import load_recipe

    for path in recipes:
        load_recipe(path)


def test_recipe_reference_is_up_to_date():
    from ftkit.reference import reference

    assert (ROOT / "docs" / "recipe-reference.md").read_text() == reference(), "run `make docs`"


def test_options_may_follow_the_recipe_and_overrides_may_follow_options():
    result = run_cli("check", "examples/quickstart.yaml", "-q", "train.output_dir=runs/elsewhere")
    assert result.returncode == 0, result.stderr
    assert "output       runs/elsewhere (new)" in result.stdout
    assert run_cli("check", "examples/quickstart.yaml", "-q", "--bogus").returncode == 2
