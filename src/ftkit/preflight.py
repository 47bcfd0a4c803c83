"""Everything that can be known about a recipe without loading weights, checked before anything loads or
is written: by `ftkit check` (which prints what it found) and at the start of `ftkit train` (which
refuses the same things). Every problem found is reported at once, each naming its file, key or row.

Checks: the stage; the model, tokenizer and adapter sources (local folders, cached hub ids); the chat
template and its marker tokens against the tokenizer's files; device and precision on this machine;
optional packages the recipe needs; rewards (import paths, signatures, reward models); every data file
(exists, readable, not empty, UTF-8); the DeepSpeed config; the output_dir (a folder, writable, what it
holds) and what training will do with it, a resume included; the data cache folder.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ftkit.config import Recipe
from ftkit.distributed import DEEPSPEED_PRESETS
from ftkit.errors import UserError
from ftkit.models.runtime import RuntimePlan, plan_runtime
from ftkit.models.sources import check_weights, in_hub_cache, locate, producing_recipe, read_json
from ftkit.resume import StartPlan, plan_start
from ftkit.stages import check_dataset, stage_for


@dataclass
class Preflight:
    """What the checks found: a line per finding, and the decisions training reuses."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    runtime: RuntimePlan | None = None
    start: StartPlan | None = None

    def add(self, key: str, text: str) -> None:
        self.lines.append(f"  {key:<12} {text}")


Check = Callable[[Recipe, Preflight], None]


def _stage(recipe: Recipe, found: Preflight) -> None:
    found.add("stage", f"{recipe.stage}: {stage_for(recipe).description}")
    for reason in recipe._chosen:
        found.add("", f"chosen by {reason}")


def _producer(recipe: Recipe, name: str) -> Path | None:
    """The recipe beside this one that trains the missing local model `name`, if any."""
    if recipe._path is None or Path(name).expanduser().exists():
        return None
    return producing_recipe(name, Path(recipe._path).parent)


def _refuse_untrained(recipe: Recipe, key: str, name: str) -> None:
    producer = _producer(recipe, name)
    if producer:
        raise UserError(
            f"{key} {name}: no such local folder yet; it is the output of {producer}: "
            f"run `ftkit train {producer}` first"
        )


def _model(recipe: Recipe, found: Preflight) -> None:
    model = recipe.model
    _refuse_untrained(recipe, "model.name_or_path", model.name_or_path)
    source = locate(model.name_or_path, "model.name_or_path", "config.json", model.revision)
    if not model.from_scratch:
        check_weights(source, "model.name_or_path", model.allow_pickle)
    found.add("model", source.describe() + " [random init]" * model.from_scratch)
    if model.tokenizer:
        tokenizer = locate(model.tokenizer, "model.tokenizer", "tokenizer_config.json")
        found.add("tokenizer", tokenizer.describe())
    if model.trust_remote_code:
        found.add("remote code", "trust_remote_code is on: code shipped with the model will run")


def _template(recipe: Recipe, found: Preflight) -> None:
    from ftkit.models.special_tokens import missing_tokens
    from ftkit.models.tokenizer_files import read_tokenizer_files
    from ftkit.templates import TOKENIZER, get_template

    model = recipe.model
    if not model.template:
        return
    name = model.tokenizer or model.name_or_path
    tokenizer = read_tokenizer_files(name, None if model.tokenizer else model.revision)
    if model.template == TOKENIZER:
        if tokenizer is not None and not tokenizer.chat_template:
            raise UserError(
                f"model.template is tokenizer, but the tokenizer of {name} has no chat_template; "
                "pick a built-in template (`ftkit template list`)"
            )
        found.add("template", "tokenizer: the model tokenizer's own chat_template")
        return
    template = get_template(model.template)
    try:
        template.resolve_variables(recipe.data.template_vars)
    except UserError as exc:
        raise UserError(f"data.template_vars: {exc}") from None
    found.add("template", f"{template.name}: {template.description}")
    if tokenizer is None:
        return
    missing = missing_tokens(template, tokenizer)
    if missing and not model.add_template_tokens:
        raise UserError(
            f"model.template {template.name} writes {', '.join(missing)}, which the tokenizer of {name} does "
            "not have as single tokens: the template belongs to another model family. Pick this model's "
            "template (`ftkit template list`), or set model.add_template_tokens: true to teach it the markers."
        )
    if missing:
        found.add("new tokens", f"{', '.join(missing)} (model.add_template_tokens)")


