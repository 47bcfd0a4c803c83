"""Recipe loading: YAML, base inheritance, interpolation, overrides, validation and its messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ftkit.config import dump_recipe, load_recipe
from ftkit.config.redact import redact
from ftkit.errors import RecipeError

MINIMAL = """\
model:
  name_or_path: some/model
  template: chatml
data:
  train: qa
train:
  output_dir: out
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, overrides)
    return caught.value.problems


def test_minimal_recipe_gets_documented_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL))
    assert recipe.stage == "sft"
    assert recipe.adapter.type == "lora" and recipe.adapter.r == 16 and recipe.adapter.alpha == 32
    assert recipe.data.train[0].name == "qa" and recipe.data.train[0].weight is None
    assert recipe.train.learning_rate == 2e-4  # LoRA default
    assert recipe.train.eval_strategy == "no"  # no eval data
    assert recipe.train.per_device_eval_batch_size == recipe.train.per_device_train_batch_size
    assert recipe.export.adapter_dir == "out" and recipe.export.output_dir == "out/merged"
    assert recipe.logging.run_name == "out"
    assert recipe.model.trust_remote_code is False


def test_learning_rate_default_follows_adapter_type(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL + "adapter: {type: full}\n"))
    assert recipe.train.learning_rate == 2e-5


