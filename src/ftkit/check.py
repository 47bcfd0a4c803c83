"""`ftkit check`: validate a recipe and resolve everything that needs no weights, without importing torch.

Hub models and datasets are not fetched: one already in the local Hugging Face cache is reported as
cached, any other as unverified (not an error: the machine that trains may have the network).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftkit.config import Recipe, dump_recipe, load_recipe
from ftkit.errors import UserError


@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)

    def add(self, key: str, text: str) -> None:
        self.lines.append(f"  {key:<12} {text}")


def _in_hub_cache(repo_id: str, filename: str, repo_type: str = "model") -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, filename, repo_type=repo_type), str)
    except ValueError:  # not a valid repo id
        return False


def _model_source(name: str) -> str:
    path = Path(name)
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model.name_or_path {name} exists but holds no config.json")
        return f"{name} (local)"
    if name.startswith((".", "/")) or name.count("/") > 1:
        raise UserError(f"model.name_or_path {name} does not exist")
    if _in_hub_cache(name, "config.json"):
        return f"{name} (hub id, in the local cache)"
    return f"{name} (hub id; unverified offline: not in the local cache)"


def _datasets(recipe: Recipe, findings: Findings) -> None:
    from ftkit.data.formats import check_entry
    from ftkit.data.loaders import local_files
    from ftkit.data.registry import Registry

    registry = Registry(recipe.data.dataset_dir)
    for split, refs in (("train", recipe.data.train), ("eval", recipe.data.eval)):
        for ref in refs:
            spec = registry.get(ref.name)
            check_entry(spec, recipe.stage)
            weight = f" weight {ref.weight}" if ref.weight is not None else ""
            if spec.file_name:
                _, files = local_files(spec, registry.dataset_dir)
                size = sum(f.stat().st_size for f in files)
                where = f"{spec.file_name} ({len(files)} file{'s' * (len(files) > 1)}, {size / 1e6:.1f} MB)"
            else:
                assert spec.hf_hub_url
                cached = (
                    " in the local cache"
                    if _in_hub_cache(spec.hf_hub_url, "README.md", "dataset")
                    else ("; unverified offline")
                )
                where = f"hub {spec.source}{cached}"
            findings.add(split, f"{ref.name}{weight}: {spec.formatting} from {where}")


def summarize(recipe: Recipe) -> Findings:
    from ftkit.launch import check_stage, deepspeed_config
    from ftkit.templates import TOKENIZER, get_template

    check_stage(recipe.stage)
    deepspeed_config(recipe.distributed.deepspeed)
    findings = Findings()
    findings.add("stage", recipe.stage)
    findings.add(
        "model", _model_source(recipe.model.name_or_path) + (" [random init]" * recipe.model.from_scratch)
    )
    if recipe.model.template == TOKENIZER:
        findings.add("template", "tokenizer: the model tokenizer's own chat_template")
    elif recipe.model.template:
        template = get_template(recipe.model.template)
        findings.add("template", f"{template.name}: {template.description}")
    adapter = recipe.adapter
    if adapter.type == "lora":
        modules = (
            adapter.target_modules
            if isinstance(adapter.target_modules, str)
            else ",".join(adapter.target_modules)
        )
        variant = " DoRA" * adapter.use_dora + " rsLoRA" * adapter.use_rslora
        findings.add(
            "adapter",
            f"LoRA{variant} r={adapter.r} alpha={adapter.alpha:g} dropout={adapter.dropout} on {modules}",
        )
    else:
        findings.add("adapter", adapter.type)
    if recipe.stage == "grpo":
        from ftkit.stages.rewards import resolve_reward

        shown = []
        for reward in recipe.grpo.reward_funcs:
            if reward.name and ":" not in reward.name:
                resolve_reward(reward.name, reward.params)  # validates the name and params
            shown.append(f"{reward.name or 'model ' + str(reward.model)} x{reward.weight:g}")
        findings.add("rewards", ", ".join(shown))
    if recipe.model.quantization:
        findings.add("quantized", f"{recipe.model.quantization.bits}-bit (bitsandbytes)")
    _datasets(recipe, findings)
    train = recipe.train
    effective = train.per_device_train_batch_size * train.gradient_accumulation_steps
    length = f"{train.max_steps} steps" if train.max_steps > 0 else f"{train.num_train_epochs:g} epochs"
    findings.add(
        "schedule",
        f"{length}, batch {train.per_device_train_batch_size}x{train.gradient_accumulation_steps}={effective} "
        f"per process, lr {train.learning_rate:g} {train.lr_scheduler_type}, precision {train.precision}",
    )
    findings.add("output", f"{train.output_dir} ({_output_state(train.output_dir)})")
    if recipe.logging.report_to:
        findings.add("logging", f"{', '.join(recipe.logging.report_to)} run {recipe.logging.run_name}")
    return findings


def _output_state(output_dir: str) -> str:
    from ftkit.rundir import read_run

    path = Path(output_dir)
    if not path.exists() or not any(path.iterdir()):
        return "new"
    run = read_run(path)
    return f"holds a {run.get('status')} run" if run else "not empty, no ftkit run"


def check(path: str, overrides: list[str], show_recipe: bool = True) -> int:
    recipe = load_recipe(path, overrides)
    if show_recipe:
        print("# resolved recipe")
        print(dump_recipe(recipe))
    findings = summarize(recipe)
    print(f"# {path}: valid. What would run:")
    print("\n".join(findings.lines))
    return 0