def _adapter(recipe: Recipe, found: Preflight) -> None:
    adapter = recipe.adapter
    if adapter.type != "lora":
        found.add("adapter", adapter.type)
        return
    modules = (
        adapter.target_modules
        if isinstance(adapter.target_modules, str)
        else ",".join(adapter.target_modules)
    )
    variant = " DoRA" * adapter.use_dora + " rsLoRA" * adapter.use_rslora
    found.add(
        "adapter",
        f"LoRA{variant} r={adapter.r} alpha={adapter.alpha:g} dropout={adapter.dropout} on {modules}",
    )
    if adapter.init_from:
        _refuse_untrained(recipe, "adapter.init_from", adapter.init_from)
        source = locate(adapter.init_from, "adapter.init_from", "adapter_config.json")
        found.add("continues", source.describe())


def _runtime(recipe: Recipe, found: Preflight, device: str | None) -> None:
    runtime = plan_runtime(recipe, device)
    found.runtime = runtime
    attention = runtime.attn_implementation or "auto (sdpa where the model has it)"
    where = "" if device is None else " (as asked by --device)"
    found.add(
        "runtime",
        f"{runtime.device}{where}, precision {runtime.precision}, weights {runtime.dtype}, attention {attention}"
        + ", Liger kernels" * runtime.liger_kernels,
    )
    if recipe.stage == "grpo" and recipe.grpo.generation != "transformers" and runtime.device != "cuda":
        raise UserError(
            f"grpo.generation: {recipe.grpo.generation} needs a CUDA GPU and this run is on {runtime.device}: "
            "vLLM's CPU build cannot take the trained weights back into its engine after a step. Use "
            "grpo.generation: transformers here"
        )


def _packages(recipe: Recipe, found: Preflight) -> None:
    needs = {}
    if recipe.model.quantization:
        needs["bitsandbytes"] = "model.quantization"
        found.add("quantized", f"{recipe.model.quantization.bits}-bit (bitsandbytes)")
    if "8bit" in recipe.train.optim:
        needs["bitsandbytes"] = f"train.optim {recipe.train.optim}"
    for family in ("galore", "apollo"):
        if recipe.train.optim.startswith(family):
            needs[family] = f"train.optim {recipe.train.optim}"
    if recipe.distributed.deepspeed:
        needs["deepspeed"] = "distributed.deepspeed"
    if recipe.stage == "grpo" and recipe.grpo.generation != "transformers":
        needs["vllm"] = f"grpo.generation {recipe.grpo.generation}"
    for tracker in recipe.logging.report_to:
        if tracker != "none":
            needs[tracker] = f"logging.report_to {tracker}"
    modules = {"galore": "galore_torch", "apollo": "apollo_torch"}  # extra name -> what it installs
    missing = [
        (package, key)
        for package, key in needs.items()
        if importlib.util.find_spec(modules.get(package, package)) is None
    ]
    if missing:
        raise UserError(
            "; ".join(f"{key} needs {package}: pip install 'ftkit[{package}]'" for package, key in missing)
        )


def _rewards(recipe: Recipe, found: Preflight) -> None:
    if recipe.stage != "grpo":
        return
    from ftkit.stages.rewards import resolve_reward

    shown = []
    for index, reward in enumerate(recipe.grpo.reward_funcs):
        if reward.model is not None:
            # A reward model folder (config.json), or a stage rm run's LoRA adapter (adapter_config.json).
            adapter = (Path(reward.model) / "adapter_config.json").is_file()
            marker = "adapter_config.json" if adapter else "config.json"
            locate(reward.model, f"grpo.reward_funcs[{index}].model", marker)
        else:
            resolve_reward(reward.name or "", reward.params)
        shown.append(f"{reward.name or 'model ' + str(reward.model)} x{reward.weight:g}")
    found.add("rewards", ", ".join(shown))


def _datasets(recipe: Recipe, found: Preflight) -> None:
    from ftkit.data.loaders import check_files
    from ftkit.data.registry import Registry
    from ftkit.data.stream import check_streamable

    registry = Registry(recipe.data.dataset_dir)
    problems = []
    for split, refs in (("train", recipe.data.train), ("eval", recipe.data.eval)):
        for ref in refs:
            try:
                spec = registry.get(ref.name)
                check_dataset(spec, stage_for(recipe))
                streamed = split == "train" and recipe.data.streaming
                if streamed:
                    check_streamable(spec)
                if spec.file_name:
                    files = check_files(spec, registry.dataset_dir)
                    size = sum(f.stat().st_size for f in files)
                    where = (
                        f"{spec.file_name} ({len(files)} file{'s' * (len(files) > 1)}, {size / 1e6:.1f} MB)"
                    )
                else:
                    assert spec.hf_hub_url
                    cached = in_hub_cache(spec.hf_hub_url, "README.md", "dataset") is not None
                    where = f"hub {spec.source}" + (
                        " in the local cache" if cached else "; unverified offline"
                    )
            except UserError as exc:
                problems.append(str(exc))
                continue
            weight = f" weight {ref.weight}" if ref.weight is not None else ""
            how = ", streamed" if streamed else ""
            found.add(split, f"{ref.name}{weight}: {spec.formatting} from {where}{how}")
    if problems:
        raise UserError("\n".join(problems))


