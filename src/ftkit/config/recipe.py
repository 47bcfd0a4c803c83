"""The whole recipe: one typed model per section, plus the checks that span sections.

The stage-dependent parts come from the stage table (stages/__init__.py): the `stage` choices, each
stage's own section (e.g. `dpo:`) and its cross-section rules. `recipe_model()` composes the Recipe
class from the table as it is, so a stage added to the table is a valid recipe stage at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, create_model, model_validator

from ftkit.config.sections.adapter import AdapterConfig, LoraAdapter
from ftkit.config.sections.base import ConfigConflict, Section
from ftkit.config.sections.data import DataConfig
from ftkit.config.sections.distributed import DistributedConfig
from ftkit.config.sections.model import ModelConfig
from ftkit.config.sections.outputs import EvalConfig, ExportConfig, LoggingConfig
from ftkit.config.sections.train import PROJECTED_OPTIMIZERS, TrainConfig
from ftkit.errors import listing
from ftkit.models.heads import is_encoder_decoder
from ftkit.stages import STAGES, names_with
from ftkit.stages.spec import StageSpec

DEFAULT_LEARNING_RATE = {"lora": 2e-4, "full": 2e-5, "freeze": 2e-5}


class Recipe(Section):
    """A validated recipe. Inner code receives this object and never re-reads the YAML."""

    stage: str = "sft"
    """Training method (the stage table's names: `ftkit check` lists them in errors), or auto: chosen from
    what the training datasets' registry entries hold (a corpus: pt; answers: sft; preference pairs: dpo;
    labelled answers: kto)."""
    model: ModelConfig
    """The base model, its tokenizer and chat template."""
    adapter: AdapterConfig = Field(default_factory=LoraAdapter)
    """What is trained; `type` selects lora (default), full or freeze."""
    data: DataConfig
    """Registered datasets and how examples are built from them."""
    train: TrainConfig
    """The optimization loop (TrainingArguments names)."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """What `ftkit eval` measures."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Experiment trackers."""
    export: ExportConfig = Field(default_factory=ExportConfig)
    """Where and how `ftkit export` merges the adapter."""
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    """Multi-process launch and DeepSpeed."""

    _given: dict | None = PrivateAttr(default=None)
    """The values as the user gave them (bases merged, overrides applied), before derived defaults."""
    _path: str | None = PrivateAttr(default=None)
    """The recipe file it was loaded from."""
    _chosen: list[str] = PrivateAttr(default_factory=list)
    """What the datasets chose when the recipe was loaded, and why: `stage: auto`, GRPO rewards
    (config/load.py, data/tasks.py)."""

    @model_validator(mode="after")
    def _cross_section(self) -> Recipe:
        self._check_stage_needs()
        self._check_quantization()
        self._check_loftq()
        self._check_loraplus()
        self._check_projected_optimizer()
        self._check_eval()
        self._check_streaming()
        self._fill_defaults()
        check = STAGES[self.stage].check
        if check is not None:
            check(self)  # after the defaults: stage rules may need derived values (eval batch size)
        return self

    @property
    def keeps_base(self) -> bool:
        """The run saves the base its adapter belongs to (runfiles.SCRATCH_BASE): a from-scratch LoRA run's
        random base, or LoftQ's quantized base."""
        return self.adapter.type == "lora" and (
            self.model.from_scratch or getattr(self.adapter, "init", None) == "loftq"
        )

    def other_stage_sections(self) -> set[str]:
        """The sections of the stages this recipe does not train (they hold only defaults)."""
        return {name for name, spec in STAGES.items() if spec.section is not None and name != self.stage}

    def resolved_values(self) -> dict[str, Any]:
        """Every key with the value it resolved to, as JSON types; other stages' sections left out."""
        return self.model_dump(mode="json", exclude=self.other_stage_sections())

    def _check_encoder_decoder(self, spec: StageSpec) -> StageSpec:
        """An encoder-decoder model trains the stage's encoder-decoder version; decoder-only options are
        refused (exit 2 at ftkit check)."""
        model = self.model
        if not is_encoder_decoder(model.name_or_path, model.revision):
            return spec
        kind = f"model {model.name_or_path} is an encoder-decoder model (its config says is_encoder_decoder)"
        if spec.encoder_decoder is None:
            raise ConfigConflict(
                ("stage", "model.name_or_path"),
                f"{kind}; stage {self.stage} trains decoder-only models. Use stage sft, or a decoder-only model",
            )
        for key in ("packing", "padding_free", "streaming"):
            if getattr(self.data, key):
                raise ConfigConflict(
                    (f"data.{key}", "model.name_or_path"),
                    f"{kind}; data.{key} works with decoder-only models (it joins examples into one sequence)",
                )
        return spec.encoder_decoder

    def _check_stage_needs(self) -> None:
        spec = self._check_encoder_decoder(STAGES[self.stage])
        # Only settings that differ from the defaults: a resolved recipe of an older version lists them all.
        given = sorted(
            name
            for name in self.other_stage_sections() & self.model_fields_set
            if getattr(self, name) != STAGES[name].section()
        )
        if given:
            raise ConfigConflict(
                (given[0], "stage"),
                f"section {given[0]} applies to stage {given[0]}, not {self.stage}: remove it, or set "
                f"stage: {given[0]}",
            )
        if spec.needs_template and not self.model.template:
            raise ConfigConflict(
                ("model.template", "model", "stage"),
                f"stage {self.stage} formats conversations with a chat template: set model.template "
                "(see `ftkit template list`)",
            )
        for key in ("packing", "padding_free"):
            if getattr(self.data, key) and not spec.packing:
                raise ConfigConflict(
                    (f"data.{key}", "stage"),
                    f"data.{key} applies to stages {listing(names_with('packing'))}, not {self.stage}",
                )

    def _check_loraplus(self) -> None:
        dist = self.distributed
        if getattr(self.adapter, "loraplus_lr_ratio", None) is not None and (dist.deepspeed or dist.fsdp):
            raise ConfigConflict(
                ("adapter.loraplus_lr_ratio", "distributed"),
                "adapter.loraplus_lr_ratio builds its optimizer before training, which DeepSpeed and FSDP "
                "build themselves; train LoRA+ with plain data parallelism (distributed.nproc_per_node)",
            )

    def _check_projected_optimizer(self) -> None:
        train = self.train
        projected = train.optim.split("_")[0] in PROJECTED_OPTIMIZERS
        if projected and not train.optim_target_modules:
            raise ConfigConflict(
                ("train.optim_target_modules", "train.optim"),
                f"train.optim {train.optim} projects the gradients of the weights named in "
                "train.optim_target_modules: set it, e.g. [attn, mlp]",
            )
        if train.optim_target_modules and not projected:
            raise ConfigConflict(
                "train.optim_target_modules",
                "train.optim_target_modules applies to train.optim galore_* and apollo_*; remove it",
            )
        if projected and self.adapter.type == "lora":
            raise ConfigConflict(
                ("train.optim", "adapter.type"),
                f"train.optim {train.optim} saves memory when full weights train; with a LoRA adapter use "
                "adapter.type: full (or freeze), or a plain optimizer",
            )

    def _check_loftq(self) -> None:
        adapter = self.adapter
        if getattr(adapter, "init", None) != "loftq":
            if getattr(adapter, "loftq_iterations", 1) != 1:
                raise ConfigConflict(
                    "adapter.loftq_iterations", "adapter.loftq_iterations applies to adapter.init: loftq"
                )
            return
        if self.model.quantization is None:
            raise ConfigConflict(
                ("adapter.init", "model.quantization"),
                "adapter.init: loftq starts the adapter where it cancels the base's quantization error: set "
                "model.quantization (QLoRA), or choose another adapter.init",
            )
        if adapter.use_dora or adapter.init_from:
            key = "adapter.use_dora" if adapter.use_dora else "adapter.init_from"
            raise ConfigConflict(
                (key, "adapter.init"),
                f"adapter.init: loftq starts a new LoRA adapter; it does not combine with {key}",
            )

    def _check_quantization(self) -> None:
        if self.model.quantization is None:
            return
        if self.adapter.type != "lora":
            raise ConfigConflict(
                "model.quantization",
                f"model.quantization needs adapter.type: lora (QLoRA); quantized weights cannot be trained "
                f"with adapter.type: {self.adapter.type}. Remove model.quantization or use a LoRA adapter.",
            )
        if self.model.from_scratch:
            raise ConfigConflict(
                "model.quantization",
                "model.quantization cannot be combined with model.from_scratch: random weights have nothing "
                "to preserve by quantizing. Remove one of them.",
            )

    def _check_eval(self) -> None:
        has_eval_data = bool(self.data.eval) or self.data.val_size is not None
        if self.train.eval_strategy in ("steps", "epoch") and not has_eval_data:
            raise ConfigConflict(
                "train.eval_strategy",
                f"train.eval_strategy is {self.train.eval_strategy} but there is no eval data: "
                "set data.eval or data.val_size, or eval_strategy: no",
            )
        if self.train.eval_strategy == "steps" and self.train.eval_steps is None:
            raise ConfigConflict("train.eval_steps", "train.eval_strategy: steps needs train.eval_steps")
        defaults = type(self.eval)()
        own = [
            key for key in ("metrics", "max_new_tokens") if getattr(self.eval, key) != getattr(defaults, key)
        ]
        if own and STAGES[self.stage].evaluate is not None:
            raise ConfigConflict(
                (f"eval.{own[0]}", "stage"),
                f"eval.{own[0]} applies to stages scored on their answers; ftkit eval scores stage "
                f"{self.stage} with its own measures (docs/training.md): remove eval.{own[0]}",
            )
        for key in ("early_stopping_patience", "load_best_model_at_end"):
            if getattr(self.train, key) and not has_eval_data:
                raise ConfigConflict(
                    f"train.{key}", f"train.{key} compares evaluations: set data.eval or data.val_size"
                )

    def _check_streaming(self) -> None:
        if not self.data.streaming:
            return
        if not STAGES[self.stage].streaming:
            raise ConfigConflict(
                ("data.streaming", "stage"),
                f"data.streaming applies to stages {listing(names_with('streaming'))}, not {self.stage}",
            )
        train = self.train
        if train.max_steps <= 0:
            raise ConfigConflict(
                ("train.max_steps", "data.streaming"),
                "a stream has no length to count epochs in: set train.max_steps (optimizer steps to train)",
            )
        if train.group_by_length:
            raise ConfigConflict(
                ("train.group_by_length", "data.streaming"),
                "train.group_by_length sorts a dataset known in full; with data.streaming use "
                "data.packing (sft) to fill the batches instead",
            )
        if train.dataloader_num_workers:
            raise ConfigConflict(
                ("train.dataloader_num_workers", "data.streaming"),
                "a stream is read in each training process, where its position is saved with every "
                "checkpoint; set train.dataloader_num_workers: 0",
            )

    def _fill_defaults(self) -> None:
        """Resolve derived defaults here so that `ftkit check` shows the values that will be used."""
        train = self.train
        if self.data.streaming and self.data.cache:
            self.data.cache = False  # a stream is tokenized while training; nothing to cache
        if train.learning_rate is None:
            train.learning_rate = DEFAULT_LEARNING_RATE[self.adapter.type]
        if train.eval_strategy == "auto":
            has_eval_data = bool(self.data.eval) or self.data.val_size is not None
            if not has_eval_data:
                train.eval_strategy = "no"
            else:
                train.eval_strategy = "steps" if train.eval_steps else "epoch"
        if train.early_stopping_patience or train.load_best_model_at_end:
            # The best checkpoint must exist on disk: save exactly when evaluating.
            train.save_strategy = "steps" if train.eval_strategy == "steps" else "epoch"
            if train.eval_strategy == "steps" and train.eval_steps:
                train.save_steps = train.eval_steps
        if train.per_device_eval_batch_size is None:
            train.per_device_eval_batch_size = train.per_device_train_batch_size
        if self.export.adapter_dir is None:
            self.export.adapter_dir = train.output_dir
        if self.export.output_dir is None:
            self.export.output_dir = f"{train.output_dir.rstrip('/')}/merged"
        if self.logging.run_name is None:
            self.logging.run_name = train.output_dir.rstrip("/").split("/")[-1]
        if "mlflow" in self.logging.report_to and self.logging.mlflow_tracking_uri is None:
            self.logging.mlflow_tracking_uri = f"sqlite:///{Path('mlflow.db').resolve()}"


_COMPOSED: dict[tuple, type[Recipe]] = {}


def recipe_model() -> type[Recipe]:
    """The Recipe class for the stage table as it is: `stage` one of its names, plus each stage's section."""
    key = tuple((name, spec.section) for name, spec in STAGES.items())
    if key not in _COMPOSED:
        fields: dict[str, Any] = {
            "stage": (
                Literal[tuple(STAGES)],
                Field("sft", description=f"Training method: {', '.join(STAGES)} (`ftkit check` shows each)."),
            )
        }
        for name, spec in STAGES.items():
            if spec.section is not None:
                summary = (spec.section.__doc__ or "").strip().split(". ")[0].rstrip(".")
                fields[name] = (
                    spec.section,
                    Field(default_factory=spec.section, description=f"Stage {name}: {summary}."),
                )
        _COMPOSED[key] = create_model("Recipe", __base__=Recipe, __doc__=Recipe.__doc__, **fields)
    return _COMPOSED[key]
