"""Stage runners end to end through the CLI on tiny models: pt, sft (LoRA, QLoRA, full, freeze), dpo,
grpo; packing, kill-and-resume, early stopping, trackers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TEST_DATA, run_cli


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` merged in, section by section."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in changes.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def history(out: Path) -> list[dict]:
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def logged(out: Path, key: str) -> list[float]:
    return [entry[key] for entry in history(out) if key in entry]


def assert_run_outputs(out: Path, weights: str) -> dict:
    """Every run writes: recipe (given and resolved), run.json, trainer state, loss plot, weights."""
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed"
    for key in ("versions", "device", "precision", "dtype", "attn_implementation", "parameters", "data"):
        assert run[key], key
    if run["stage"] != "grpo":  # GRPO's data is prompts; its tokens are sampled during training
        assert run["data"]["splits"]["train"]["tokens"] > 0
    for name in ("recipe.yaml", "recipe.resolved.yaml", "trainer_state.json", weights):
        assert (out / name).is_file(), name
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    return run


def train(recipe: Path, *overrides: str) -> subprocess.CompletedProcess:
    result = run_cli("train", str(recipe), *overrides)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """Stage pt from scratch on the demo corpus: the base model for the other stages."""
    work = tmp_path_factory.mktemp("pt")
    recipe = write_recipe(
        work / "pt.yaml",
        {
            "stage": "pt",
            "model": {"name_or_path": str(ROOT / "examples/tiny-chatml"), "from_scratch": True},
            "adapter": {"type": "full"},
            "data": {"dataset_dir": str(ROOT / "data"), "train": ["demo_text", "demo_sft"], "max_length": 64},
            "train": {
                "output_dir": str(work / "run"),
                "max_steps": 40,
                "per_device_train_batch_size": 8,
                "learning_rate": 3.0e-3,
                "logging_steps": 5,
                "save_strategy": "no",
            },
        },
    )
    train(recipe)
    return work / "run"


def test_pt_from_scratch_lowers_the_loss(pretrained):
    run = assert_run_outputs(pretrained, "model.safetensors")
    losses = logged(pretrained, "loss")
    assert losses[-1] < 0.75 * losses[0]
    assert run["parameters"]["trainable"] == run["parameters"]["total"]


LORA = {"type": "lora", "r": 8, "alpha": 16, "dropout": 0.0}


def sft(work: Path, base: Path, **changes: dict) -> dict:
    recipe = {
        "stage": "sft",
        "model": {"name_or_path": str(base), "template": "chatml"},
        "adapter": LORA,
        "data": {"dataset_dir": str(TEST_DATA), "train": "qa", "max_length": 64},
        "train": {
            "output_dir": str(work / "run"),
            "max_steps": 30,
            "per_device_train_batch_size": 8,
            "learning_rate": 5.0e-3,
            "logging_steps": 5,
            "save_strategy": "no",
        },
    }
    return merged(recipe, changes)


@pytest.mark.parametrize(
    ("name", "changes", "weights"),
    [
        ("lora", {"train": {"learning_rate": 1.0e-2}}, "adapter_model.safetensors"),
        (
            "qlora-4bit",
            {
                "model": {"quantization": {"bits": 4, "quant_type": "nf4", "double_quant": True}},
                "train": {"optim": "paged_adamw_8bit", "learning_rate": 3.0e-3, "max_steps": 40},
            },
            "adapter_model.safetensors",
        ),
        ("full", {"adapter": {"type": "full"}, "train": {"learning_rate": 5.0e-4}}, "model.safetensors"),
        (
            "freeze",
            {
                "adapter": {"type": "freeze", "trainable_layers": 2, "trainable_modules": ["lm_head"]},
                "train": {"learning_rate": 1.0e-3},
            },
            "model.safetensors",
        ),
    ],
)
def test_sft_adapters_lower_the_loss(tmp_path, pretrained, name, changes, weights):
    recipe = sft(tmp_path, pretrained, **changes)
    if "adapter" in changes:
        recipe["adapter"] = changes["adapter"]  # a different adapter type replaces the section
    train(write_recipe(tmp_path / "r.yaml", recipe))
    out = tmp_path / "run"
    run = assert_run_outputs(out, weights)
    losses = logged(out, "loss")
    assert sum(losses[-2:]) / 2 < losses[0] - 0.3, losses
    if name == "qlora-4bit":
        assert run["quantization"] == "4-bit"
    if name == "freeze":
        assert 0 < run["parameters"]["trainable"] < run["parameters"]["total"]


def test_packed_and_unpacked_give_the_same_loss(tmp_path, pretrained):
    """Evaluation before any update: the same examples, packed (padding-free) or padded, same loss."""
    losses = {}
    for packing in (False, True):
        work = tmp_path / str(packing)
        work.mkdir()
        recipe = sft(
            work,
            pretrained,
            adapter={"type": "full"},
            data={"val_size": 12, "max_length": 96, "packing": packing},
            train={
                "learning_rate": 1.0e-12,
                "max_steps": 1,
                "eval_steps": 1,
                "per_device_eval_batch_size": 64,
            },
        )
        recipe["adapter"] = {"type": "full"}
        train(write_recipe(work / "r.yaml", recipe))
        losses[packing] = logged(work / "run", "eval_loss")[0]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5, abs=1e-6)


def test_packed_examples_do_not_attend_across(pretrained):
    """Per example: log-probabilities of the answer tokens, packed with others or alone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(pretrained).eval()
    tokenizer = AutoTokenizer.from_pretrained(pretrained)
    texts = ["Bees make honey.", "A week has seven days and then another week begins.", "Hi"]
    sequences = [tokenizer.encode(t) for t in texts]
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([ids]), use_cache=False).logits[0] for ids in sequences]
        packed_ids = torch.tensor([[token for ids in sequences for token in ids]])
        positions = torch.tensor([[p for ids in sequences for p in range(len(ids))]])
        packed = model(input_ids=packed_ids, position_ids=positions, use_cache=False).logits[0]
    start = 0
    for ids, logits in zip(sequences, alone, strict=True):
        torch.testing.assert_close(packed[start : start + len(ids)], logits, atol=1e-5, rtol=1e-5)
        start += len(ids)