def _schedule(recipe: Recipe, found: Preflight) -> None:
    train = recipe.train
    effective = train.per_device_train_batch_size * train.gradient_accumulation_steps
    length = f"{train.max_steps} steps" if train.max_steps > 0 else f"{train.num_train_epochs:g} epochs"
    dist = recipe.distributed
    world = ""
    if isinstance(dist.nproc_per_node, int) and dist.nproc_per_node * dist.nnodes > 1:
        processes = dist.nproc_per_node * dist.nnodes
        world = f" (global {effective * processes} over {processes} processes)"
    found.add(
        "schedule",
        f"{length}, batch {train.per_device_train_batch_size}x{train.gradient_accumulation_steps}={effective} "
        f"per process{world}, lr {train.learning_rate:g} {train.lr_scheduler_type}, precision {train.precision}",
    )


def deepspeed_file(value: str) -> dict:
    """A user's DeepSpeed JSON config, read and checked to be an object."""
    path = Path(value)
    if not path.is_file():
        presets = ", ".join(DEEPSPEED_PRESETS)
        raise UserError(f"distributed.deepspeed {value!r} is neither a preset ({presets}) nor a JSON file")
    return read_json(path, "distributed.deepspeed config")


def _distributed(recipe: Recipe, found: Preflight) -> None:
    value = recipe.distributed.deepspeed
    if value and value not in DEEPSPEED_PRESETS:
        deepspeed_file(value)
    dist = recipe.distributed
    if value or dist.fsdp or dist.nproc_per_node != 1 or dist.nnodes > 1:
        nodes = ""
        if dist.nnodes > 1:
            meet = dist.rdzv_endpoint or f"{dist.master_addr}:{dist.master_port}"
            this = "" if dist.rdzv_endpoint else f", this is node {dist.node_rank}"
            nodes = f" on {dist.nnodes} nodes meeting at {meet}{this}"
        found.add(
            "processes",
            f"{dist.nproc_per_node} per node{nodes}"
            + f", DeepSpeed {value}" * bool(value)
            + f", FSDP {dist.fsdp}{' with CPU offload' * dist.fsdp_cpu_offload}" * bool(dist.fsdp),
        )


def writable_folder(path: Path, key: str) -> None:
    """`path` is, or can be created as, a folder this process may write into."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{key} {path}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be created: {existing} is not writable"
        raise UserError(f"{key} {path} {what}; choose a folder you can write to")


def _output(recipe: Recipe, found: Preflight) -> None:
    from ftkit.rundir import inspect_run_dir

    out = Path(recipe.train.output_dir)
    state = inspect_run_dir(out)
    writable_folder(out, "train.output_dir")
    found.start = plan_start(recipe, state)
    found.add("output", f"{recipe.train.output_dir} ({state.describe()})")
    if found.start.action != "new" or recipe.train.resume_from_checkpoint:
        found.add("then", found.start.describe())
    if recipe.data.cache:
        writable_folder(Path(recipe.data.cache_dir).expanduser(), "data.cache_dir")


def _logging(recipe: Recipe, found: Preflight) -> None:
    if recipe.logging.report_to:
        found.add("logging", f"{', '.join(recipe.logging.report_to)} run {recipe.logging.run_name}")


def preflight(recipe: Recipe, device: str | None = None, output: bool = True) -> Preflight:
    """Run every check; all problems found are raised together as one user error.

    `device` checks the recipe as if training on that device (cuda, mps, cpu) instead of this machine;
    `output=False` skips the output_dir (processes other than the first under a launcher)."""
    found = Preflight()
    checks: list[Check] = [
        _stage,
        _model,
        _template,
        _adapter,
        lambda r, f: _runtime(r, f, device),
        _packages,
        _rewards,
        _datasets,
        _schedule,
        _distributed,
    ]
    if output:
        checks.append(_output)
    checks.append(_logging)
    for check in checks:
        try:
            check(recipe, found)
        except UserError as exc:
            found.problems.append(str(exc))
    if found.problems:
        raise UserError(_combine(found.problems))
    return found


def _combine(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    items = [line for problem in problems for line in problem.splitlines()]
    return f"{len(items)} problems:\n" + "\n".join(f"  - {item}" for item in items)
