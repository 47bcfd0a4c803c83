"""`ftkit eval --smoke`: the SAMSum seed's pipeline unit test on any recipe (80 training rows, 20 held
out, a short run, pass when the held-out loss fell)."""

from __future__ import annotations

import re

from tests.test_resume import recipe_file


def test_smoke_passes_when_the_eval_loss_falls_and_fails_when_it_does_not(tmp_path, tiny_model_dir, capsys):
    from ftkit.cli import main

    recipe = recipe_file(tmp_path, tiny_model_dir, learning_rate=1.0e-2, max_steps=500, save_steps=100)
    assert main(["eval", str(recipe), "--smoke"]) == 0
    shown = capsys.readouterr().out
    found = re.search(r"eval loss ([\d.]+) -> ([\d.]+), fell by [\d.]+%\. PASSED", shown)
    assert found and float(found[2]) < float(found[1]), shown
    assert "80 training / 20 eval examples, 40 steps" in shown
    smoke_run = tmp_path / "run-smoke"
    assert (smoke_run / "run.json").is_file() and not (tmp_path / "run").exists()  # the real run is untouched
    # A learning rate far too low: nothing is learned, and the smoke test says so.
    assert main(["eval", str(recipe), "--smoke", "train.learning_rate=1e-9"]) == 2
    assert "(it must fall by 1% or more). FAILED" in capsys.readouterr().out


def test_smoke_refuses_stages_without_a_loss_on_answers(tmp_path, tiny_model_dir, capsys):
    from ftkit.cli import main

    recipe = recipe_file(tmp_path, tiny_model_dir)
    assert main(["eval", str(recipe), "--smoke", "stage=dpo"]) == 2
    assert "--smoke compares eval losses of answers or documents" in capsys.readouterr().err