def test_dpo_lowers_the_preference_loss(tmp_path, pretrained):
    rows = [
        {
            "conversations": [{"from": "human", "value": f"Question number {i}?"}],
            "chosen": {"from": "gpt", "value": f"Here is a careful answer to question {i}."},
            "rejected": {"from": "gpt", "value": "No."},
        }
        for i in range(48)
    ]
    (tmp_path / "pref.json").write_text(json.dumps(rows))
    entry = {
        "file_name": "pref.json",
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps({"pref": entry}))
    recipe = write_recipe(
        tmp_path / "dpo.yaml",
        {
            "stage": "dpo",
            "model": {"name_or_path": str(pretrained), "template": "chatml"},
            "adapter": LORA,
            "data": {"dataset_dir": str(tmp_path), "train": "pref", "max_length": 64},
            "dpo": {"beta": 0.5},
            "train": {
                "output_dir": str(tmp_path / "run"),
                "max_steps": 20,
                "per_device_train_batch_size": 8,
                "learning_rate": 5.0e-3,
                "logging_steps": 5,
                "save_strategy": "no",
            },
        },
    )
    train(recipe)
    assert_run_outputs(tmp_path / "run", "adapter_model.safetensors")
    losses = logged(tmp_path / "run", "loss")
    assert losses[0] == pytest.approx(0.6931, abs=1e-3) and losses[-1] < 0.2


def grpo_recipe(tmp_path: Path, pretrained: Path, rewards: list) -> Path:
    return write_recipe(
        tmp_path / "grpo.yaml",
        {
            "stage": "grpo",
            "model": {"name_or_path": str(pretrained), "template": "chatml"},
            "adapter": LORA,
            "data": {"dataset_dir": str(ROOT / "data"), "train": "demo_math", "max_length": 128},
            "grpo": {"reward_funcs": rewards, "num_generations": 8, "max_completion_length": 24, "beta": 0.0},
            "train": {
                "output_dir": str(tmp_path / "run"),
                "max_steps": 30,
                "per_device_train_batch_size": 8,
                "learning_rate": 1.0e-2,
                "logging_steps": 5,
                "save_strategy": "no",
            },
        },
    )