def test_eval_strategy_auto_resolves_from_eval_data(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    assert load_recipe(path, ["data.eval=qa", "train.eval_steps=50"]).train.eval_strategy == "steps"
    assert load_recipe(path, ["data.val_size=0.1"]).train.eval_strategy == "epoch"


def test_base_inheritance_single_and_list_relative_to_the_file(tmp_path):
    write(tmp_path, "bases/common.yaml", MINIMAL + "  seed: 7\n  learning_rate: 1.0e-4\n")
    write(tmp_path, "bases/lora8.yaml", "adapter: {r: 8, alpha: 16}\ntrain: {seed: 8}\n")
    child = write(
        tmp_path,
        "recipes/child.yaml",
        """\
        base: [../bases/common.yaml, ../bases/lora8.yaml]
        train:
          num_train_epochs: 1
        """,
    )
    recipe = load_recipe(child)
    assert recipe.adapter.r == 8 and recipe.adapter.alpha == 16
    assert recipe.train.seed == 8  # the later base wins
    assert recipe.train.learning_rate == 1e-4  # kept from the first base
    assert recipe.train.num_train_epochs == 1
    assert recipe.model.name_or_path == "some/model"

    grandchild = write(tmp_path, "g.yaml", "base: recipes/child.yaml\nadapter: {r: 4}\n")
    assert load_recipe(grandchild).adapter.r == 4


def test_base_cycle_is_reported(tmp_path):
    write(tmp_path, "a.yaml", "base: b.yaml\n")
    b = write(tmp_path, "b.yaml", "base: a.yaml\n")
    [problem] = problems(b)
    assert "cycle" in problem and "a.yaml" in problem


def test_missing_base_names_the_file(tmp_path):
    path = write(tmp_path, "r.yaml", "base: nowhere.yaml\n" + MINIMAL)
    [problem] = problems(path)
    assert "base recipe not found" in problem and "nowhere.yaml" in problem


def test_interpolation_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FTKIT_TEST_SEED", "11")
    path = write(
        tmp_path,
        "r.yaml",
        MINIMAL.replace(
            "output_dir: out", "output_dir: runs/${model.template}\n  seed: ${oc.env:FTKIT_TEST_SEED}"
        ),
    )
    recipe = load_recipe(path)
    assert recipe.train.output_dir == "runs/chatml"
    assert recipe.train.seed == 11


def test_unresolvable_interpolation_is_a_recipe_error(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("output_dir: out", "output_dir: ${train.nope}"))
    [problem] = problems(path)
    assert problem.startswith("train.output_dir: cannot resolve interpolation")


def test_dotlist_overrides_win_and_parse_types(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    recipe = load_recipe(
        path, ["train.learning_rate=5e-5", "data.train=[qa, other]", "adapter.use_dora=true"]
    )
    assert recipe.train.learning_rate == 5e-5
    assert [ref.name for ref in recipe.data.train] == ["qa", "other"]
    assert recipe.adapter.use_dora is True


def test_malformed_override(tmp_path):
    [problem] = problems(write(tmp_path, "r.yaml", MINIMAL), ["train.seed"])
    assert "section.key=value" in problem


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "  learnig_rate: 1.0e-4\n")
    [problem] = problems(path)
    assert problem == f"{path}:8: unknown key train.learnig_rate (did you mean learning_rate?)"


def test_unknown_key_from_command_line(tmp_path):
    [problem] = problems(write(tmp_path, "r.yaml", MINIMAL), ["train.num_epochs=2"])
    assert problem.startswith("command line (train.num_epochs=2): unknown key train.num_epochs")
    assert "did you mean num_train_epochs?" in problem


def test_key_in_the_wrong_section_points_to_the_right_one(tmp_path):
    [problem] = problems(write(tmp_path, "r.yaml", MINIMAL + "model_extra: 1\n"))
    assert "unknown key model_extra" in problem
    [problem] = problems(
        write(tmp_path, "r.yaml", MINIMAL.replace("  template: chatml\n", "  template: chatml\n  seed: 3\n"))
    )
    assert "model.seed" in problem and "train.seed" in problem


def test_unknown_key_in_inherited_base_points_at_the_base(tmp_path):
    base = write(tmp_path, "base.yaml", MINIMAL + "  warmup_ration: 0.1\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\n")
    [problem] = problems(child)
    assert problem.startswith(f"{base}:8: unknown key train.warmup_ration (did you mean warmup_ratio?)")


def test_wrong_type_names_key_value_and_expectation(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "  per_device_train_batch_size: four\n")
    [problem] = problems(path)
    assert problem == (
        f"{path}:8: train.per_device_train_batch_size = 'four': "
        "input should be a valid integer, unable to parse string as an integer"
    )


def test_bad_choice_lists_allowed_values_and_suggests(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "  lr_scheduler_type: cosin\n")
    [problem] = problems(path)
    assert "train.lr_scheduler_type = 'cosin' is not allowed (did you mean cosine?)" in problem
    assert "choose one of: linear, cosine," in problem


def test_out_of_range_value(tmp_path):
    [problem] = problems(write(tmp_path, "r.yaml", MINIMAL + "  warmup_ratio: 1.5\n"))
    assert "train.warmup_ratio = 1.5: input should be less than 1" in problem


def test_missing_required_keys(tmp_path):
    assert problems(write(tmp_path, "r.yaml", "stage: sft\n")) == [
        "model is required",
        "data is required",
        "train is required",
    ]


def test_adapter_type_choice_and_type_specific_keys(tmp_path):
    [problem] = problems(write(tmp_path, "r.yaml", MINIMAL + "adapter: {type: qlora}\n"))
    assert "adapter.type = 'qlora' is not allowed" in problem
    [problem] = problems(write(tmp_path, "r.yaml", MINIMAL + "adapter: {type: full, r: 8}\n"))
    assert "adapter.r only applies with adapter.type: lora (this recipe has adapter.type: full)" in problem


def test_several_problems_are_all_reported(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "  seed: x\n  lr: 1\n")
    assert len(problems(path)) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "model: {name_or_path: m, template: chatml, quantization: {bits: 4}}\nadapter: {type: full}\n",
            "model.quantization needs adapter.type: lora",
        ),
        ("stage: grpo\n", "stage grpo needs at least one reward: set grpo.reward_funcs"),
        (
            "model: {template: null}\n",
            "stage sft formats conversations with a chat template: set model.template",
        ),
        ("train: {output_dir: o, eval_strategy: steps, eval_steps: 5}\n", "there is no eval data"),
        ("data: {train: qa, eval: qa, val_size: 0.1}\n", "set data.eval or data.val_size, not both"),
        ("train: {output_dir: o, warmup_ratio: 0.1, warmup_steps: 5}\n", "not both"),
        ("data: {train: [{name: a, weight: 1}, b]}\n", "give every dataset a weight"),
        ("stage: dpo\ndata: {train: qa, packing: true}\n", "data.packing applies to stages pt and sft"),
    ],
)
def test_cross_field_checks(tmp_path, extra, message):
    write(tmp_path, "base.yaml", MINIMAL)
    path = write(tmp_path, "r.yaml", "base: base.yaml\n" + extra)
    found = problems(path)
    assert any(message in p for p in found), found


