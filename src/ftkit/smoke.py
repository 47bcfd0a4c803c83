"""`ftkit eval RECIPE --smoke`: the pipeline's unit test before the long run (the SAMSum seed's).

The recipe is trained, as it is, on a small split of its own data (80 training and 20 eval examples from
the first 100 rows of each training dataset) for a few steps, in `<output_dir>-smoke`; the eval loss of
the starting model and of the trained one are compared on the same 20 examples. It passes when the loss
fell by 1% or more: the data, template, masks, adapter and optimizer are wired so that training learns.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from ftkit.config import Recipe, load_recipe
from ftkit.errors import UserError

log = logging.getLogger(__name__)
TRAIN_ROWS, EVAL_ROWS = 80, 20
EPOCHS = 2
"""Passes over the 80 training examples (at least MIN_STEPS optimizer steps)."""
MIN_STEPS = 10
MIN_FALL = 0.01
"""The eval loss must fall by at least this share: noise, or a collapse to a uniform guess from a random
start, moves it less."""


@dataclass(frozen=True)
class SmokeResult:
    before: float
    after: float
    steps: int
    output_dir: str

    @property
    def passed(self) -> bool:
        return self.after < self.before * (1 - MIN_FALL)

    def summary(self) -> str:
        change = abs(self.before - self.after) / self.before * 100 if self.before else 0.0
        if math.isnan(self.after):
            moved = "is not a number: training diverged"
        else:
            moved = f"fell by {change:.1f}%" if self.after < self.before else f"rose by {change:.1f}%"
            if not self.passed:
                moved += f" (it must fall by {MIN_FALL:.0%} or more)"
        verdict = "PASSED" if self.passed else "FAILED: check the data, template, masks and learning rate"
        return (
            f"smoke test ({TRAIN_ROWS} training / {EVAL_ROWS} eval examples, {self.steps} steps, in "
            f"{self.output_dir}): eval loss {self.before:.4f} -> {self.after:.4f}, {moved}. {verdict}"
        )


def smoke_recipe(path: str, overrides: list[str]) -> Recipe:
    """The recipe, trained on its first rows for a few steps in `<output_dir>-smoke`."""
    recipe = load_recipe(path, overrides)
    from ftkit.stages import stage_for

    if "labels" not in stage_for(recipe).shape.columns:
        raise UserError(
            f"--smoke compares eval losses of answers or documents: stages pt and sft; stage {recipe.stage} "
            "trains on other data (score it with `ftkit eval` after a short run instead)"
        )
    train = recipe.train
    batch = train.per_device_train_batch_size * train.gradient_accumulation_steps
    steps = max(MIN_STEPS, math.ceil(TRAIN_ROWS / batch) * EPOCHS)
    smoke = [
        f"data.max_samples={TRAIN_ROWS + EVAL_ROWS}",
        "data.eval=[]",
        f"data.val_size={EVAL_ROWS}",
        "data.streaming=false",
        f"train.output_dir={train.output_dir.rstrip('/')}-smoke",
        "train.overwrite_output_dir=true",
        "train.resume_from_checkpoint=null",
        f"train.max_steps={steps}",
        "train.save_strategy=no",
        "train.eval_strategy=no",
        "train.load_best_model_at_end=false",
        "train.early_stopping_patience=null",
        "logging.report_to=[]",
        "distributed.nproc_per_node=1",
    ]
    return load_recipe(path, [*overrides, *smoke])


def run_smoke(path: str, overrides: list[str]) -> SmokeResult:
    """Train the small split and compare the eval loss before and after."""
    import torch

    from ftkit.evaluate import base_model_path, mean_nll
    from ftkit.infer import load_for_inference
    from ftkit.launch import train
    from ftkit.models.loader import load_tokenizer_and_template, quiet_new_head
    from ftkit.models.special_tokens import resize_embeddings
    from ftkit.stages import stage_for

    recipe = smoke_recipe(path, overrides)
    stage = stage_for(recipe)
    log.info(
        "smoke test: %d steps on %d rows in %s", recipe.train.max_steps, TRAIN_ROWS, recipe.train.output_dir
    )
    if train(recipe, ["train", path, *overrides]) != 0:
        raise UserError("the smoke test's training run failed (see above)")
    bundle = load_tokenizer_and_template(recipe.model)
    batch = recipe.eval.batch_size

    def loss(model: object) -> float:
        resize_embeddings(model, bundle.tokenizer)
        return mean_nll(model, bundle.tokenizer, bundle.template, recipe, batch, EVAL_ROWS)

    torch.manual_seed(recipe.train.seed)
    with quiet_new_head(stage.head):
        start = stage.head.model_class().from_pretrained(base_model_path(recipe), **stage.head.config)
    before = loss(start)
    del start
    trained, _ = load_for_inference(recipe)
    after = loss(trained)
    return SmokeResult(before, after, recipe.train.max_steps, str(Path(recipe.train.output_dir)))