@pytest.mark.parametrize(
    "rewards",
    [
        [{"name": "length_penalty", "params": {"max_chars": 60}}],
        [
            {"name": "tests.user_rewards:brevity", "params": {"scale": 60}},
            {"name": "numeric_match", "weight": 0.5},
        ],
    ],
    ids=["built-in", "user"],
)
def test_grpo_raises_the_reward(tmp_path, pretrained, rewards):
    train(grpo_recipe(tmp_path, pretrained, rewards))
    run = assert_run_outputs(tmp_path / "run", "adapter_model.safetensors")
    rewards_logged = logged(tmp_path / "run", "reward")
    assert sum(rewards_logged[-2:]) / 2 > rewards_logged[0] + 0.1, rewards_logged
    assert run["stage"] == "grpo"


def test_grpo_with_a_reward_model(tmp_path, pretrained):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig.from_pretrained(pretrained)
    config.num_labels = 1
    reward_dir = tmp_path / "reward-model"
    LlamaForSequenceClassification(config).save_pretrained(reward_dir)
    AutoTokenizer.from_pretrained(pretrained).save_pretrained(reward_dir)
    recipe = grpo_recipe(tmp_path, pretrained, [{"model": str(reward_dir)}])
    train(recipe, "train.max_steps=2", "train.logging_steps=1")
    assert len(logged(tmp_path / "run", "reward")) == 2


GRPO_VARIANTS = {
    **{loss: {"loss_type": loss} for loss in ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "vespo")},
    "gspo": {"importance_sampling_level": "sequence", "loss_type": "grpo"},
    "luspo": {"importance_sampling_level": "sequence", "loss_type": "luspo"},
    "dapo, clip-higher, truncation masked, 2 iterations": {
        "epsilon_high": 0.28,
        "mask_truncated_completions": True,
        "num_iterations": 2,
        "scale_rewards": "none",
    },
}


def test_every_grpo_variant_trains_and_reaches_trls_config(tmp_path, pretrained):
    """One process runs them all (`ftkit train` in-process): each variant trains two steps, and the
    arguments the trainer ran with (saved beside the adapter) carry the recipe's settings."""
    import torch

    from ftkit.cli import main

    for number, (name, variant) in enumerate(GRPO_VARIANTS.items()):
        work = tmp_path / str(number)
        work.mkdir()
        recipe = grpo_recipe(work, pretrained, ["length_penalty"])
        options = [f"grpo.{key}={value}" for key, value in variant.items()]
        assert main(["train", str(recipe), "train.max_steps=2", "train.logging_steps=1", *options]) == 0, name
        args = torch.load(work / "run" / "training_args.bin", weights_only=False)
        expected = {
            "loss_type": "dapo",
            "importance_sampling_level": "token",
            "epsilon_high": None,
            **variant,
        }
        for key, value in expected.items():
            assert getattr(args, key) == value, (name, key)
        assert len(logged(work / "run", "loss")) == 2, name


def test_luspo_needs_sequence_level_ratios(tmp_path, pretrained):
    result = run_cli(
        "check", str(grpo_recipe(tmp_path, pretrained, ["length_penalty"])), "grpo.loss_type=luspo"
    )
    assert result.returncode == 2 and "set grpo.importance_sampling_level: sequence" in result.stderr


@pytest.mark.parametrize(
    ("generation", "expected"),
    [
        ("vllm_colocate", {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.5}),
        (
            "vllm_server",
            {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "http://gpu-2:8000"},
        ),
        ("transformers", {"use_vllm": False}),
    ],
)
def test_grpo_generation_backend_reaches_trls_config(tmp_path, pretrained, generation, expected):
    from ftkit.config import load_recipe
    from ftkit.models.runtime import resolve_runtime
    from ftkit.stages import get_stage

    path = grpo_recipe(tmp_path, pretrained, ["length_penalty"])
    overrides = [f"grpo.generation={generation}"]
    if generation == "vllm_colocate":
        overrides.append("grpo.vllm_gpu_memory_utilization=0.5")
    if generation == "vllm_server":
        overrides.append("grpo.vllm_server_url=http://gpu-2:8000")
    recipe = load_recipe(path, overrides)
    args = get_stage("grpo").arguments(recipe, resolve_runtime(recipe))
    for key, value in expected.items():
        assert getattr(args, key) == value, key