def test_cross_field_error_points_at_the_key(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "stage: grpo\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:8: stage grpo")  # the line of `stage:`


def test_pt_stage_needs_no_template(tmp_path):
    recipe = load_recipe(
        write(tmp_path, "r.yaml", MINIMAL.replace("  template: chatml\n", "") + "stage: pt\n")
    )
    assert recipe.stage == "pt" and recipe.model.template is None


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "r.yaml", "model:\n  name_or_path: [unclosed\ntrain: {}\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:") and "not valid YAML" in problem


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path, "r.yaml", "model: !!python/object/apply:os.system ['echo owned']\n")
    [problem] = problems(path)
    assert "not valid YAML" in problem


def test_dump_redacts_secrets_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_API_TOKEN", "hf_abcdefghijkl")
    path = write(tmp_path, "r.yaml", MINIMAL + "logging: {project: '${oc.env:MY_API_TOKEN}'}\n")
    text = dump_recipe(load_recipe(path))
    assert "hf_abcdefghijkl" not in text
    assert "<redacted $MY_API_TOKEN>" in text


def test_redact_url_credentials():
    assert redact({"a": ["https://user:pw@host/x"]}, environ={}) == {"a": ["https://<redacted>@host/x"]}


def test_dump_round_trips(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", MINIMAL))
    again = load_recipe(write(tmp_path, "again.yaml", dump_recipe(recipe)))
    assert again.model_dump() == recipe.model_dump()


def test_saved_recipe_keeps_derived_values_derived(tmp_path):
    """recipe.yaml of a run re-runs with fresh defaults: moving output_dir moves the export too."""
    base = write(tmp_path, "base.yaml", MINIMAL + "  seed: 3\n")
    recipe = load_recipe(write(tmp_path, "r.yaml", "base: base.yaml\nadapter: {r: 4}\n"), ["train.seed=5"])
    given = dump_recipe(recipe, defaults=False)
    assert "base" not in given and "learning_rate" not in given and "export" not in given
    rerun = load_recipe(write(tmp_path, "saved.yaml", given), ["train.output_dir=elsewhere"])
    assert rerun.adapter.r == 4 and rerun.train.seed == 5
    assert rerun.export.output_dir == "elsewhere/merged"
    assert base.exists()


def test_non_utf8_recipe_is_a_recipe_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"model: {name_or_path: caf\xe9}\n")
    [problem] = problems(path)
    assert "not UTF-8 text" in problem


def test_list_item_override_is_refused_with_a_hint(tmp_path):
    [problem] = problems(write(tmp_path, "r.yaml", MINIMAL), ["data.train.0.name=x"])
    assert "set the whole list instead, e.g. data.train=[a,b]" in problem


def test_override_keys_may_carry_spaces(tmp_path):
    assert load_recipe(write(tmp_path, "r.yaml", MINIMAL), ["train.seed =5"]).train.seed == 5


def test_scalar_recipe_is_refused(tmp_path):
    [problem] = problems(write(tmp_path, "r.yaml", "hello\n"))
    assert "a recipe is a mapping of sections" in problem


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("adapter: {type: null}\n", None),
        ("distributed: {nproc_per_node: 0}\n", "greater than or equal to 1"),
        ("model: {trust_remote_code: 'yes'}\n", "valid boolean"),
        ("data: {train: [qa, qa]}\n", "names qa more than once"),
        ("data: {train: qa, val_size: 2.5}\n", "a whole number of rows"),
        ("data: {train: qa, mask_history: true, train_on_prompt: true}\n", "choose one"),
    ],
)
def test_more_validation(tmp_path, extra, message):
    write(tmp_path, "base.yaml", MINIMAL)
    path = write(tmp_path, "r.yaml", "base: base.yaml\n" + extra)
    if message is None:
        assert load_recipe(path).adapter.type == "lora"
        return
    found = problems(path)
    assert any(message in p for p in found), found


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "train: {output_dir: o, early_stopping_patience: 2}\n",
            "compares evaluations: set data.eval or data.val_size",
        ),
        (
            "stage: grpo\ngrpo: {reward_funcs: [exact_match], num_generations: 3}\n",
            "must be a multiple of it",
        ),
        ("stage: grpo\ngrpo: {reward_funcs: [{name: a, model: b}]}\n", "either a name"),
        (
            "stage: grpo\ngrpo: {reward_funcs: [exact_match], num_generations: 4}\n"
            "train: {output_dir: o, per_device_train_batch_size: 4, per_device_eval_batch_size: 2}\n"
            "data: {train: qa, val_size: 8}\n",
            "per_device_eval_batch_size x nproc_per_node (2) must be a multiple of it",
        ),
    ],
)
def test_training_loop_checks(tmp_path, extra, message):
    write(tmp_path, "base.yaml", MINIMAL)
    found = problems(write(tmp_path, "r.yaml", "base: base.yaml\n" + extra))
    assert any(message in p for p in found), found


