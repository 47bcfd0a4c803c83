"""Secrets never reach a file a run writes or a message it prints: a unique key planted in the
environment and interpolated into the recipe, through train (tensorboard and offline wandb), export
and eval."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.conftest import TEST_DATA, run_cli


def files_holding(root: Path, secret: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if secret in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_a_planted_secret_is_in_no_file_and_no_message(tmp_path, tiny_model_dir):
    secret = f"sk-ftkit-{uuid.uuid4().hex}"
    env = {"WANDB_API_KEY": secret, "FTKIT_SERVICE_TOKEN": secret}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""\
model: {{name_or_path: {tiny_model_dir}, template: chatml}}
adapter: {{r: 4, alpha: 8}}
data: {{dataset_dir: {TEST_DATA}, train: qa, val_size: 4, max_length: 64, cache_dir: {tmp_path / "cache"}}}
train: {{output_dir: {tmp_path / "run"}, max_steps: 4, per_device_train_batch_size: 4, logging_steps: 1,
        eval_steps: 2, save_steps: 2}}
eval: {{metrics: [loss, exact_match], max_new_tokens: 4}}
logging:
  report_to: [wandb, tensorboard]
  project: secret-check
  run_name: tiny-${{oc.env:WANDB_API_KEY}}
  tags: ["${{oc.env:FTKIT_SERVICE_TOKEN}}", ci]
"""
    )
    outputs = []
    for command in (["train"], ["export"], ["eval"]):
        result = run_cli(*command, str(recipe), env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs += [result.stdout, result.stderr]
    # A type error on a key that holds the secret names the key, not the value.
    result = run_cli("check", str(recipe), "train.seed=${oc.env:WANDB_API_KEY}", env=env)
    assert result.returncode == 2 and "train.seed" in result.stderr
    outputs += [result.stdout, result.stderr]

    assert "logging.run_name holds a secret from the environment" in outputs[1]
    assert all(secret not in text for text in outputs)
    run = tmp_path / "run"
    assert (run / "training_args.bin").is_file() and list(run.glob("runs/**/events.out.tfevents.*"))
    assert (
        list(run.glob("wandb/offline-run-*/run-*.wandb")) and (run / "merged" / "model.safetensors").is_file()
    )
    written = [tmp_path, Path(os.environ["HOME"]), Path(os.environ["HF_HOME"])]
    leaks = [leak for root in written for leak in files_holding(root, secret.encode()) if leak != str(recipe)]
    assert leaks == []