def test_vllm_generation_without_vllm_or_a_gpu_is_refused_at_check(tmp_path, pretrained):
    result = run_cli(
        "check", str(grpo_recipe(tmp_path, pretrained, ["length_penalty"])), "grpo.generation=vllm_colocate"
    )
    assert result.returncode == 2
    assert "grpo.generation: vllm_colocate needs a CUDA GPU and this run is on cpu" in result.stderr
    assert "grpo.generation vllm_colocate needs vllm: pip install 'ftkit[vllm]'" in result.stderr


def test_grpo_unknown_reward_is_a_user_error(tmp_path, pretrained):
    result = run_cli("check", str(grpo_recipe(tmp_path, pretrained, ["exact_mach"])), "-q")
    assert (
        result.returncode == 2 and "unknown reward 'exact_mach' (did you mean exact_match?)" in result.stderr
    )


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path, pretrained):
    recipe = write_recipe(
        tmp_path / "r.yaml",
        sft(
            tmp_path,
            pretrained,
            train={
                "max_steps": 120,
                "per_device_train_batch_size": 4,
                "learning_rate": 1.0e-3,
                "logging_steps": 20,
                "save_strategy": "steps",
                "save_steps": 40,
            },
        ),
    )
    train(recipe, f"train.output_dir={tmp_path / 'whole'}")

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "ftkit", "train", str(recipe), f"train.output_dir={killed}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoint-80" / "trainer_state.json").exists():
        assert process.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert json.loads((killed / "run.json").read_text())["status"] == "running"  # not mistaken for finished
    assert not (killed / "adapter_model.safetensors").exists()

    result = train(recipe, f"train.output_dir={killed}", "train.resume_from_checkpoint=latest")
    assert "resuming from" in result.stderr and "checkpoint-80" in result.stderr
    run = assert_run_outputs(killed, "adapter_model.safetensors")
    assert run["resumed_from"].endswith("checkpoint-80")
    assert logged(killed, "loss") == pytest.approx(logged(tmp_path / "whole", "loss"), rel=1e-6)


def test_early_stopping_and_best_model(tmp_path, pretrained):
    recipe = sft(
        tmp_path,
        pretrained,
        data={"val_size": 6},
        train={"max_steps": 60, "eval_steps": 2, "early_stopping_patience": 2, "learning_rate": 0.5},
    )
    recipe["adapter"] = {"type": "full"}
    train(write_recipe(tmp_path / "r.yaml", recipe))
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["global_step"] < 60  # a learning rate of 0.5 diverges: evaluation stops the run
    assert run["best_checkpoint"] and "checkpoint-" in run["best_checkpoint"]