def test_grpo_groups_may_span_processes(tmp_path):
    extra = (
        "stage: grpo\ngrpo: {reward_funcs: [exact_match], num_generations: 8}\n"
        "train: {output_dir: o, per_device_train_batch_size: 2}\ndistributed: {nproc_per_node: 4}\n"
    )
    write(tmp_path, "base.yaml", MINIMAL)
    assert load_recipe(write(tmp_path, "r.yaml", "base: base.yaml\n" + extra)).grpo.num_generations == 8


def test_best_model_saves_when_it_evaluates(tmp_path):
    write(tmp_path, "base.yaml", MINIMAL)
    path = write(
        tmp_path,
        "r.yaml",
        "base: base.yaml\ndata: {val_size: 0.1}\n"
        "train: {eval_steps: 25, save_steps: 100, load_best_model_at_end: true}\n",
    )
    recipe = load_recipe(path)
    assert (recipe.train.eval_strategy, recipe.train.save_strategy, recipe.train.save_steps) == (
        "steps",
        "steps",
        25,
    )


def test_unquoted_no_means_the_strategy_no(tmp_path):
    recipe = load_recipe(
        write(tmp_path, "r.yaml", MINIMAL + "  save_strategy: no\n"), ["train.eval_strategy=no"]
    )
    assert recipe.train.save_strategy == "no" and recipe.train.eval_strategy == "no"


def test_unparsable_override_is_a_recipe_error(tmp_path):
    [message] = problems(write(tmp_path, "r.yaml", MINIMAL), ["data.train=[a,b"])
    assert message.startswith("cannot parse overrides data.train=[a,b")


def test_a_child_or_override_may_replace_a_list_with_another_kind(tmp_path):
    write(tmp_path, "base.yaml", MINIMAL.replace("train: qa", "train: [qa, other]"))
    child = write(tmp_path, "child.yaml", "base: base.yaml\ndata:\n  train: {name: qa, weight: 2}\n")
    assert [(ref.name, ref.weight) for ref in load_recipe(child).data.train] == [("qa", 2.0)]
    assert [ref.name for ref in load_recipe(child, ["data.train=mix"]).data.train] == ["mix"]
    [message] = problems(child, ["data.train.wieght=1"])
    assert "child.yaml:3" in message and "data.train[0].wieght" in message  # not the base's replaced list


def test_override_does_not_take_the_blame_for_its_parent_section(tmp_path):
    recipe_text = MINIMAL.replace("  template: chatml\n", "")
    [message] = problems(write(tmp_path, "r.yaml", recipe_text), ["model.revision=abc"])
    assert "r.yaml:1" in message and "command line" not in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["distributed.nnodes=2", "distributed.node_rank=2"],
            "node_rank is 2 but ranks of 2 node(s) are 0 to 1",
        ),
        (["distributed.rdzv_endpoint=node001"], "'node001' is not host:port"),
        (["distributed.rdzv_id=job7"], "rdzv_id needs distributed.rdzv_endpoint"),
        (
            ["distributed.rdzv_endpoint=node001:29400", "distributed.node_rank=1", "distributed.nnodes=2"],
            "node ranks are assigned as nodes join",
        ),
    ],
)
def test_multi_node_settings_that_cannot_work_are_refused(tmp_path, overrides, expected):
    found = problems(write(tmp_path, "r.yaml", MINIMAL), overrides)
    assert any(expected in problem for problem in found), found