def test_unknown_best_model_metric_is_a_user_error_listing_the_metrics(tmp_path, pretrained):
    recipe = sft(
        tmp_path,
        pretrained,
        data={"val_size": 6},
        train={
            "max_steps": 4,
            "eval_steps": 2,
            "load_best_model_at_end": True,
            "metric_for_best_model": "acc",
        },
    )
    result = run_cli("train", str(write_recipe(tmp_path / "r.yaml", recipe)))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "train.metric_for_best_model='acc' is not a metric this run reports" in result.stderr
    assert "'eval_loss'" in result.stderr and "Traceback" not in result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_wandb_offline_tensorboard_and_mlflow_record_metrics_and_metadata(tmp_path, pretrained):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = sft(
        tmp_path,
        pretrained,
        train={"max_steps": 6, "logging_steps": 2},
        logging={
            "report_to": ["wandb", "tensorboard", "mlflow"],
            "mlflow_tracking_uri": store,
            "project": "ftkit-tests",
            "run_name": "tiny-run",
            "tags": ["ci"],
        },
    )
    train(write_recipe(tmp_path / "r.yaml", recipe))
    out = tmp_path / "run"
    # An offline run keeps its records in the run's transaction log until `wandb sync`.
    [log] = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    records = log.read_bytes()
    for recorded in (
        b"train/loss",
        b"train/learning_rate",
        b"attn_implementation",
        b"trainable",
        b"ftkit-tests",
        b"tiny-run",
    ):
        assert recorded in records, recorded

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [event_dir] = {path.parent for path in out.glob("runs/**/events.out.tfevents.*")}
    events = EventAccumulator(str(event_dir), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"]
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 4, 6]
    text_tags = events.Tags()["tensors"]
    assert "ftkit/run_metadata/text_summary" in text_tags
    metadata = events.Tensors("ftkit/run_metadata/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "parameters.trainable" in metadata and "attn_implementation" in metadata

    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    [run] = client.search_runs([client.get_experiment_by_name("ftkit-tests").experiment_id])
    assert run.info.run_name == "tiny-run" and run.info.status == "FINISHED"
    assert [metric.step for metric in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 4, 6]
    assert run.data.params["recipe.adapter.r"] == "8" and run.data.params["recipe.stage"] == "sft"
    assert run.data.tags["ci"] == "true" and run.data.tags["ftkit.stage"] == "sft"
    assert "trainable" in run.data.tags["ftkit.parameters"] and run.data.tags["ftkit.attn_implementation"]


def test_moe_model_trains_with_router_loss(tmp_path):
    from transformers import MixtralConfig

    from ftkit.testing import CHATML, save_tiny_model, train_tokenizer
    from tests.conftest import qa_texts

    tokenizer = train_tokenizer(qa_texts(), CHATML, vocab_size=300)
    config = MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        output_router_logits=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    base = save_tiny_model(tmp_path / "moe", tokenizer, config)
    recipe = sft(
        tmp_path,
        base,
        adapter={"r": 4, "alpha": 8},
        train={"max_steps": 4, "logging_steps": 1, "router_aux_loss_coef": 0.02},
    )
    train(write_recipe(tmp_path / "r.yaml", recipe))
    assert len(logged(tmp_path / "run", "loss")) == 4


def test_loraplus_trains_the_b_matrices_faster(tmp_path, tiny_model_dir):
    import torch

    from tests.test_resume import recipe_file

    recipe = recipe_file(
        tmp_path,
        tiny_model_dir,
        max_steps=2,
        save_steps=1,
        learning_rate=1.0e-3,
        lr_scheduler_type="constant",
    )
    train(recipe, "adapter.loraplus_lr_ratio=16")
    state = torch.load(tmp_path / "run" / "checkpoint-1" / "optimizer.pt", weights_only=False)
    rates = sorted({round(group["lr"], 9) for group in state["param_groups"] if group["params"]})
    assert rates == [1.0e-3, 1.6e-2]
    adapter = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA"
    exported = run_cli("export", str(recipe), "adapter.loraplus_lr_ratio=16")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert_merged_logits_equal_the_adapters(tiny_model_dir, tmp_path / "run")
    result = run_cli("check", str(recipe), "adapter.loraplus_lr_ratio=16", "distributed.deepspeed=zero2")
    assert result.returncode == 2 and "adapter.loraplus_lr_ratio builds its optimizer" in result.stderr


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_a_residual_lora_init_is_saved_for_the_original_base(tmp_path, tiny_model_dir, init):
    """PiSSA and OLoRA train against a changed base; the saved adapter applies to the original one: the
    original base with it gives the trained model's logits, and `ftkit export` merges it to the same."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from tests.test_resume import recipe_file

    recipe = recipe_file(tmp_path, tiny_model_dir, max_steps=3, save_steps=3, learning_rate=1.0e-2)
    train(recipe, f"adapter.init={init}", "adapter.dropout=0")
    run = tmp_path / "run"
    assert (run / "initial_adapter" / "adapter_model.safetensors").is_file()
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])

    def logits(model):
        with torch.no_grad():
            return model(input_ids=ids).logits

    base = lambda: AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)  # noqa: E731
    # The trained model as it was: the residual base (the same initialization again) with the last
    # checkpoint's unconverted adapter.
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=init)
    trained = get_peft_model(base(), config)
    set_peft_model_state_dict(trained, load_file(run / "checkpoint-3" / "adapter_model.safetensors"))
    converted = PeftModel.from_pretrained(base(), run)
    assert torch.allclose(logits(converted), logits(trained), atol=1e-4)
    assert not torch.allclose(logits(converted), logits(base()), atol=1e-3)

    result = run_cli("export", str(recipe), f"adapter.init={init}", "adapter.dropout=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_merged_logits_equal_the_adapters(tiny_model_dir, run)


def assert_merged_logits_equal_the_adapters(base: Path, run: Path) -> None:
    """`ftkit export`'s merged model and the base with the run's adapter give the same float32 logits."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 11, 64]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(run / "merged", dtype=torch.float32)(
            input_ids=ids
        ).logits
        adapted = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), run
        )
        expected = adapted(input_ids=ids).logits
    assert torch.allclose(merged, expected, atol=1e-5), (merged - expected).abs().max()


@pytest.mark.parametrize("bits", [4, 8])
def test_loftq_starts_closer_to_the_full_precision_model_than_quantizing_alone(tiny_model_dir, bits):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftkit.config.sections.model import QuantizationConfig
    from ftkit.models.loftq import initialize, quantized

    quant = QuantizationConfig(bits=bits)
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 11, 64]])

    def logits(model):
        with torch.no_grad():
            return model(input_ids=ids).logits

    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    reference = logits(original)
    config = LoraConfig(r=8, lora_alpha=32, target_modules="all-linear")  # scaling 4, divided out of B
    adapted = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), config
    )
    assert initialize(adapted, quant, iterations=2) == 14  # 7 linear layers in each of the 2 blocks
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    for name, module in plain.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head":
            module.weight.data = quantized(module.weight.data, quant)
    loftq_error = (logits(adapted) - reference).abs().max()
    quantized_error = (logits(plain) - reference).abs().max()
    assert loftq_error < 0.8 * quantized_error, (loftq_error, quantized_error)
    layer = adapted.base_model.model.model.layers[0].self_attn.q_proj
    rebuilt = (
        layer.get_base_layer().weight + 4 * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    )
    weight = original.model.layers[0].self_attn.q_proj.weight
    assert (rebuilt - weight).norm() < 0.9 * (layer.get_base_layer().weight - weight).norm()


def test_loftq_run_keeps_its_quantized_base_and_exports_to_the_adapters_logits(tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tests.test_resume import recipe_file

    recipe = recipe_file(tmp_path, tiny_model_dir, max_steps=3, save_steps=3, learning_rate=1.0e-2)
    options = ["adapter.init=loftq", "adapter.dropout=0", "model.quantization.bits=4"]
    result = train(recipe, *options)
    assert "LoftQ: 14 layers start at their 4-bit nf4 quantization plus a rank-4 correction" in result.stderr
    run = tmp_path / "run"
    record = json.loads((run / "run.json").read_text())
    assert record["base_model"] == "base_model" and record["quantization"] == "4-bit"
    assert json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        (run / "base_model").resolve()
    )
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])

    def logits(model):
        with torch.no_grad():
            return model(input_ids=ids).logits

    quantized_base = AutoModelForCausalLM.from_pretrained(run / "base_model", dtype=torch.float32)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert not torch.allclose(
        quantized_base.model.layers[0].mlp.up_proj.weight, original.model.layers[0].mlp.up_proj.weight
    )
    trained = logits(PeftModel.from_pretrained(quantized_base, run))
    exported = run_cli("export", str(recipe), *options)
    assert exported.returncode == 0, exported.stderr[-3000:]
    merged = AutoModelForCausalLM.from_pretrained(run / "merged", dtype=torch.float32)
    assert torch.allclose(logits(merged), trained, atol=1e-5)
    refused = run_cli("check", str(recipe), "adapter.init=loftq")
    assert refused.returncode == 2 and "set model.quantization (QLoRA)" in refused.stderr


@pytest.mark.parametrize("optim", ["galore_adamw", "apollo_adamw"])
def test_memory_saving_optimizers_train_full_weights(tmp_path, tiny_model_dir, optim):
    import torch

    from tests.test_resume import recipe_file

    recipe = recipe_file(tmp_path, tiny_model_dir, max_steps=4, save_steps=4, learning_rate=1.0e-3)
    written = yaml.safe_load(recipe.read_text())
    recipe.write_text(yaml.safe_dump({**written, "adapter": {"type": "full"}}))
    train(recipe, f"train.optim={optim}", "train.optim_target_modules=[attn,mlp]", "train.optim_args=rank=4")
    losses = logged(tmp_path / "run", "loss")
    assert len(losses) == 4 and losses[-1] < losses[0]
    args = torch.load(tmp_path / "run" / "training_args.bin", weights_only=False)
    assert args.optim == optim and args.optim_target_modules == ["attn", "mlp"]
    state = torch.load(tmp_path / "run" / "checkpoint-4" / "optimizer.pt", weights_only=False)
    # The projected weights form their own parameter group, with the rank asked for.
    assert any(group.get("rank") == 4 for group in state["param_groups"])
    result = run_cli("check", str(recipe), f"train.optim={optim}", "-q")
    assert result.returncode == 2 and "set it, e.g. [attn, mlp]" in result.stderr
